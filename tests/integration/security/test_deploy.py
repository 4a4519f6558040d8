"""The deployment's scripts, run for real against PostgreSQL (there is no Docker here):
the postgres init script makes only the owner, then the init step runs `evstore init` and
`evstore roles --apply` as that owner through deploy/entrypoint.sh, and each service's role
works from there with PUBLIC's CONNECT taken away, as in docker-compose.yml.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from evstore.core.roles import role_names, scram_verifier
from psycopg.conninfo import conninfo_to_dict

from .conftest import as_role, drop_roles, unique_prefix

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
BIN = str(Path(sys.executable).parent)


def run(args: list[str], env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    full = {"PATH": f"{BIN}:/usr/bin:/bin", "COLUMNS": "200", "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(args, env=full, cwd=ROOT, input=stdin, capture_output=True, text=True,
                          timeout=180)


@pytest.fixture
def deployment(database_url: str, tmp_path: Path) -> Iterator[dict[str, object]]:
    prefix = unique_prefix()  # the schema too: role names default to <schema>_<component>
    names = role_names(prefix)
    secrets = {c: tmp_path / f"{c}.pw" for c in names}
    for component, path in secrets.items():
        path.write_text(f"pw-{component}-{prefix}\n")
    key = tmp_path / "secret.key"
    key.write_text("ab" * 32 + "\n")
    parts = urlsplit(database_url)
    dbname = parts.path.lstrip("/")
    # host and port as libpq reads them (the embedded server's are query parameters)
    info = conninfo_to_dict(database_url)
    try:
        yield {"prefix": prefix, "names": names, "secrets": secrets, "key": key,
               "url": database_url, "db": dbname,
               "pg": {"PGHOST": str(info.get("host") or "127.0.0.1"),
                      "PGPORT": str(info.get("port") or 5432)}}
    finally:
        maintenance = urlunsplit(parts._replace(path="/postgres"))
        with psycopg.connect(maintenance, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        drop_roles(maintenance, [names[c] for c in ("writer", "reader", "worker", "privacy")]
                   + [names["owner"]])


def test_postgres_init_then_owner_init_and_roles_then_each_service(
        deployment: dict[str, object], tmp_path: Path) -> None:
    d = deployment
    names: dict[str, str] = d["names"]  # type: ignore[assignment]
    secrets: dict[str, Path] = d["secrets"]  # type: ignore[assignment]
    pg: dict[str, str] = d["pg"]  # type: ignore[assignment]
    url = str(d["url"])
    # Given the postgres container's first start: only the owner role is made.
    first = run(["sh", str(DEPLOY / "postgres" / "10-evstore-owner.sh")], {
        **pg, "POSTGRES_USER": "postgres", "POSTGRES_DB": str(d["db"]),
        "EVSTORE_OWNER_ROLE": names["owner"], "EVSTORE_OWNER_PASSWORD_FILE": str(secrets["owner"]),
    })
    assert first.returncode == 0, first.stderr
    # When the init service runs as the owner (password from its file, none in the URL).
    common = {"EVENT_STORE_SCHEMA": str(d["prefix"]), "EVSTORE_SECRET_KEY_FILE": str(d["key"])}
    password_files = [a for c in ("writer", "reader", "worker", "privacy")
                      for a in ("--password-file", f"{c}={secrets[c]}")]
    init = run(["sh", str(DEPLOY / "entrypoint.sh"), "sh", "-c",
                'evstore init && evstore roles --apply "$@"', "init", *password_files],
               {**common, "DATABASE_URL": as_role(url, names["owner"]),
                "PGPASSWORD_FILE": str(secrets["owner"])})
    assert init.returncode == 0, init.stderr
    # Then every role exists with the SCRAM verifier of its file's password.
    with psycopg.connect(url) as admin:
        stored = dict(admin.execute(
            "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)",
            [list(names.values())]).fetchall())
        public_connect = admin.execute(
            "SELECT has_database_privilege('public', current_database(), 'CONNECT')").fetchone()
    assert public_connect == (False,)
    for component, name in names.items():
        salt = base64.b64decode(stored[name].split("$")[1].split(":")[1])
        assert stored[name] == scram_verifier(secrets[component].read_text().strip(), salt)
    # And each service works as its own role, through the entrypoint.
    def service(component: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return run(["sh", str(DEPLOY / "entrypoint.sh"), *args], {
            **common, "DATABASE_URL": as_role(url, names[component]),
            "PGPASSWORD_FILE": str(secrets[component])}, stdin)
    line = {"aggregate_type": "Cart", "aggregate_id": "c1", "event_type": "ItemAdded",
            "event_data": {"sku": "a"}}
    appended = service("writer", "append", "-", stdin=json.dumps(line) + "\n")
    assert appended.returncode == 0, appended.stderr
    read = service("reader", "read-all", "--json")
    assert read.returncode == 0, read.stderr
    assert "ItemAdded" in read.stdout
    for command in (["read", "Cart-c1"], ["verify"], ["health"], ["partitions", "list"], ["consumers"]):
        done = service("reader", *command)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    refused = service("reader", "append", "-", stdin=json.dumps(line) + "\n")
    assert refused.returncode != 0 and "permission denied" in refused.stderr


def test_entrypoint_reads_passwords_from_files(tmp_path: Path) -> None:
    pg = tmp_path / "pg.pw"
    pg.write_text("s3cret\n")
    redis = tmp_path / "redis.pw"
    redis.write_text("p@ss/word\n")
    done = run(["sh", str(DEPLOY / "entrypoint.sh"), "sh", "-c",
                'printf "%s\\n%s\\n" "$PGPASSWORD" "$REDIS_URL"'],
               {"PGPASSWORD_FILE": str(pg), "REDIS_PASSWORD_FILE": str(redis),
                "REDIS_URL": "redis://redis:6379/0"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["s3cret", "redis://:p%40ss%2Fword@redis:6379/0"]
    assert os.access(DEPLOY / "entrypoint.sh", os.X_OK)
