"""Configuration from the environment, validated once at start-up.

Every variable keeps the name the operators know (``DATABASE_URL``,
``EVENT_STORE_SCHEMA``, …). A bad value raises :class:`ConfigurationError`
naming the variable and what it should look like.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigurationError
from .redaction import redact_value

# \Z, not $: "$" also matches before a trailing newline ("events\n").
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,40}\Z")
_OFF = {"", "0", "off", "false", "no", "none"}
_ON = {"1", "on", "true", "yes"}
COMPRESSION_CODECS = ("gzip", "lz4", "zstd")


class Settings(BaseSettings):
    """The evstore settings, read from the environment (or passed explicitly)."""

    model_config = SettingsConfigDict(
        env_ignore_empty=True, extra="ignore", populate_by_name=True, frozen=True
    )

    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, validation_alias="REDIS_URL")
    # Operations (issue 15, docs/operations.md): a hot standby for reads of the
    # global order (readers, consumer groups, replays, queries, exports); the
    # HTTP port of /livez /readyz /metrics in long-running processes (unset: off);
    # log lines as JSON ("json") or for a person ("console"; default: JSON unless a terminal).
    database_read_url: str | None = Field(default=None, validation_alias="DATABASE_READ_URL")
    http_host: str = Field(default="127.0.0.1", validation_alias="EVSTORE_HTTP_HOST")
    http_port: int | None = Field(default=None, ge=0, le=65535, validation_alias="EVSTORE_HTTP_PORT")
    log_format: str | None = Field(default=None, validation_alias="EVSTORE_LOG_FORMAT")
    horizon_stall_seconds: float = Field(
        default=60.0, gt=0, validation_alias="EVSTORE_HORIZON_STALL_SECONDS"
    )
    # A read replica more than this far behind the primary is reported as lag:
    # its read_all pages are not at_end (core/store/replica.py).
    replica_max_lag_seconds: float = Field(
        default=5.0, ge=0, validation_alias="EVSTORE_REPLICA_MAX_LAG_SECONDS"
    )
    schema_name: str = Field(default="events", validation_alias="EVENT_STORE_SCHEMA")
    compression: str = Field(default="none", validation_alias="EVENT_STORE_COMPRESSION")
    compression_threshold: int = Field(
        default=1024, ge=0, validation_alias="EVENT_STORE_COMPRESSION_THRESHOLD"
    )
    batch_size: int = Field(default=1000, ge=1, le=100_000, validation_alias="EVENT_STORE_BATCH_SIZE")
    cache_ttl: int = Field(default=300, ge=0, validation_alias="EVENT_STORE_CACHE_TTL")
    encryption: str = Field(default="none", validation_alias="EVENT_STORE_ENCRYPTION")
    # Per-subject encryption (core/privacy, docs/privacy.md): the master key that
    # wraps the subjects' data keys (hex or base64, 32 bytes), or a file holding
    # it (default $EVSTORE_HOME/master.key, made on first use); earlier master
    # keys (comma-separated) still unwrap until `evstore privacy rotate-master-key`;
    # a "module:factory" key provider (KMS, Vault) instead; another database for
    # the data keys; how long a process keeps a data key it read.
    master_key: SecretStr | None = Field(default=None, validation_alias="EVENT_STORE_MASTER_KEY")
    master_key_file: Path | None = Field(default=None, validation_alias="EVENT_STORE_MASTER_KEY_FILE")
    previous_master_keys: SecretStr | None = Field(
        default=None, validation_alias="EVENT_STORE_PREVIOUS_MASTER_KEYS")
    key_provider: str | None = Field(default=None, validation_alias="EVENT_STORE_KEY_PROVIDER")
    keys_url: str | None = Field(default=None, validation_alias="EVENT_STORE_KEYS_URL")
    key_cache_seconds: float = Field(
        default=30.0, ge=0, le=86400, validation_alias="EVENT_STORE_KEY_CACHE_SECONDS")
    blind_index: bool = Field(default=True, validation_alias="EVENT_STORE_BLIND_INDEX")
    retention_days: int | None = Field(
        default=None, ge=1, validation_alias="EVENT_STORE_RETENTION_DAYS"
    )
    verify_reads: bool = Field(default=True, validation_alias="EVENT_STORE_VERIFY_READS")
    # Reads that need archived events fetch them from the archive (issue 13);
    # off: they raise ArchivedHistoryError. Fetched segments are cached under
    # archive_cache_dir (default $EVSTORE_HOME/archive-cache), at most archive_cache_bytes.
    archive_read_through: bool = Field(default=True, validation_alias="EVSTORE_ARCHIVE_READ_THROUGH")
    archive_cache_dir: Path | None = Field(default=None, validation_alias="EVSTORE_ARCHIVE_CACHE_DIR")
    archive_cache_bytes: int = Field(
        default=256 * 1024 * 1024, ge=0, validation_alias="EVSTORE_ARCHIVE_CACHE_BYTES"
    )
    # Accept events still under a version-1 (unkeyed) checksum. Off by default:
    # anyone who can write a row can forge one. Turn it on only between an
    # upgrade to migration 0006 and `evstore verify --upgrade`.
    accept_legacy_checksums: bool = Field(
        default=False, validation_alias="EVENT_STORE_ACCEPT_LEGACY_CHECKSUMS"
    )
    # The largest event accepted (its data and metadata as JSON text, before compression).
    max_event_bytes: int = Field(
        default=1024 * 1024, ge=1024, le=256 * 1024 * 1024,
        validation_alias="EVENT_STORE_MAX_EVENT_BYTES",
    )
    # The most bytes of event JSON one read_all page or read_stream call returns at once.
    max_page_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024 * 1024, validation_alias="EVENT_STORE_MAX_PAGE_BYTES"
    )
    pool_size: int = Field(default=10, ge=1, le=500, validation_alias="EVENT_STORE_POOL_SIZE")
    home: Path = Field(
        default_factory=lambda: default_home(), validation_alias="EVSTORE_HOME"
    )
    # The secret of keyed checksums and signed archive manifests (core/keys.py):
    # 32+ random bytes as hex or base64, never stored in the database.
    secret_key: SecretStr | None = Field(default=None, validation_alias="EVSTORE_SECRET_KEY")
    secret_key_file: Path | None = Field(default=None, validation_alias="EVSTORE_SECRET_KEY_FILE")
    # Earlier secrets, comma-separated: still accepted when verifying, never used to sign.
    previous_secret_keys: SecretStr | None = Field(
        default=None, validation_alias="EVSTORE_PREVIOUS_SECRET_KEYS"
    )
    # The access log (issue 11, core/privacy/access_log.py, docs/privacy.md): on or
    # off; who reads and why when the caller declares no access context (workers);
    # how long an entry may wait in memory before it is written (0: written before
    # the read returns); how long a process trusts its view of withdrawn consents.
    access_log: bool = Field(default=True, validation_alias="EVSTORE_ACCESS_LOG")
    accessor: str | None = Field(default=None, validation_alias="EVSTORE_ACCESSOR")
    access_purpose: str | None = Field(default=None, validation_alias="EVSTORE_ACCESS_PURPOSE")
    access_log_flush_ms: int = Field(
        default=200, ge=0, le=60_000, validation_alias="EVSTORE_ACCESS_LOG_FLUSH_MS"
    )
    consent_cache_seconds: float = Field(
        default=2.0, ge=0, le=3600, validation_alias="EVSTORE_CONSENT_CACHE_SECONDS"
    )

    # The event query service (core/query, docs/query.md): a statement timeout and
    # a budget of rows examined per query, the result cache's size, the text-search
    # configuration of full-text search (and of its index, migration 0007).
    query_timeout_ms: int = Field(
        default=30_000, ge=1, validation_alias="EVENT_STORE_QUERY_TIMEOUT_MS"
    )
    query_row_budget: int = Field(
        default=200_000, ge=1, validation_alias="EVENT_STORE_QUERY_ROW_BUDGET"
    )
    query_cache_size: int = Field(
        default=256, ge=0, validation_alias="EVENT_STORE_QUERY_CACHE_SIZE"
    )
    text_search_config: str = Field(
        default="simple", pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        validation_alias="EVENT_STORE_TEXT_SEARCH_CONFIG",
    )

    @field_validator("database_url", "database_read_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^postgres(ql)?://", value):
            raise ValueError(
                "must be a PostgreSQL URL such as postgresql://user:password@host:5432/dbname"
            )
        return value

    @field_validator("log_format")
    @classmethod
    def _check_log_format(cls, value: str | None) -> str | None:
        if value is None:
            return None
        low = value.strip().lower()
        if low not in ("json", "console"):
            raise ValueError("must be json or console")
        return low

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^(rediss?|unix)://", value):
            raise ValueError("must be a Redis URL such as redis://localhost:6379/0")
        return value

    @field_validator("schema_name")
    @classmethod
    def _check_schema(cls, value: str) -> str:
        if not IDENTIFIER.fullmatch(value):
            raise ValueError(
                "must be a lower-case SQL identifier (letters, digits, underscores; "
                "at most 41 characters)"
            )
        return value

    @field_validator("compression")
    @classmethod
    def _check_compression(cls, value: str) -> str:
        low = value.strip().lower()
        if low in _OFF:
            return "none"
        if low in _ON:
            return "zstd"
        if low in COMPRESSION_CODECS:
            return low
        raise ValueError(f"must be off, on, or one of {', '.join(COMPRESSION_CODECS)}")

    @field_validator("encryption")
    @classmethod
    def _check_encryption(cls, value: str) -> str:
        low = value.strip().lower()
        if low in _OFF:
            return "none"
        if low in _ON or low in ("aes-256-gcm", "aes256gcm"):
            return "aes-256-gcm"
        raise ValueError(
            "must be off or on (per-subject AES-256-GCM of declared personal fields, "
            "see docs/privacy.md)")


def default_home() -> Path:
    """Where embedded servers keep their data when no URL is configured."""
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg) / "evstore"
    if os.geteuid() == 0:
        # embedded PostgreSQL refuses to run as root and opens every parent
        # directory of its data folder: keep it out of /root.
        return Path("/var/lib/evstore")
    return Path.home() / ".local" / "share" / "evstore"


def home_dir() -> Path:
    """``Settings.home`` without reading every other setting (EVSTORE_HOME, or the default)."""
    home = os.environ.get("EVSTORE_HOME")
    return Path(home) if home else default_home()


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings; raise ConfigurationError naming the variable.

    The message says what is wrong, never the whole value that failed: a URL
    is shown by its scheme only, a secret not at all (it may be a password).
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = err["loc"][0] if err["loc"] else "?"
            name = _alias_of(str(loc))
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{name}: {message}{_shown(name, err.get('input'))}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None


# Variables whose value is never echoed, even in part.
SECRET_VARIABLES = frozenset({"EVSTORE_SECRET_KEY", "EVSTORE_PREVIOUS_SECRET_KEYS"})
URL_VARIABLES = frozenset({"DATABASE_URL", "DATABASE_READ_URL", "REDIS_URL"})
_SHOWN_CHARS = 20


def _shown(variable: str, raw: object) -> str:
    """A hint of the value that failed, never all of it (nor a secret)."""
    if variable in SECRET_VARIABLES or not isinstance(raw, str | int):
        return ""
    if isinstance(raw, int):
        return f" (got {raw})"
    if variable in URL_VARIABLES:
        scheme, sep, _rest = raw.partition("://")
        return f" (got a {scheme[:_SHOWN_CHARS]!r} URL)" if sep else " (got a value that is not a URL)"
    if len(raw) > _SHOWN_CHARS:
        return f" (got a value of {len(raw)} characters)"
    return f" (got {_hide_password(raw)!r})"


def _hide_password(value: object) -> object:
    """A URL's password never goes into a message (core/redaction.py)."""
    return redact_value(value)


def _alias_of(field_or_alias: str) -> str:
    field = Settings.model_fields.get(field_or_alias)
    if field is not None and isinstance(field.validation_alias, str):
        return field.validation_alias
    return field_or_alias
