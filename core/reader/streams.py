"""What a stream reader is asked to do: StreamReadMode, StreamConfig, ReaderMetrics.

See ``docs/reader.md``. The reader itself is :mod:`evstore.core.reader.reader`.
"""

from __future__ import annotations

import enum
import hashlib
import re
import warnings
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from typing import Any

from ..errors import ConfigurationError
from ..store.persistence import EventRecord, Position

# Matched with fullmatch: "$" would also accept a name ending in a newline.
_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")


class StreamReadMode(enum.Enum):
    """How a reader moves through the global order."""

    # Read what exists now (from the checkpoint), save the checkpoint, stop.
    BATCH = "batch"
    # Read the history from the checkpoint, then keep following new events.
    CATCH_UP = "catch_up"
    # Only events appended from the reader's start on, then keep following.
    STREAMING = "streaming"
    # Everything from the beginning up to now, ignoring the checkpoint and
    # never moving it; then stop.
    REPLAY = "replay"

    @property
    def live(self) -> bool:
        return self in (StreamReadMode.CATCH_UP, StreamReadMode.STREAMING)


@dataclass(frozen=True)
class StreamConfig:
    """A reader's settings.

    ``checkpoint_name`` and ``consumer_group`` key the saved checkpoint. Readers
    that share both form a consumer group: the streams are split into
    ``shards`` shards and each shard is handled by one member at a time.
    Without a group (``""``) there is one shard, so at most one reader of that
    name runs at a time. ("Partition" names only the monthly table partitions;
    ``partitions=`` is still accepted for ``shards=``, with a DeprecationWarning.)
    """

    # Without one, the consumer group's name (the spec's StreamConfig(consumer_group=...)).
    checkpoint_name: str = ""
    consumer_group: str = ""
    mode: StreamReadMode = StreamReadMode.CATCH_UP
    batch_size: int = 500
    event_types: tuple[str, ...] | None = None
    aggregate_types: tuple[str, ...] | None = None
    # Handler threads of this member; events of one stream always go to the same one.
    concurrency: int = 1
    # Most events read but not yet handled in order (the bounded queue, and the
    # most a kill delivers again); >= batch_size.
    queue_size: int | None = None
    # Shards of a consumer group (fixed for the group's life; 1 without a group).
    shards: int = 16
    # Seconds a lease (member and shards) lasts without a heartbeat.
    lease_ttl: float = 10.0
    heartbeat_interval: float | None = None
    # Longest wait between reads when no notification arrives (the polling fallback).
    poll_interval: float = 1.0
    # Seconds between refreshes of the lag in metrics() (0: on every call).
    lag_interval: float = 5.0
    member_id: str | None = None
    # Archived months too (issue 13, core/archive/tiers.py): a BATCH or REPLAY reader
    # gets archived and live events in the one global order, each once.
    include_archived: bool = False
    # Deprecated spelling of ``shards`` (init only).
    partitions: InitVar[int | None] = None
    # The spec's handler, called by process_stream() (run(handler) takes its own).
    event_handler: Callable[[EventRecord], Any] | None = field(default=None, compare=False)
    # The spec's spelling of ``mode`` (init only).
    read_mode: InitVar[StreamReadMode | None] = None

    def __post_init__(self, partitions: int | None, read_mode: StreamReadMode | None) -> None:
        if read_mode is not None:
            if self.mode not in (StreamReadMode.CATCH_UP, read_mode):
                raise ConfigurationError("give mode or its spec name read_mode, not both")
            object.__setattr__(self, "mode", read_mode)
        if not self.checkpoint_name:
            object.__setattr__(self, "checkpoint_name", self.consumer_group)
        if partitions is not None:
            warnings.warn("StreamConfig(partitions=...) is deprecated: use shards=...",
                          DeprecationWarning, stacklevel=3)
            if self.shards not in (16, partitions):
                raise ConfigurationError(
                    f"give shards ({self.shards}) or its old name partitions ({partitions}), "
                    "not both"
                )
            object.__setattr__(self, "shards", partitions)
        if not _NAME.fullmatch(self.checkpoint_name):
            raise ConfigurationError(
                f"checkpoint_name {self.checkpoint_name!r} must be 1-100 letters, digits or _.:-"
            )
        if self.consumer_group and not _NAME.fullmatch(self.consumer_group):
            raise ConfigurationError(
                f"consumer_group {self.consumer_group!r} must be 1-100 letters, digits or _.:-"
            )
        if not isinstance(self.mode, StreamReadMode):
            object.__setattr__(self, "mode", StreamReadMode(self.mode))
        for name in ("event_types", "aggregate_types"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, str) or not list(value):
                    raise ConfigurationError(f"{name} must be a non-empty list of names")
                object.__setattr__(self, name, tuple(value))
        if not 1 <= self.batch_size <= 100_000:
            raise ConfigurationError(f"batch_size must be 1..100000 (got {self.batch_size})")
        if not 1 <= self.concurrency <= 256:
            raise ConfigurationError(f"concurrency must be 1..256 (got {self.concurrency})")
        if self.queue_size is not None and self.queue_size < self.batch_size:
            raise ConfigurationError(
                f"queue_size ({self.queue_size}) must be at least batch_size ({self.batch_size})"
            )
        if not 1 <= self.shards <= 4096:
            raise ConfigurationError(f"shards must be 1..4096 (got {self.shards})")
        if self.lease_ttl < 0.5:
            raise ConfigurationError(f"lease_ttl must be at least 0.5 s (got {self.lease_ttl})")
        if self.heartbeat_interval is not None and not (
            0 < self.heartbeat_interval < self.lease_ttl
        ):
            raise ConfigurationError("heartbeat_interval must be > 0 and below lease_ttl")
        if self.poll_interval <= 0:
            raise ConfigurationError(f"poll_interval must be > 0 (got {self.poll_interval})")

    @property
    def shard_count(self) -> int:
        """The shards this reader's checkpoint has: ``shards`` in a group, else 1."""
        return self.shards if self.consumer_group else 1

    @property
    def capacity(self) -> int:
        """The bound on events read ahead of the handlers."""
        return self.queue_size if self.queue_size is not None else 2 * self.batch_size

    @property
    def heartbeat_every(self) -> float:
        return self.heartbeat_interval or self.lease_ttl / 3


