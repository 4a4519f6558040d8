"""Archival policies: what to archive, where to, and whether to delete it afterwards.

Strategies (the spec's ArchivalStrategy):

- ``TIME_BASED``: events older than ``retention_days``. The unit is the whole
  monthly partition: a month is archived once all of it is older than the
  cutoff, and its partition is detached and dropped (no row-by-row delete).
- ``COUNT_BASED``: keep the newest ``keep_events`` events of each stream;
  older ones are archived and deleted row by row.
- ``SIZE_BASED``: keep the events table under ``max_bytes`` (as PostgreSQL
  reports the partitions' total size): the oldest closed months are archived
  and dropped until the rest fits. Dropping partitions is what frees disk;
  deleted rows would not.
- ``GDPR_BASED``: events older than ``retention_days`` are anonymized before
  upload (``anonymize_before_archive``) and deleted row by row.

Policies are registered by name (:func:`register_policy`) or read from the
``[archive.policies.NAME]`` tables of the configuration file, where a time
or GDPR policy without ``retention_days`` takes EVENT_STORE_RETENTION_DAYS.
"""

from __future__ import annotations

import enum
import re
import threading
from dataclasses import InitVar, asdict, dataclass, fields
from typing import Any, cast

from ..config import load_settings
from ..config_file import config_source, policy_table, policy_tables
from ..errors import ConfigurationError
from .targets import check_backend

_REQUIRED = cast("ArchivalStrategy", None)  # a strategy must be given
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")  # whole names only: fullmatch


class ArchivalStrategy(enum.Enum):
    TIME_BASED = "time_based"
    COUNT_BASED = "count_based"
    SIZE_BASED = "size_based"
    GDPR_BASED = "gdpr_based"

    @classmethod
    def parse(cls, value: str | ArchivalStrategy) -> ArchivalStrategy:
        if isinstance(value, ArchivalStrategy):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            known = ", ".join(s.value for s in cls)
            raise ConfigurationError(f"unknown archival strategy {value!r} (known: {known})") from None


@dataclass(frozen=True)
class ArchivalPolicy:
    """One archival policy (the spec's ArchivalPolicy).

    The spec's spellings are accepted too: ``policy_name=`` for ``name``,
    ``gdpr_retention_days=`` for ``retention_days``; without ``target_url`` a
    policy archives to ``$EVSTORE_HOME/archive``.
    """

    name: str = ""
    strategy: ArchivalStrategy = _REQUIRED
    target_url: str = ""
    retention_days: int | None = None
    keep_events: int | None = None
    max_bytes: int | None = None
    delete_after_archive: bool = True
    # None: True for GDPR_BASED, False otherwise.
    anonymize_before_archive: bool | None = None
    anonymizer: str = "redact"
    event_types: tuple[str, ...] = ()
    aggregate_types: tuple[str, ...] = ()
    segment_size: int = 10_000
    schedule: str | None = None
    # The spec's names (init only).
    policy_name: InitVar[str | None] = None
    gdpr_retention_days: InitVar[int | None] = None

    def __post_init__(self, policy_name: str | None, gdpr_retention_days: int | None) -> None:
        for alias, value, field_name in (("policy_name", policy_name, "name"),
                                         ("gdpr_retention_days", gdpr_retention_days,
                                          "retention_days")):
            if value is not None:
                if getattr(self, field_name) not in (None, "", value):
                    raise ConfigurationError(f"give {field_name} or its spec name {alias}, not both")
                object.__setattr__(self, field_name, value)
        if self.strategy is None:
            raise ConfigurationError(f"archival policy {self.name!r}: a strategy is required")
        if not self.target_url:
            object.__setattr__(self, "target_url", (load_settings().home / "archive").as_uri())
        object.__setattr__(self, "strategy", ArchivalStrategy.parse(self.strategy))
        object.__setattr__(self, "event_types", tuple(self.event_types))
        object.__setattr__(self, "aggregate_types", tuple(self.aggregate_types))
        where = f"archival policy {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ConfigurationError(
                f"{where}: the name must be letters, digits, '.', '_' or '-' (at most 63)"
            )
        check_backend(self.target_url)
        s = self.strategy
        if s in (ArchivalStrategy.TIME_BASED, ArchivalStrategy.GDPR_BASED):
            if not isinstance(self.retention_days, int) or self.retention_days < 0:
                raise ConfigurationError(f"{where}: {s.value} needs retention_days >= 0")
        if s is ArchivalStrategy.COUNT_BASED and (
            not isinstance(self.keep_events, int) or self.keep_events < 0
        ):
            raise ConfigurationError(f"{where}: count_based needs keep_events >= 0")
        if s is ArchivalStrategy.SIZE_BASED and (
            not isinstance(self.max_bytes, int) or self.max_bytes < 0
        ):
            raise ConfigurationError(f"{where}: size_based needs max_bytes >= 0")
        if not 1 <= self.segment_size <= 1_000_000:
            raise ConfigurationError(f"{where}: segment_size must be between 1 and 1000000")
        if self.anonymize_before_archive is None:
            object.__setattr__(
                self, "anonymize_before_archive", s is ArchivalStrategy.GDPR_BASED
            )

    @property
    def drops_partitions(self) -> bool:
        """Whole months go (detach and drop) rather than rows one by one."""
        return (
            self.strategy in (ArchivalStrategy.TIME_BASED, ArchivalStrategy.SIZE_BASED)
            and not self.event_types
            and not self.aggregate_types
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["strategy"] = self.strategy.value
        out["event_types"] = list(self.event_types)
        out["aggregate_types"] = list(self.aggregate_types)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str | None = None) -> ArchivalPolicy:
        data = dict(data)
        if name is not None:
            data.setdefault("name", name)
        if "target" in data:
            data.setdefault("target_url", data.pop("target"))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        where = f"archival policy {data.get('name', '?')!r}"
        if unknown:
            raise ConfigurationError(f"{where}: unknown setting(s) {', '.join(unknown)}")
        for required in ("name", "strategy", "target_url"):
            if not data.get(required):
                raise ConfigurationError(f"{where}: '{required}' is required")
        return cls(**data)


