"""A store whose schema belongs to its owner role, with the five roles applied.

Roles are cluster-wide: each test gets role names of its own (a unique
prefix) and drops them afterwards, after its database (which holds every
object and grant of theirs) is gone. Every role logs in over TCP (trust
authentication on the test server), so each component's code runs as that
role exactly as in production.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from evstore.core.roles import apply_roles_at, role_names

from evstore import PostgreSQLEventStore

SCHEMA = "shop"


def as_role(url: str, role: str) -> str:
    """The URL with its user replaced by ``role`` (no password: trust authentication)."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{role}@{host}{port}"))


def unique_prefix() -> str:
    return f"sec{os.getpid()}_{uuid.uuid4().hex[:8]}"


@dataclass
class Secured:
    admin_url: str
    schema: str
    prefix: str
    names: dict[str, str]

    def url(self, component: str) -> str:
        return as_role(self.admin_url, self.names[component])

    def store(self, component: str) -> PostgreSQLEventStore:
        return PostgreSQLEventStore(self.url(component), schema_name=self.schema)

    def connect(self, component: str) -> psycopg.Connection:
        return psycopg.connect(self.url(component), autocommit=True)


def drop_roles(admin_url: str, names: list[str]) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        for name in names:
            with contextlib.suppress(psycopg.Error):
                admin.execute(f'DROP ROLE IF EXISTS "{name}"')


@pytest.fixture
def owner_only(database_url: str) -> Iterator[Secured]:
    """An owner role (LOGIN CREATEROLE, made by the administrator) that initialised ``shop``."""
    prefix = unique_prefix()
    names = role_names(prefix)
    dbname = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{names["owner"]}" LOGIN CREATEROLE')
        admin.execute(f'GRANT CREATE ON DATABASE "{dbname}" TO "{names["owner"]}"')
    secured = Secured(database_url, SCHEMA, prefix, names)
    with secured.store("owner") as owner:
        owner.initialize_schema()
    try:
        yield secured
    finally:
        maintenance = urlunsplit(urlsplit(database_url)._replace(path="/postgres"))
        with psycopg.connect(maintenance, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        drop_roles(maintenance, [names[c] for c in ("writer", "reader", "worker", "privacy")]
                   + [names["owner"]])


@pytest.fixture
def secured(owner_only: Secured) -> Secured:
    """The schema with the roles applied by its owner."""
    apply_roles_at(owner_only.url("owner"), owner_only.schema, owner_only.prefix)
    return owner_only
