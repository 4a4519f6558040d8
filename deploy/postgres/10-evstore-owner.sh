#!/bin/sh
# Runs once, when the postgres container initialises an empty data directory
# (docker-entrypoint-initdb.d), as the bootstrap superuser. It creates only the
# store's owner role; the owner then creates the schema ('evstore init') and
# the other roles ('evstore roles --apply'). The superuser's password is not
# given to any evstore container.
#
# CREATEROLE is safe to give here on PostgreSQL 16+, where a CREATEROLE role
# administers only the roles it created. On 15 and older it could grant itself
# predefined roles: there, create the roles as an administrator instead
# ('evstore roles' prints the SQL) and leave CREATEROLE out.
set -eu
: "${EVSTORE_OWNER_PASSWORD_FILE:=/run/secrets/evstore_owner_password}"
export EVSTORE_OWNER_PASSWORD_FILE
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v owner="${EVSTORE_OWNER_ROLE:-events_owner}" -v db="$POSTGRES_DB" <<'SQL'
-- Read by psql itself, so the password is on no command line.
\set password `cat "$EVSTORE_OWNER_PASSWORD_FILE"`
CREATE ROLE :"owner" LOGIN CREATEROLE PASSWORD :'password';
-- Nobody connects or makes temporary tables unless granted: the owner may
-- grant CONNECT (and TEMP to the worker) to the roles it creates.
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"owner" WITH GRANT OPTION;
GRANT CREATE ON DATABASE :"db" TO :"owner";
-- The public schema is not a place for anyone's tables.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
SQL
