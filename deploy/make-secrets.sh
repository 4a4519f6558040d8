#!/bin/sh
# Create the secrets docker-compose.yml reads, once, in deploy/secrets/:
# the PostgreSQL bootstrap password, one password per evstore role, Redis's
# password and the store's secret key (32 random bytes, hex).
#
# The folder is 0700, so no other user of this host can read the files; the
# files themselves are 0444 because Compose bind-mounts them into containers
# that run as other uids (postgres, redis, evstore 10001), and a bind-mounted
# file is reached without its host folder. Existing files are kept: rotating a
# secret is a deliberate step (see docs/security.md).
set -eu
cd "$(dirname "$0")"
mkdir -p secrets
chmod 0700 secrets
for name in postgres_admin_password evstore_owner_password evstore_writer_password \
            evstore_reader_password evstore_worker_password evstore_privacy_password \
            redis_password evstore_secret_key; do
    file="secrets/$name"
    if [ ! -s "$file" ]; then
        (umask 077 && od -An -vtx1 -N32 /dev/urandom | tr -d ' \n' > "$file")
        echo "created $file"
    fi
    chmod 0444 "$file"
done
