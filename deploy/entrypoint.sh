#!/bin/sh
# Start an evstore command with its secrets read from files (Docker secrets).
#
#   PGPASSWORD_FILE        the password of this container's PostgreSQL role;
#                          libpq reads PGPASSWORD, so DATABASE_URL carries none
#   REDIS_PASSWORD_FILE    Redis's password, put into REDIS_URL (URL-encoded)
#   EVSTORE_SECRET_KEY_FILE is read by evstore itself (core/keys.py)
#
# "evstore ..." or "sh ..." run as given; anything else is an evstore command.
set -eu
umask 077

if [ -n "${PGPASSWORD_FILE:-}" ]; then
    PGPASSWORD="$(cat "$PGPASSWORD_FILE")"
    export PGPASSWORD
fi
if [ -n "${REDIS_PASSWORD_FILE:-}" ] && [ -n "${REDIS_URL:-}" ]; then
    REDIS_URL="$(python - "$REDIS_PASSWORD_FILE" "$REDIS_URL" <<'PY'
import sys
from urllib.parse import quote, urlsplit, urlunsplit

password = open(sys.argv[1]).read().rstrip("\n")
parts = urlsplit(sys.argv[2])
host = parts.netloc.rpartition("@")[2]
print(urlunsplit(parts._replace(netloc=":" + quote(password, safe="") + "@" + host)))
PY
)"
    export REDIS_URL
fi

case "${1:-}" in
    evstore|sh) exec "$@" ;;
    *) exec evstore "$@" ;;
esac
