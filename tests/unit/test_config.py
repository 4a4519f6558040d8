"""Configuration from the environment: each bad value is refused, naming its variable."""

from __future__ import annotations

import pytest

from evstore import ConfigurationError, PostgreSQLEventStore, load_settings

VARIABLES = (
    "DATABASE_URL", "REDIS_URL", "EVENT_STORE_SCHEMA", "EVENT_STORE_COMPRESSION",
    "EVENT_STORE_COMPRESSION_THRESHOLD", "EVENT_STORE_BATCH_SIZE", "EVENT_STORE_CACHE_TTL",
    "EVENT_STORE_ENCRYPTION", "EVENT_STORE_RETENTION_DAYS", "EVENT_STORE_VERIFY_READS",
    "EVENT_STORE_POOL_SIZE",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


BAD = [
    ("DATABASE_URL", "mysql://user@localhost/db", "must be a PostgreSQL URL"),
    ("DATABASE_URL", "localhost:5432", "must be a PostgreSQL URL"),
    ("EVENT_STORE_SCHEMA", "my-schema", "lower-case SQL identifier"),
    ("EVENT_STORE_SCHEMA", "Events", "lower-case SQL identifier"),
    ("EVENT_STORE_SCHEMA", "1events", "lower-case SQL identifier"),
    ("EVENT_STORE_SCHEMA", "x" * 60, "at most 41 characters"),
    ("EVENT_STORE_SCHEMA", 'ev"; DROP TABLE x; --', "lower-case SQL identifier"),
    ("EVENT_STORE_SCHEMA", "events\n", "lower-case SQL identifier"),
    ("EVENT_STORE_BATCH_SIZE", "abc", "valid integer"),
    ("EVENT_STORE_BATCH_SIZE", "0", "greater than or equal to 1"),
    ("EVENT_STORE_BATCH_SIZE", "1000000", "less than or equal to"),
    ("EVENT_STORE_COMPRESSION", "brotli", "one of gzip, lz4, zstd"),
    ("EVENT_STORE_COMPRESSION_THRESHOLD", "-1", "greater than or equal to 0"),
    ("EVENT_STORE_CACHE_TTL", "-5", "greater than or equal to 0"),
    ("EVENT_STORE_CACHE_TTL", "5m", "valid integer"),
    ("EVENT_STORE_RETENTION_DAYS", "-1", "greater than or equal to 1"),
    ("EVENT_STORE_RETENTION_DAYS", "0", "greater than or equal to 1"),
    ("EVENT_STORE_ENCRYPTION", "rot13", "must be off or on"),
    ("EVENT_STORE_VERIFY_READS", "maybe", "valid boolean"),
    ("EVENT_STORE_POOL_SIZE", "0", "greater than or equal to 1"),
    ("REDIS_URL", "http://x", "must be a Redis URL"),
    ("REDIS_URL", "localhost:6379", "must be a Redis URL"),
]


@pytest.mark.parametrize(("name", "value", "why"), BAD, ids=[f"{n}={v[:12]}" for n, v, _ in BAD])
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, why: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    message = str(info.value)
    assert f"{name}: " in message and why in message
    assert "\n" not in message


def test_every_bad_variable_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_STORE_SCHEMA", "Bad-Name")
    monkeypatch.setenv("EVENT_STORE_BATCH_SIZE", "abc")
    monkeypatch.setenv("REDIS_URL", "http://x")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    for name in ("EVENT_STORE_SCHEMA", "EVENT_STORE_BATCH_SIZE", "REDIS_URL"):
        assert name in str(info.value)


def test_a_password_in_a_bad_url_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://admin:hunter2@db.internal/app")
    with pytest.raises(ConfigurationError, match="DATABASE_URL") as info:
        load_settings()
    assert "hunter2" not in str(info.value) and "admin" not in str(info.value)
    assert "got a 'mysql' URL" in str(info.value)


@pytest.mark.parametrize("value", [
    "host=db.internal user=admin password=hunter2 dbname=app",  # a keyword string
    "mysql://db.internal/app?password=hunter2",
    "db.internal/app?sslpassword=hunter2",
])
def test_a_bad_connection_string_is_not_echoed(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("DATABASE_URL", value)
    with pytest.raises(ConfigurationError, match="DATABASE_URL: must be a PostgreSQL URL") as info:
        load_settings()
    assert "hunter2" not in str(info.value) and "db.internal" not in str(info.value)


def test_a_long_bad_value_is_not_echoed_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_STORE_COMPRESSION", "brotli-with-a-very-long-value-hunter2")
    with pytest.raises(ConfigurationError, match="EVENT_STORE_COMPRESSION") as info:
        load_settings()
    assert "hunter2" not in str(info.value) and "37 characters" in str(info.value)


def test_the_schema_name_may_not_end_in_a_newline() -> None:
    from evstore.core.config import IDENTIFIER

    assert IDENTIFIER.fullmatch("events") and not IDENTIFIER.match("events\n")
    with pytest.raises(ConfigurationError, match="EVENT_STORE_SCHEMA"):
        load_settings(schema_name="events\n")


def test_the_store_validates_settings_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing listens on port 1: a ConfigurationError proves nothing was tried yet
    monkeypatch.setenv("EVENT_STORE_BATCH_SIZE", "abc")
    with pytest.raises(ConfigurationError, match="EVENT_STORE_BATCH_SIZE"):
        PostgreSQLEventStore("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(ConfigurationError, match="EVENT_STORE_SCHEMA"):
        PostgreSQLEventStore("postgresql://nobody@127.0.0.1:1/none", schema_name="Bad-Name")


@pytest.mark.parametrize(
    ("value", "codec"),
    [("", "none"), ("off", "none"), ("false", "none"), ("0", "none"), ("on", "zstd"),
     ("true", "zstd"), ("GZIP", "gzip"), (" lz4 ", "lz4"), ("zstd", "zstd")],
)
def test_compression_values(monkeypatch: pytest.MonkeyPatch, value: str, codec: str) -> None:
    monkeypatch.setenv("EVENT_STORE_COMPRESSION", value)
    assert load_settings().compression == codec


def test_good_values_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings()
    assert (defaults.database_url, defaults.redis_url, defaults.schema_name) == (None, None, "events")
    assert (defaults.compression, defaults.batch_size, defaults.retention_days) == ("none", 1000, None)
    assert defaults.verify_reads is True
    for name, value in {
        "DATABASE_URL": "postgres://u:p@h:5433/db", "REDIS_URL": "rediss://h:6380/1",
        "EVENT_STORE_SCHEMA": "tenant_7", "EVENT_STORE_BATCH_SIZE": "250",
        "EVENT_STORE_CACHE_TTL": "0", "EVENT_STORE_RETENTION_DAYS": "365",
        "EVENT_STORE_ENCRYPTION": "off", "EVENT_STORE_VERIFY_READS": "false",
    }.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert (s.database_url, s.redis_url, s.schema_name) == (
        "postgres://u:p@h:5433/db", "rediss://h:6380/1", "tenant_7"
    )
    assert (s.batch_size, s.cache_ttl, s.retention_days, s.encryption, s.verify_reads) == (
        250, 0, 365, "none", False
    )
    # Explicit arguments win over the environment
    assert load_settings(schema_name="other", batch_size=5).schema_name == "other"


def test_no_database_url_at_all() -> None:
    from evstore import StoreUnavailableError

    with pytest.raises(StoreUnavailableError, match="set DATABASE_URL"):
        PostgreSQLEventStore()