_registry: dict[str, ArchivalPolicy] = {}
_lock = threading.Lock()


def register_policy(policy: ArchivalPolicy) -> ArchivalPolicy:
    """Register (or replace) a policy under its name, for this process."""
    with _lock:
        _registry[policy.name] = policy
    return policy


def unregister_policy(name: str) -> None:
    with _lock:
        _registry.pop(name, None)


def _from_file(name: str, table: dict[str, Any]) -> ArchivalPolicy:
    """One policy of the configuration file; a clear error naming the file, policy and key."""
    default_days = load_settings().retention_days  # EVENT_STORE_RETENTION_DAYS
    if default_days is not None and str(table.get("strategy", "")).lower() in (
        ArchivalStrategy.TIME_BASED.value, ArchivalStrategy.GDPR_BASED.value
    ):
        table = {"retention_days": default_days, **table}
    try:
        return ArchivalPolicy.from_dict(table, name)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{config_source()}: [archive.policies.{name}]: {exc}") from None


def list_policies(broken: dict[str, str] | None = None) -> dict[str, ArchivalPolicy]:
    """Policies of the configuration file, then those registered in this process.

    A policy of the file that does not parse raises, unless ``broken`` is
    given: it then collects ``{name: error}`` and the others are listed.
    """
    found = {}
    for name, table in policy_tables().items():
        try:
            found[name] = _from_file(name, table)
        except ConfigurationError as exc:
            if broken is None:
                raise
            broken[name] = str(exc)
    with _lock:
        found.update(_registry)
    return dict(sorted(found.items()))


def get_policy(name: str) -> ArchivalPolicy:
    """The policy ``name``: only it is read, so another broken policy does not stop this one."""
    with _lock:
        if name in _registry:
            return _registry[name]
    table = policy_table(name)
    if table is None:
        with _lock:
            registered = set(_registry)
        known = ", ".join(sorted(set(policy_tables()) | registered)) or "none configured"
        raise ConfigurationError(f"unknown archival policy {name!r} (known: {known})")
    return _from_file(name, table)
