"""Which fields of which event types are personal data, and whose.

A :class:`PersonalData` declaration names, for one event type (and version),
the paths of its personal fields and the path of its *subject* (the person the
data is about)::

    PersonalData("UserRegistered", ("data.email", "data.name", "data.addresses[].street"),
                 subject="aggregate_id", aggregate_type="User")
    PersonalData("PageViewed", ("metadata.ip_address",))        # subject: metadata.user_id

Paths start at ``data`` (the event data), ``metadata`` or ``aggregate_id``;
``.`` goes into an object and ``[]`` into every item of a list. The subject is
matched exactly: the value at the declared subject path, of events of the
declared event type (and, when given, aggregate type), never a bare aggregate
id across aggregate types.

Declarations are versioned with the event type: an event of version ``n`` uses
the declaration of the highest version ``<= n``. They come from code
(:func:`declare` on the process-wide registry, or ``PrivacyRegistry.declare``)
and from the configuration file (``core/config_file.py``)::

    [privacy.UserRegistered]
    fields = ["data.email", "data.name", "data.addresses[].street"]
    subject = "aggregate_id"
    aggregate_type = "User"
    version = 1                          # optional, default 1

    [privacy.UserRenamed.versions.2]     # several versions of one event type
    fields = ["data.new_name"]

A file declaration replaces a code declaration of the same event type and
version. :func:`registry_for` gives the merged registry.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config_file import config_source, expand, load_config
from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..config import Settings

DEFAULT_SUBJECT = "metadata.user_id"
ROOTS = ("data", "metadata")
_SEGMENT = re.compile(r"[A-Za-z0-9_\-$@:]+(\[\])?\Z")


@functools.lru_cache(maxsize=4096)  # (immutable result; a bad path raises, and is not cached)
def parse_path(path: str, *, where: str = "path") -> tuple[str, tuple[tuple[str, bool], ...]]:
    """``"data.addresses[].street"`` -> ``("data", (("addresses", True), ("street", False)))``.

    The second item of each step says whether it is a list whose every item
    the path goes into. ``aggregate_id`` is the root alone with no steps.
    """
    if path == "aggregate_id":
        return "aggregate_id", ()
    root, _, rest = path.partition(".")
    if root not in ROOTS or not rest:
        raise ConfigurationError(
            f"{where}: {path!r} is not a field path: it must be 'aggregate_id' or start with "
            "'data.' or 'metadata.' (e.g. 'data.email', 'data.addresses[].street')"
        )
    steps = []
    for part in rest.split("."):
        if not _SEGMENT.match(part):
            raise ConfigurationError(f"{where}: {path!r}: bad step {part!r}")
        steps.append((part.removesuffix("[]"), part.endswith("[]")))
    return root, tuple(steps)


@dataclass(frozen=True)
class PersonalData:
    """The personal fields of one event type (from ``version`` on) and the path of their subject."""

    event_type: str
    fields: tuple[str, ...]
    subject: str = DEFAULT_SUBJECT
    aggregate_type: str | None = None
    version: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.fields, str | bytes):
            raise ConfigurationError(f"privacy.{self.event_type}: fields must be a list of paths")
        object.__setattr__(self, "fields", tuple(self.fields))
        where = f"privacy.{self.event_type}"
        if not self.event_type or not isinstance(self.event_type, str):
            raise ConfigurationError("a personal-data declaration needs an event type")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ConfigurationError(f"{where}: version must be an integer >= 1")
        for path in self.fields:
            root, steps = parse_path(path, where=where)
            if root == "aggregate_id":
                raise ConfigurationError(f"{where}: aggregate_id is an identifier, not a personal field")
        root, steps = parse_path(self.subject, where=f"{where}.subject")
        if any(is_list for _, is_list in steps):
            raise ConfigurationError(f"{where}: the subject path {self.subject!r} must name one value")
        if self.subject in self.fields:
            raise ConfigurationError(
                f"{where}: the subject path {self.subject!r} cannot also be a personal field "
                "(it is the pseudonymous id the subject is found by)"
            )

    def subject_steps(self) -> tuple[str, tuple[str, ...]]:
        """The subject path as (root, keys), for a SQL ``#>>`` lookup."""
        root, steps = parse_path(self.subject)
        return root, tuple(name for name, _ in steps)


def _parts(event: Any) -> tuple[str, int, str | None, str | None, Any, Any]:
    """(event_type, event_version, aggregate_type, aggregate_id, data, metadata) of a record or dict."""
    if isinstance(event, Mapping):
        meta = event.get("metadata")
        data = event.get("event_data", event.get("data"))
        return (event.get("event_type", ""), int(event.get("event_version") or 1),
                event.get("aggregate_type"), event.get("aggregate_id"), data, meta)
    meta = getattr(event, "metadata", None)
    if meta is not None and not isinstance(meta, Mapping) and hasattr(meta, "to_dict"):
        meta = meta.to_dict()
    return (event.event_type, int(getattr(event, "event_version", 1) or 1),
            getattr(event, "aggregate_type", None), getattr(event, "aggregate_id", None),
            getattr(event, "event_data", None), meta)


def values_at(doc: Any, steps: tuple[tuple[str, bool], ...]) -> Iterator[Any]:
    """Every value at ``steps`` inside ``doc`` (none when a step is missing)."""
    if not steps:
        yield doc
        return
    (name, is_list), rest = steps[0], steps[1:]
    if not isinstance(doc, Mapping) or name not in doc:
        return
    value = doc[name]
    if is_list:
        if isinstance(value, list):
            for item in value:
                yield from values_at(item, rest)
        return
    yield from values_at(value, rest)