def shard_of(stream_id: str, shards: int) -> int:
    """The consumer-group shard of a stream; the SQL twin is in sql/reader.sql (``lag``)."""
    if shards == 1:
        return 0
    digest = hashlib.md5(stream_id.encode(), usedforsecurity=False).hexdigest()
    return int(digest[:8], 16) % shards


@dataclass(frozen=True)
class ReaderMetrics:
    """A reader's progress: what it handled, how fast, and how far behind it is."""

    processed: int
    rate: float  # events handled per second over the last few seconds
    lag_events: int | None  # events after the checkpoint (None: not measured yet)
    lag_seconds: float | None  # age of the oldest event not yet handled
    events_read: int  # events read and handed to the handlers so far
    read_ahead: int  # events read and not yet handled in order now (counted in the queue)
    max_read_ahead: int  # the most there ever were (bounded by the queue size)
    batches: int
    reads: int
    checkpoint: Position | None
    shards: tuple[int, ...]  # the shards this member owns
    # Seconds the reader ran, once process_stream() returned (None meanwhile).
    elapsed_seconds: float | None = None

    @property
    def events_processed(self) -> int:
        """The spec's name of ``processed``."""
        return self.processed

    @property
    def processing_rate_per_second(self) -> float:
        """The spec's rate: over the whole run once it ended, else over the last few seconds."""
        if self.elapsed_seconds:
            return self.processed / self.elapsed_seconds
        return self.rate
