"""Aggregates that can be rebuilt from their events and saved in snapshots.

An aggregate class declares three things (see ``docs/snapshots.md``):

- ``apply(event)``: change the state by one event (never I/O, never time);
- ``save() -> dict``: the state as JSON-able data;
- ``restore(state)``: set the state from what ``save`` returned.

and two class attributes: ``aggregate_type`` (the events' aggregate type) and
``state_schema`` (an integer to raise whenever the shape of ``save``'s output
changes: snapshots of another schema are then ignored, not mis-loaded).
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from ..errors import ConfigurationError
from ..store.persistence import EventRecord


@runtime_checkable
class SnapshotAggregate(Protocol):
    """What the snapshot machinery needs of an aggregate (the Aggregate base has it)."""

    aggregate_type: ClassVar[str]
    state_schema: ClassVar[int]
    id: str
    version: int

    def __init__(self, aggregate_id: str) -> None: ...

    def apply(self, event: EventRecord) -> None: ...

    def save(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...


A = TypeVar("A", bound=SnapshotAggregate)


class Aggregate:
    """A convenient base: subclasses set ``aggregate_type`` and write the three methods."""

    aggregate_type: ClassVar[str] = ""
    state_schema: ClassVar[int] = 1

    def __init__(self, aggregate_id: str) -> None:
        self.id = aggregate_id
        self.version = 0

    def apply(self, event: EventRecord) -> None:
        raise NotImplementedError(f"{type(self).__name__}.apply(event) is not written")

    def save(self) -> dict[str, Any]:
        raise NotImplementedError(f"{type(self).__name__}.save() is not written")

    def restore(self, state: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__}.restore(state) is not written")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} v{self.version}>"


def type_of(cls: type[Any], aggregate_type: str | None = None) -> str:
    """The aggregate type to use: the argument, else the class's ``aggregate_type``."""
    found = aggregate_type or getattr(cls, "aggregate_type", "")
    if not found:
        raise ConfigurationError(
            f"{cls.__name__} has no aggregate_type: set the class attribute or pass aggregate_type"
        )
    return str(found)


def state_schema_of(cls: type[Any]) -> int:
    """The version of the class's state layout (``state_schema``, 1 when unset)."""
    return int(getattr(cls, "state_schema", 1))


def class_path(cls: type[Any]) -> str:
    """``module:QualName``, importable in another process (a worker)."""
    return f"{cls.__module__}:{cls.__qualname__}"


def import_class(path: str) -> type[Any]:
    """The class named by ``module:QualName`` (or ``module.QualName``)."""
    module, sep, name = path.partition(":")
    if not sep:
        module, _, name = path.rpartition(".")
    if not module or not name:
        raise ConfigurationError(f"aggregate class {path!r}: expected 'package.module:ClassName'")
    try:
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot import aggregate class {path!r}: {exc}") from exc
    if not isinstance(obj, type):
        raise ConfigurationError(f"{path!r} is not a class")
    return obj