def transform_at(doc: Any, steps: tuple[tuple[str, bool], ...], fn: Callable[[Any], Any]) -> int:
    """Replace in place every value at ``steps`` (not None) by ``fn(value)``; how many were replaced."""
    if not steps or not isinstance(doc, dict):
        return 0
    (name, is_list), rest = steps[0], steps[1:]
    if name not in doc:
        return 0
    count = 0
    if is_list:
        items = doc[name]
        if not isinstance(items, list):
            return 0
        for i, item in enumerate(items):
            if rest:
                count += transform_at(item, rest, fn)
            elif item is not None:
                items[i] = fn(item)
                count += 1
        return count
    if rest:
        return transform_at(doc[name], rest, fn)
    if doc[name] is not None:
        doc[name] = fn(doc[name])
        return 1
    return 0


class PrivacyRegistry:
    """Declarations by event type and version (thread-safe)."""

    def __init__(self, declarations: tuple[PersonalData, ...] | list[PersonalData] = ()) -> None:
        self._lock = threading.Lock()
        self._by_type: dict[str, dict[int, PersonalData]] = {}
        self.generation = 0  # bumped by every declare(): a reader's cheap "changed?" check
        for pd in declarations:
            self.declare(pd)

    def declare(self, pd: PersonalData) -> PersonalData:
        if not isinstance(pd, PersonalData):
            raise TypeError("declare() takes a PersonalData")
        with self._lock:
            self._by_type.setdefault(pd.event_type, {})[pd.version] = pd
            self.generation += 1
        return pd

    def declarations(self) -> list[PersonalData]:
        with self._lock:
            return [pd for versions in self._by_type.values() for _, pd in sorted(versions.items())]

    def event_types(self) -> set[str]:
        with self._lock:
            return set(self._by_type)

    def for_event_type(self, event_type: str, version: int | None = None) -> PersonalData | None:
        """The declaration an event of this type (and version: latest when None) uses, if any."""
        with self._lock:
            versions = self._by_type.get(event_type)
            if not versions:
                return None
            usable = [v for v in versions if version is None or v <= version]
            return versions[max(usable)] if usable else None

    def declaration_of(self, event: Any) -> PersonalData | None:
        """The declaration that applies to ``event`` (its type, version and aggregate type)."""
        event_type, version, aggregate_type, _, _, _ = _parts(event)
        pd = self.for_event_type(event_type, version)
        if pd is None or (pd.aggregate_type is not None and pd.aggregate_type != aggregate_type):
            return None
        return pd

    def subject_of(self, event: Any) -> str | None:
        """The subject id of ``event`` (the value at its declared subject path), or None."""
        pd = self.declaration_of(event)
        if pd is None:
            return None
        _, _, _, aggregate_id, data, meta = _parts(event)
        root, steps = parse_path(pd.subject)
        if root == "aggregate_id":
            value = aggregate_id
        else:
            found = list(values_at(data if root == "data" else meta, steps))
            value = found[0] if found else None
        if value is None or isinstance(value, dict | list) or value == "":
            return None
        return str(value)

    def has_personal_data(self, event: Any) -> bool:
        """Whether ``event`` has a declaration with at least one of its fields present."""
        pd = self.declaration_of(event)
        if pd is None:
            return False
        _, _, _, _, data, meta = _parts(event)
        for path in pd.fields:
            root, steps = parse_path(path)
            if any(v is not None for v in values_at(data if root == "data" else meta, steps)):
                return True
        return False


# The process-wide code registry: applications declare here at import time.
default_registry = PrivacyRegistry()


def declare(pd: PersonalData) -> PersonalData:
    """Declare personal data in the process-wide code registry."""
    return default_registry.declare(pd)


def _from_table(event_type: str, table: Any, version: int | None) -> PersonalData:
    where = f"{config_source()}: [privacy.{event_type}]"
    if not isinstance(table, dict):
        raise ConfigurationError(f"{where} must be a table")
    unknown = set(table) - {"fields", "subject", "aggregate_type", "version"}
    if unknown:
        raise ConfigurationError(f"{where}: unknown keys {sorted(unknown)} "
                                 "(known: fields, subject, aggregate_type, version)")
    fields = table.get("fields")
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise ConfigurationError(f'{where}: fields must be a list of paths, e.g. ["data.email"]')
    return PersonalData(
        event_type, tuple(fields), subject=table.get("subject", DEFAULT_SUBJECT),
        aggregate_type=table.get("aggregate_type"),
        version=version if version is not None else table.get("version", 1),
    )


def file_declarations() -> list[PersonalData]:
    """The ``[privacy.<EventType>]`` tables of the configuration file."""
    section = load_config().get("privacy", {})
    if not isinstance(section, dict):
        raise ConfigurationError(f"{config_source()}: [privacy] must be a table of event types")
    out = []
    for event_type, table in section.items():
        table = expand(table, f"privacy.{event_type}")
        if isinstance(table, dict) and "versions" in table and "fields" not in table:
            versions = table["versions"]
            if not isinstance(versions, dict):
                raise ConfigurationError(f"[privacy.{event_type}.versions] must be a table")
            for v, sub in versions.items():
                try:
                    number = int(v)
                except ValueError:
                    raise ConfigurationError(
                        f"[privacy.{event_type}.versions.{v}]: the version must be a number") from None
                out.append(_from_table(event_type, sub, number))
        else:
            out.append(_from_table(event_type, table, None))
    return out


def registry_for(settings: Settings | None = None) -> PrivacyRegistry:
    """The code declarations merged with the configuration file's (the file wins)."""
    del settings  # the file comes from EVSTORE_CONFIG / EVSTORE_HOME, like the archive policies
    return PrivacyRegistry([*default_registry.declarations(), *file_declarations()])
