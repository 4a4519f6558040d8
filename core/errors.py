"""The error tree of evstore.

Users catch these classes, never driver exceptions: every translation from
psycopg (or Redis, or fsspec) to one of them happens at a single place with
``raise ... from exc`` so the original cause stays attached.
"""

from __future__ import annotations


class EventStoreError(Exception):
    """Base class of every error evstore raises on purpose."""


class ConfigurationError(EventStoreError):
    """A setting (environment variable or argument) has a value we refuse."""


class StoreUnavailableError(EventStoreError):
    """The database cannot be reached, or refused the connection."""


class PermissionDeniedError(EventStoreError):
    """The database role this process connects as may not do that (least-privilege roles)."""


class SchemaNotInitializedError(EventStoreError):
    """The event store's tables are missing: run ``evstore init``."""


class EventValidationError(EventStoreError, ValueError):
    """An event (or a batch of events) is malformed; nothing was written."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        self.index = index
        prefix = f"event #{index}: " if index is not None else ""
        super().__init__(prefix + message)


class ConcurrencyError(EventStoreError):
    """The stream was not at the version the writer expected; nothing was written."""

    def __init__(self, stream_id: str, expected_version: object, actual_version: int) -> None:
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version
        shown = "no stream" if getattr(expected_version, "value", None) == "no_stream" else expected_version
        super().__init__(
            f"stream {stream_id!r}: expected version {shown}, "
            f"but the stream is at version {actual_version}"
        )


class DuplicateEventError(EventStoreError):
    """An event id is already stored at that position with different content."""

    def __init__(self, stream_id: str, event_id: object, position: int | None) -> None:
        self.stream_id = stream_id
        self.event_id = event_id
        self.position = position
        where = (
            f"at position {position} with different content"
            if position is not None
            else "in another stream (event ids must be unique)"
        )
        super().__init__(f"stream {stream_id!r}: event {event_id} is already stored {where}")


class IntegrityError(EventStoreError):
    """A stored event no longer matches its checksum."""

    def __init__(self, event_id: object, global_position: int, expected: str, actual: str) -> None:
        self.event_id = event_id
        self.global_position = global_position
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"event {event_id} (global position {global_position}) fails its checksum "
            f"(stored {expected[:20]}…, {actual}): it was changed outside the store, or the "
            "store's secret key (EVSTORE_SECRET_KEY) is not the one it was written with"
        )


class ReadLimitError(EventStoreError, ValueError):
    """A read would return more than the configured page byte cap: read it in pages."""


class UnknownEventTypeError(EventStoreError, ValueError):
    """A filter names event types the store has never seen."""

    def __init__(self, unknown: list[str], known: list[str]) -> None:
        self.unknown = unknown
        self.known = known
        shown = ", ".join(known[:20]) or "none yet"
        super().__init__(
            f"unknown event type(s): {', '.join(unknown)} (known: {shown})"
        )


class CodecError(EventStoreError):
    """A compression codec is unknown, unavailable, or the data is corrupt."""


class ArchiveError(EventStoreError):
    """An archive run, restore or verification could not complete; no event was deleted."""


class ArchiveTargetError(ArchiveError):
    """The archive target (a folder, bucket or container) is unreachable or refused an operation."""


class ArchiveIntegrityError(ArchiveError):
    """An archive file does not match its recorded SHA-256, count or event checksums."""


class ArchivedHistoryError(ArchiveError):
    """A read needs events that were archived and cannot be read from the archive
    (read-through is off, the target is unreachable, or a segment fails its checks).
    Raised instead of returning part of the history."""

    def __init__(self, stream_id: str, missing: str, runs: list[str], why: str) -> None:
        self.stream_id = stream_id
        self.missing = missing  # positions, as ranges "1-11, 15"
        self.runs = runs
        self.why = why
        super().__init__(
            f"stream {stream_id!r}: positions {missing} are archived (run "
            f"{', '.join(runs) or 'unknown'}) and {why}; nothing was returned rather than "
            "a partial history (restore the run, or enable EVSTORE_ARCHIVE_READ_THROUGH)"
        )


class ConsumerNotFoundError(EventStoreError, LookupError):
    """No checkpoint is saved under that name and consumer group."""

    def __init__(self, name: str, group: str) -> None:
        self.name = name
        self.group = group
        where = f" in group {group!r}" if group else ""
        super().__init__(f"no consumer checkpoint named {name!r}{where}")


class ConsumerBusyError(EventStoreError):
    """A consumer's partitions are leased by live members, so its checkpoint may not move."""

    def __init__(self, name: str, group: str, members: list[str]) -> None:
        self.name = name
        self.group = group
        self.members = members
        where = f" (group {group!r})" if group else ""
        super().__init__(
            f"consumer {name!r}{where} is running in {', '.join(members)}: stop it first "
            "(or pass --force)"
        )


class HandlerError(EventStoreError):
    """A stream reader's handler raised; the checkpoint stays before the failed batch."""

    def __init__(self, event_id: object, global_position: int | None, cause: BaseException) -> None:
        self.event_id = event_id
        self.global_position = global_position
        super().__init__(
            f"handler failed on event {event_id} (global position {global_position}): "
            f"{type(cause).__name__}: {cause}"
        )


class AggregateNotFoundError(EventStoreError, LookupError):
    """An aggregate has no events (and no snapshot)."""

    def __init__(self, aggregate_type: str, aggregate_id: str) -> None:
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        super().__init__(f"aggregate {aggregate_type}/{aggregate_id} has no events")


class JobError(EventStoreError):
    """A background job could not be started, found or changed."""


class JobNotFoundError(JobError, ValueError):
    """No job has this id."""

    def __init__(self, job_id: object) -> None:
        self.job_id = job_id
        super().__init__(f"no job with id {job_id} (see 'evstore jobs list')")


class InvalidJobError(JobError, ValueError):
    """A job's parameters are refused (unknown handler, empty or inverted range); nothing was created."""


class BrokerUnavailableError(StoreUnavailableError):
    """The message broker (Redis) cannot be reached; no job was left half-created."""


class SnapshotBuildError(EventStoreError):
    """Building one aggregate's snapshot failed (its apply or save raised)."""

    def __init__(self, aggregate_id: str, cause: BaseException) -> None:
        self.aggregate_id = aggregate_id
        super().__init__(
            f"snapshot of aggregate {aggregate_id} failed: {type(cause).__name__}: {cause}"
        )


class QueryError(EventStoreError, ValueError):
    """An event query is refused as written: unknown field or operator, malformed path, bad cursor."""


class QueryLimitError(EventStoreError):
    """An event query went past a guard rail (statement timeout, row budget); nothing was returned."""
