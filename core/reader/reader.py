"""EventStreamReader: the global order, checkpointed, shared by a consumer group.

One loop per member reads pages of ``read_all`` (the store's safe global
order) from its position, keeps the events of the shards it owns, and
submits them to a :class:`~evstore.core.reader.dispatch.Dispatcher` (bounded, per-
stream ordered handler threads). When a batch and every batch before it were
handled, the page's checkpoint is saved for the owned shards. A heartbeat
thread renews the member's leases; when the group's membership changes the
loop drains what is in flight, saves, then releases and claims shards.
At the head, live modes wait for a notification (LISTEN/NOTIFY) or the poll
interval. See ``docs/reader.md``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import replace
from functools import partial

from ..archive.tiers import read_all_tiers
from ..errors import ConfigurationError, ConsumerBusyError, HandlerError, StoreUnavailableError
from ..store import hooks
from ..store.persistence import START, EventStore, Position
from .checkpoints import CheckpointStore
from .dispatch import Dispatcher, Handler
from .groups import Membership
from .notify import Listener
from .saving import SaveQueue
from .streams import ReaderMetrics, StreamConfig, StreamReadMode, shard_of

log = logging.getLogger(__name__)
_SLICE = 0.1  # longest the loop sleeps without looking at its flags
_MIN_BACKOFF = 0.01  # first wait when committed events are held back by an older transaction


class EventStreamReader:
    """Read the global order with a saved checkpoint, alone or in a consumer group.

    ``run(handler)`` blocks (until the end in BATCH and REPLAY modes, until
    :meth:`stop` in live modes); ``start(handler)`` runs it in a thread. The
    handler is called once per event, in per-stream order, from a handler
    thread; when it raises, the reader stops and ``run`` raises
    :class:`HandlerError` with the checkpoint left before the failed batch.
    """

    def __init__(self, store: EventStore, config: StreamConfig) -> None:
        self.store = store
        self.config = config
        self.checkpoints = CheckpointStore(store)
        self.member_id = config.member_id or (
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        )
        self._stop = threading.Event()
        self._rebalance = threading.Event()
        self._membership: Membership | None = None
        self._dispatcher: Dispatcher | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.reads = 0
        self.batches = 0
        self.position: Position | None = None
        self.saved: Position | None = None
        self._lag: tuple[int | None, float | None, float] = (None, None, 0.0)
        self.running = threading.Event()
        # loop state
        self._floors: dict[int, Position] = {}
        self._start_head: Position | None = None
        self._until: Position | None = None
        self._skip: set[int] = set()  # STREAMING: transactions committed before the start
        self._saves = SaveQueue(self.checkpoints, config.checkpoint_name, config.consumer_group,
                                self.member_id)
        self._target: set[int] | None = None
        self._backoff = _MIN_BACKOFF
        # Who reads and why (the creator's access context): one access-log entry per
        # delivered page with personal data, not per page read (issue 11).
        self._access = hooks.current_access()

    # -- public API -------------------------------------------------------------

    def start(self, handler: Handler) -> threading.Thread:
        def target() -> None:
            try:
                self.run(handler)
            except BaseException as exc:  # surfaced by join()
                self._error = exc

        self._thread = threading.Thread(target=target, name=f"evstore-reader-{self.member_id}",
                                        daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        """Ask the reader to finish what is in flight, save, release its shards, return."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for a reader started with :meth:`start`; re-raise its error."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"reader {self.member_id} still running after {timeout} s")
        if self._error is not None:
            raise self._error

    def __enter__(self) -> EventStreamReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.join()

    @property
    def blocked_on_handlers(self) -> bool:
        """True while the reader waits for the handlers to make room (backpressure)."""
        return self._dispatcher is not None and self._dispatcher.blocked

    @property
    def owned_shards(self) -> tuple[int, ...]:
        """The consumer-group shards this member owns now."""
        if self._membership is None:
            return (0,) if self.config.mode is StreamReadMode.REPLAY else ()
        return tuple(sorted(self._membership.snapshot()))

    def metrics(self) -> ReaderMetrics:
        d = self._dispatcher
        lag_events, lag_seconds, measured = self._lag
        cfg = self.config
        if cfg.mode is not StreamReadMode.REPLAY and (
            time.monotonic() - measured >= cfg.lag_interval or lag_events is None
        ):
            try:
                lag_events, lag_seconds = self.checkpoints.lag(cfg.checkpoint_name,
                                                              cfg.consumer_group)
                self._lag = (lag_events, lag_seconds, time.monotonic())
            except Exception as exc:  # metrics must not break the reader
                log.debug("lag not measured: %s", exc)
        return ReaderMetrics(
            processed=d.processed if d else 0, rate=d.rate() if d else 0.0,
            lag_events=lag_events, lag_seconds=lag_seconds,
            events_read=d.submitted if d else 0,
            read_ahead=d.in_flight if d else 0, max_read_ahead=d.max_in_flight if d else 0,
            batches=self.batches, reads=self.reads, checkpoint=self.saved,
            shards=self.owned_shards,
        )

    def process_stream(self, handler: Handler | None = None) -> ReaderMetrics:
        """The spec's call: ``run`` with the config's ``event_handler`` (live modes: until
        :meth:`stop`); the metrics carry ``events_processed`` and the run's rate."""
        handler = handler or self.config.event_handler
        if handler is None:
            raise ConfigurationError("no handler: StreamConfig(event_handler=...) or process_stream(fn)")
        started = time.monotonic()
        return replace(self.run(handler), elapsed_seconds=time.monotonic() - started)

    # -- the loop -----------------------------------------------------------------

    def run(self, handler: Handler) -> ReaderMetrics:
        cfg = self.config
        dispatcher = self._dispatcher = Dispatcher(
            handler, cfg.concurrency, cfg.capacity, cfg.checkpoint_name)
        listener = Listener(self.store.db) if cfg.mode.live else None
        heartbeat: threading.Thread | None = None
        try:
            if cfg.mode is StreamReadMode.REPLAY:
                self._loop(dispatcher, listener, None, START)
            else:
                membership = self._join()
                heartbeat = threading.Thread(target=self._beat, args=(membership,),
                                             name=f"evstore-heartbeat-{self.member_id}",
                                             daemon=True)
                heartbeat.start()
                self._loop(dispatcher, listener, membership, None)
        finally:
            self._stop.set()
            dispatcher.close()
            if heartbeat is not None:
                heartbeat.join()
            if self._membership is not None:
                try:
                    self._membership.leave()
                except Exception as exc:  # the leases lapse on their own
                    log.warning("could not leave the group cleanly: %s", exc)
            if listener is not None:
                listener.close()
            self.running.clear()
        if dispatcher.error is not None:
            failed = dispatcher.failed_event
            raise HandlerError(
                failed.event_id if failed else None,
                failed.global_position if failed else None, dispatcher.error,
            ) from dispatcher.error
        return self.metrics()

    def _join(self) -> Membership:
        cfg = self.config
        self.checkpoints.ensure(cfg.checkpoint_name, cfg.consumer_group, cfg.shard_count,
                                cfg.event_types, cfg.aggregate_types)
        membership = self._membership = Membership(
            self.store.db, cfg.checkpoint_name, cfg.consumer_group, cfg.shard_count,
            self.member_id, cfg.lease_ttl, cfg.mode.live)
        membership.join()
        deadline = time.monotonic() + cfg.lease_ttl + cfg.heartbeat_every
        while True:
            tick = membership.tick()
            membership.rebalance(tick.target, None)
            if membership.owned or cfg.consumer_group or self._stop.is_set():
                return membership
            if time.monotonic() > deadline:  # a reader without a group: one owner at a time
                holders = [p.owner or "?" for p in self.checkpoints.shards(
                    cfg.checkpoint_name, cfg.consumer_group) if p.leased]
                raise ConsumerBusyError(cfg.checkpoint_name, cfg.consumer_group, holders)
            self._stop.wait(min(cfg.heartbeat_every, 0.5))

    def _beat(self, membership: Membership) -> None:
        every = self.config.heartbeat_every
        while not self._stop.wait(every):
            try:
                membership.processed = self._dispatcher.processed if self._dispatcher else 0
                tick = membership.tick()
            except Exception as exc:
                log.warning("heartbeat of %s failed: %s", self.member_id, exc)
                continue
            if tick.lost:
                log.warning("member %s lost shards %s", self.member_id, sorted(tick.lost))
            self._target = tick.target
            if tick.wants_change or tick.lost:
                self._rebalance.set()

    def _loop(
        self, dispatcher: Dispatcher, listener: Listener | None,
        membership: Membership | None, replay_from: Position | None,
    ) -> None:
        cfg = self.config
        if cfg.mode is StreamReadMode.STREAMING:
            self._start_head, self._skip = self.checkpoints.streaming_start()
        # BATCH and REPLAY stop after the last event committed before they started,
        # once an older transaction still running elsewhere lets read_all show it.
        self._until = None if cfg.mode.live else self.checkpoints.last_committed()
        self._floors = self._owned_floors(membership, replay_from)
        self.position = min(self._floors.values(), default=START)
        self._saves.start()
        self.running.set()
        while not self._stop.is_set():
            try:
                if not self._step(dispatcher, listener, membership):
                    break
            except StoreUnavailableError as exc:
                log.warning("reader %s: %s; retrying in %.1f s", self.member_id, exc,
                            cfg.poll_interval)
                self._stop.wait(cfg.poll_interval)
        dispatcher.wait_idle()
        self._commit(dispatcher, membership, force=True)

    def _step(
        self, dispatcher: Dispatcher, listener: Listener | None, membership: Membership | None
    ) -> bool:
        """One turn of the loop; False when the reader is done."""
        cfg = self.config
        self._commit(dispatcher, membership)
        if dispatcher.error is not None:
            return False
        if membership is not None and (self._rebalance.is_set() or membership.expired()):
            self._change_owners(dispatcher, membership)
            return True
        if not self._floors:  # nothing to do until the group gives us shards
            if not cfg.mode.live:
                return False
            self._rebalance.wait(_SLICE)
            return True
        if not dispatcher.wait_capacity(cfg.batch_size, _SLICE):
            return True
        # Save what was handled while we waited before reading more: what is
        # handled and unsaved then stays within the batches counted at the
        # wait, and the page joins them only if they left room for it.
        self._commit(dispatcher, membership)
        if self._rebalance.is_set():
            return True
        assert self.position is not None
        with hooks.unobserved():  # logged below, as delivered
            read_all = (partial(read_all_tiers, self.store) if cfg.include_archived
                        else self.store.read_all)
            page = read_all(after=self.position, limit=cfg.batch_size,
                                       event_types=cfg.event_types,
                                       aggregate_types=cfg.aggregate_types,
                                       check_types=False)
        self.reads += 1
        counts = dict.fromkeys(self._floors, 0)
        wanted = []
        n = cfg.shard_count
        for event in page.events:
            p = shard_of(event.stream_id or "", n)
            floor = self._floors.get(p)
            if floor is not None and event.position > floor and not (
                    self._skip and event.transaction_id in self._skip):
                wanted.append(event)
                counts[p] += 1
        with hooks.access_context(context=self._access):
            wanted = hooks.observe(self.store, "reader", wanted, checkpoint=cfg.checkpoint_name,
                                   consumer_group=cfg.consumer_group)
        dispatcher.submit(self._saves.add(page.checkpoint, counts), wanted)
        self.batches += 1 if wanted else 0
        self.position = page.checkpoint
        if page.events:
            self._backoff = _MIN_BACKOFF
        if not page.at_end:
            return True
        if not cfg.mode.live:
            if self._until is None or self.position >= self._until:
                return False
            self._pause(dispatcher, membership, self._backoff, None)
            self._backoff = min(self._backoff * 2, cfg.poll_interval)
            return True
        if self.checkpoints.committed_after(self.position):
            # An older transaction still runs, or an append just committed:
            # look again soon even if no notification comes.
            self._pause(dispatcher, membership, self._backoff, listener)
            self._backoff = min(self._backoff * 2, cfg.poll_interval)
        else:
            self._backoff = _MIN_BACKOFF
            self._pause(dispatcher, membership, cfg.poll_interval, listener)
        return True

    def _owned_floors(
        self, membership: Membership | None, replay_from: Position | None
    ) -> dict[int, Position]:
        """For each shard handled here: the position its events are handled up to."""
        if membership is None:
            return dict.fromkeys(range(self.config.shard_count), replay_from or START)
        owned = membership.snapshot()
        if self._start_head is not None:
            owned = {p: max(pos, self._start_head) for p, pos in owned.items()}
        return owned

    def _pause(
        self, dispatcher: Dispatcher, membership: Membership | None, seconds: float,
        listener: Listener | None,
    ) -> None:
        """Wait for new events, saving handled batches and watching the flags meanwhile."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and not self._rebalance.is_set():
            self._commit(dispatcher, membership)
            left = deadline - time.monotonic()
            if left <= 0 or dispatcher.error is not None:
                return
            if listener is not None:
                if listener.wait(min(left, _SLICE)):
                    return
            else:
                self._stop.wait(min(left, _SLICE))

    def _change_owners(self, dispatcher: Dispatcher, membership: Membership) -> None:
        """Drain, save, then release and claim shards; read on from the lowest floor."""
        self._rebalance.clear()
        dispatcher.wait_idle()
        self._commit(dispatcher, membership, force=True)
        if dispatcher.error is not None:
            return
        target = self._target if self._target is not None else set(membership.snapshot())
        if membership.expired():
            # Our leases may have lapsed: stop using them, then claim them back
            # (the fenced claim fails if another member took them meanwhile).
            lost = set(membership.snapshot())
            if lost:
                log.warning("member %s: leases may have lapsed, pausing %s", self.member_id,
                            sorted(lost))
            membership.drop_lost(lost)
            self._stop.wait(_SLICE)
        membership.rebalance(target, self.position)
        self._floors = self._owned_floors(membership, None)
        if self._floors:
            self.position = min(self._floors.values())

    def _commit(
        self, dispatcher: Dispatcher, membership: Membership | None, force: bool = False
    ) -> None:
        """Save the checkpoint of the batches handled so far, in order."""
        saved = self._saves.save(dispatcher.take_done(), membership, force)
        if saved is None:
            return
        if saved.lost:
            assert membership is not None
            log.warning("member %s no longer owns shards %s", self.member_id, sorted(saved.lost))
            membership.drop_lost(saved.lost)
            self._rebalance.set()
        self.saved = saved.checkpoint
