"""Settings of the job engine and its workers, from the environment.

Validated once; a bad value raises ConfigurationError naming the variable.
Producers and workers of one deployment must agree on the namespace and the
queue (they do when they share the environment).
"""

from __future__ import annotations

import re

from evstore.core.errors import ConfigurationError
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

QUEUE_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"


class JobSettings(BaseSettings):
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore", populate_by_name=True,
                                      frozen=True)

    # Redis key prefix of the Dramatiq broker: one per event store.
    namespace: str = Field(default="evstore", validation_alias="EVSTORE_DRAMATIQ_NAMESPACE")
    queue: str = Field(default="evstore_jobs", validation_alias="EVSTORE_JOB_QUEUE")
    # Dramatiq's Retries: attempts after the first, and the exponential backoff.
    max_retries: int = Field(default=3, ge=0, le=100, validation_alias="EVSTORE_JOB_MAX_RETRIES")
    min_backoff_ms: int = Field(default=1000, ge=1, validation_alias="EVSTORE_JOB_MIN_BACKOFF_MS")
    max_backoff_ms: int = Field(default=60_000, ge=1, validation_alias="EVSTORE_JOB_MAX_BACKOFF_MS")
    # A batch running longer than this is interrupted (and retried).
    time_limit_ms: int = Field(default=3_600_000, ge=1000, validation_alias="EVSTORE_JOB_TIME_LIMIT_MS")
    # How often each worker process looks for batches whose worker died (0: never).
    sweep_interval: float = Field(default=10.0, ge=0, validation_alias="EVSTORE_JOB_SWEEP_INTERVAL")
    # Dramatiq's own redelivery of a dead worker's unacknowledged messages
    # (also those it had prefetched but not started): after this silence ...
    heartbeat_timeout_ms: int = Field(default=30_000, ge=1000,
                                      validation_alias="EVSTORE_BROKER_HEARTBEAT_TIMEOUT_MS")
    # ... noticed by a broker command with this chance per million.
    maintenance_chance: int = Field(default=100_000, ge=1, le=1_000_000,
                                    validation_alias="EVSTORE_BROKER_MAINTENANCE_CHANCE")
    # Dotted module paths imported by every worker (and producer) to register handlers
    # (and job kinds, aggregate classes): the only operator code a worker imports.
    handler_modules: str = Field(default="", validation_alias="EVSTORE_HANDLER_MODULES")
    # 'module:Class' paths of the aggregate classes snapshot builds may name.
    aggregate_classes: str = Field(default="", validation_alias="EVSTORE_AGGREGATE_CLASSES")

    @field_validator("queue", "namespace")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not value or any(c not in QUEUE_NAME_CHARS for c in value) or value[0] in ".-":
            raise ValueError("must be letters, digits, '_', '.' or '-' (not starting with . or -)")
        return value

    @field_validator("handler_modules")
    @classmethod
    def _check_modules(cls, value: str) -> str:
        for name in _split(value):
            if not _MODULE.match(name):
                raise ValueError(f"{name[:80]!r} is not a dotted module name")
        return value

    @field_validator("aggregate_classes")
    @classmethod
    def _check_classes(cls, value: str) -> str:
        for name in _split(value):
            if not _CLASS.match(name):
                raise ValueError(f"{name[:80]!r} is not a 'package.module:Class' name")
        return value

    @property
    def modules(self) -> list[str]:
        return _split(self.handler_modules)

    @property
    def aggregate_class_paths(self) -> list[str]:
        return _split(self.aggregate_classes)


_MODULE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\Z")
_CLASS = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\Z")


def _split(value: str) -> list[str]:
    return [m.strip() for m in value.replace(";", ",").split(",") if m.strip()]


def load_job_settings(**overrides: object) -> JobSettings:
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return JobSettings(**clean)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = str(err["loc"][0]) if err["loc"] else "?"
            field = JobSettings.model_fields.get(loc)
            name = field.validation_alias if field and isinstance(field.validation_alias, str) else loc
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{name}: {message} (got {str(err.get('input'))[:80]!r})")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None
