"""One redaction for every form a secret takes in a URL or a connection string."""

from __future__ import annotations

import pytest
from evstore.core.config import _hide_password
from evstore.core.db import redact as db_redact
from evstore.core.redaction import redact

CASES = [
    # URL user info
    ("postgresql://app:s3cr3t@db:5432/events", "postgresql://app:***@db:5432/events"),
    ("postgres://app:p@ss@word@db/events", "postgres://app:***@db/events"),
    ("redis://:s3cr3t@cache:6379/0", "redis://:***@cache:6379/0"),
    ("rediss://default:s3cr3t@cache:6380/0", "rediss://default:***@cache:6380/0"),
    ("unix://:s3cr3t@/run/redis.sock?db=0", "unix://:***@/run/redis.sock?db=0"),
    # secret query parameters
    ("postgresql://db/events?password=s3cr3t&sslmode=require",
     "postgresql://db/events?password=***&sslmode=require"),
    ("postgresql://app@db/events?sslmode=require&sslpassword=s3cr3t",
     "postgresql://app@db/events?sslmode=require&sslpassword=***"),
    ("redis://cache:6379/0?password=s3cr3t", "redis://cache:6379/0?password=***"),
    ("rediss://cache:6380/0?PASSWORD=s3cr3t", "rediss://cache:6380/0?PASSWORD=***"),
    ("unix:///run/redis.sock?db=0&password=s3cr3t", "unix:///run/redis.sock?db=0&password=***"),
    # keyword connection strings
    ("host=db port=5432 password=s3cr3t dbname=events",
     "host=db port=5432 password=*** dbname=events"),
    ("host=db password = 's3 cr3t' user=app", "host=db password = *** user=app"),
    ("host=db password='it\\'s s3cr3t' user=app", "host=db password=*** user=app"),
    # no secret: unchanged
    ("postgresql://app@db:5432/events", "postgresql://app@db:5432/events"),
    ("redis://cache:6379/0", "redis://cache:6379/0"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_each_form_of_secret_is_hidden(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert not any(secret in redact(text) for secret in ("s3cr3t", "s3 cr3t", "ss@word"))


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_db_and_config_redaction_are_the_same_function(text: str, expected: str) -> None:
    assert db_redact(text) == expected
    assert _hide_password(text) == expected


def test_secret_inside_a_message_is_hidden() -> None:
    message = "Redis is unavailable at redis://:s3cr3t@cache:6379/0: Connection refused"
    assert redact(message) == "Redis is unavailable at redis://:***@cache:6379/0: Connection refused"
    assert redact("cannot connect: host=db password=s3cr3t") == "cannot connect: host=db password=***"
