"""The pure parts of the engine, without services: packing, selections, handlers, settings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from evstore.core.db import Database
from evstore.core.errors import ConfigurationError, InvalidJobError
from evstore.core.jobs.replay import ReplaySelection, StreamSpan, pack_streams
from evstore.core.store.persistence import EventRecord
from evstore.workers.handlers import (
    HandlerContext,
    register_event_handler,
    registered_handlers,
    resolve_handlers,
    unregister_event_handler,
)
from evstore.workers.settings import load_job_settings

# SQL text only (no connection): the filter fragments come from core/sql/replay.sql.
DB = Database(None, "events")  # type: ignore[arg-type]


def _span(name: str, events: int) -> StreamSpan:
    return StreamSpan(name, events, 1, events)


def test_pack_streams_keeps_streams_whole_and_in_order() -> None:
    spans = [_span("a", 3), _span("b", 3), _span("c", 9), _span("d", 1), _span("e", 4)]
    batches = pack_streams(spans, batch_size=5)
    assert [[s.stream_id for s in b] for b in batches] == [["a"], ["b"], ["c"], ["d", "e"]]
    # a stream larger than the batch size gets a batch of its own
    assert [sum(s.events for s in b) for b in batches] == [3, 3, 9, 5]
    with pytest.raises(InvalidJobError):
        pack_streams(spans, batch_size=0)


def test_selection_round_trips_through_job_params() -> None:
    selection = ReplaySelection(
        from_position=3, to_position=90, from_time=datetime(2024, 1, 1, tzinfo=UTC),
        to_time=datetime(2024, 2, 1, tzinfo=UTC), aggregate_ids=("1", "2"),
        aggregate_types=("User",), event_types=("UserRegistered",),
    )
    assert ReplaySelection.from_params(selection.to_params()) == selection
    where, args = selection.where(DB)
    assert where.count("AND ") == 7
    assert args["aggregate_ids"] == ["1", "2"]
    assert ReplaySelection().where(DB) == ("", {})


def test_selection_refuses_bad_values() -> None:
    with pytest.raises(InvalidJobError, match="inverted range"):
        ReplaySelection(from_position=5, to_position=4)
    with pytest.raises(InvalidJobError, match="non-empty list"):
        ReplaySelection(event_types=())
    with pytest.raises(InvalidJobError, match="non-empty list"):
        ReplaySelection(aggregate_types="User")  # type: ignore[arg-type]


def test_handler_registry_names_types_and_context() -> None:
    calls: list[tuple[str, object]] = []

    @register_event_handler(["A", "B"], name="test_parts_two_args")
    def two(event, ctx) -> None:
        calls.append((event.event_type, ctx.idempotency_key(event)))

    def one(event) -> None:
        calls.append((event.event_type, None))

    register_event_handler("C", one, name="test_parts_one_arg")
    register_event_handler("D", one, name="test_parts_one_arg")  # same function: adds a type
    try:
        handlers = {h.name: h for h in resolve_handlers(["test_parts_two_args", "test_parts_one_arg"])}
        assert handlers["test_parts_one_arg"].event_types == frozenset({"C", "D"})
        assert handlers["test_parts_two_args"].takes_context
        assert not handlers["test_parts_one_arg"].takes_context
        event = EventRecord("1", "User", "A", {})
        ctx = HandlerContext(7, 2, 1, "test_parts_two_args", None, None)
        handlers["test_parts_two_args"](event, ctx)
        assert calls == [("A", f"evstore-replay:7:test_parts_two_args:{event.event_id}")]
        with pytest.raises(ConfigurationError, match="already registered"):
            register_event_handler("A", lambda e: None, name="test_parts_one_arg")
        with pytest.raises(ValueError, match="give the handler a name"):
            register_event_handler("A", lambda e: None)
    finally:
        unregister_event_handler("test_parts_two_args")
        unregister_event_handler("test_parts_one_arg")
    assert "test_parts_one_arg" not in registered_handlers()


def test_async_handlers_run_to_completion() -> None:
    seen = []

    async def later(event) -> None:
        seen.append(event.event_type)

    register_event_handler("*", later, name="test_parts_async")
    try:
        [handler] = resolve_handlers(["test_parts_async"])
        handler(EventRecord("1", "User", "X", {}), HandlerContext(1, 1, 1, "x", None, None))
        assert seen == ["X"]
    finally:
        unregister_event_handler("test_parts_async")


def test_bad_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVSTORE_JOB_MAX_RETRIES", "-1")
    with pytest.raises(ConfigurationError, match="EVSTORE_JOB_MAX_RETRIES"):
        load_job_settings()
    monkeypatch.delenv("EVSTORE_JOB_MAX_RETRIES")
    monkeypatch.setenv("EVSTORE_JOB_QUEUE", "bad queue!")
    with pytest.raises(ConfigurationError, match="EVSTORE_JOB_QUEUE"):
        load_job_settings()
    monkeypatch.setenv("EVSTORE_JOB_QUEUE", "jobs")
    monkeypatch.setenv("EVSTORE_HANDLER_MODULES", "a.b, c.d;e")
    assert load_job_settings().modules == ["a.b", "c.d", "e"]
