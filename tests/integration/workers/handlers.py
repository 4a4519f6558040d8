"""Replay handlers used by the job tests; imported by real worker processes.

Each records its deliveries in a table of the test database through the
batch's connection (``replay_effects``), so a test can count, per event, how
many deliveries took effect, and in which order.
"""

from __future__ import annotations

import os
import time

from evstore.workers import register_event_handler

EFFECTS_DDL = """
CREATE TABLE IF NOT EXISTS public.replay_effects (
    seq              bigserial PRIMARY KEY,
    handler          text   NOT NULL,
    event_id         uuid   NOT NULL,
    stream_id        text   NOT NULL,
    stream_position  bigint NOT NULL,
    global_position  bigint NOT NULL,
    transaction_id   bigint NOT NULL,
    job_id           bigint NOT NULL,
    batch            integer NOT NULL,
    attempt          integer NOT NULL,
    worker_pid       integer NOT NULL
)
"""


def _record(name: str, event, ctx) -> None:
    ctx.connection.execute(
        "INSERT INTO public.replay_effects (handler, event_id, stream_id, stream_position, "
        "global_position, transaction_id, job_id, batch, attempt, worker_pid) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [name, event.event_id, event.stream_id, event.stream_position, event.global_position,
         event.transaction_id, ctx.job_id, ctx.batch_number, ctx.attempt, os.getpid()],
    )


def record(event, ctx) -> None:
    """Every event type: one row per delivery, in the batch's transaction."""
    _record("record", event, ctx)


def slow_record(event, ctx) -> None:
    """Like record, slowed down by EVSTORE_TEST_DELAY seconds per event."""
    time.sleep(float(os.environ.get("EVSTORE_TEST_DELAY", "0.001")))
    _record("slow_record", event, ctx)


def fragile(event, ctx) -> None:
    """Fails on events whose data says poison, until EVSTORE_TEST_FIXED=1 (the fix deployed)."""
    if event.event_data.get("poison") and os.environ.get("EVSTORE_TEST_FIXED") != "1":
        raise RuntimeError(f"cannot digest poison in {event.stream_id}")
    _record("fragile", event, ctx)


def leaky(event, ctx) -> None:
    """Fails with the event's e-mail address in the exception's text (as int() would)."""
    if "email" in event.event_data:
        int(event.event_data["email"])  # ValueError: invalid literal for int() ...: 'ada@...'
    if "name" in event.event_data:
        raise LookupError(f"no account for {event.event_data['name']} in the ledger")
    _record("leaky", event, ctx)


def only_logins(event, ctx) -> None:
    _record("only_logins", event, ctx)


register_event_handler("*", record)
register_event_handler("*", slow_record)
register_event_handler("*", fragile)
register_event_handler("UserLoggedIn", only_logins)
register_event_handler("*", leaky)
