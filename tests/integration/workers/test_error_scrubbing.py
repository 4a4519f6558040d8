"""Errors carry ids, not data (issue 17, finding 9).

The rule (evstore.workers.scrub): a stored or logged error keeps the
exception's type, the ids the engine knows (job, batch, event id, stream,
position, handler) and the message with every quoted literal, every value of
the event being handled, e-mail addresses and URLs' credentials/paths
removed. The traceback keeps its frames (code) and the same scrubbed lines.
Dramatiq's messages carry (job id, batch number) only, and what Dramatiq
keeps of a failure (the retry's and the dead-letter set's traceback, its log
line) is built from the scrubbed error.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
import redis
from evstore.workers.replay import ReplayConfig

from evstore import EventRecord

pytestmark = pytest.mark.slow


def test_the_rule_on_messages() -> None:
    from evstore.workers.scrub import safe_error, scrub

    exc = ValueError("invalid literal for int() with base 10: 'ada@example.com'")
    assert safe_error(exc) == "ValueError: invalid literal for int() with base 10: <redacted>"
    assert scrub('KeyError "x" and \'y\'') == "KeyError <redacted> and <redacted>"
    assert scrub("mail bob@example.org now") == "mail <redacted> now"
    assert scrub("no account for Zorblax here", values=["Zorblax", 7, "ab"]) == \
        "no account for <redacted> here"
    assert scrub("at redis://:s3cret@db.internal:6379/0?password=x down") == \
        "at redis://db.internal:6379 down"
    assert "s3cret" not in scrub("postgresql://u:s3cret@h/db")


def _redis_text(url: str, namespace: str) -> str:
    client = redis.Redis.from_url(url)
    parts = []
    for key in client.scan_iter(f"{namespace}*", count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            parts.append(client.get(key))
        elif kind == "hash":
            parts.extend(client.hvals(key))
        elif kind == "list":
            parts.extend(client.lrange(key, 0, -1))
        elif kind == "zset":
            parts.extend(client.zrange(key, 0, -1))
        elif kind == "set":
            parts.extend(client.smembers(key))
    client.close()
    return "\n".join(p.decode("utf-8", "replace") for p in parts)


def test_a_planted_value_is_stored_and_logged_nowhere(
    job_env: dict[str, str], jobs_store: Any, service: Any, start_workers: Any, tmp_path: Any,
) -> None:
    # Given events whose values end up in a handler's exception text
    email = f"ada-{uuid.uuid4().hex[:10]}@example.com"
    name = f"Zorblax{uuid.uuid4().hex[:10]}"
    jobs_store.append_events("User-a", [EventRecord("a", "User", "EmailChanged", {"email": email})])
    jobs_store.append_events("User-b", [EventRecord("b", "User", "Renamed", {"name": name})])
    [mail_event] = jobs_store.read_stream("User-a")
    # When a real worker runs the replay and gives up after its retry
    start_workers(processes=1, threads=2)
    result = service.replay_events(ReplayConfig(handler_names=["leaky"], batch_size=1),
                                   wait=True, timeout=120)
    assert result.status == "failed" and result.failed_events == 2
    # Then the errors keep the type and the ids ...
    batches = service.engine.repo.batches(result.job_id)
    mail_batch = next(b for b in batches if b.error_item == str(mail_event.event_id))
    assert "ValueError: invalid literal for int() with base 10: <redacted>" in mail_batch.last_error
    assert str(mail_event.event_id) in mail_batch.last_error
    assert any("LookupError: no account for <redacted> in the ledger" in b.last_error
               for b in batches)
    # ... and neither value is in the database, the worker's log or Redis
    with jobs_store.connection() as conn:
        stored = conn.execute(
            f"SELECT coalesce(string_agg(concat_ws(' ', error, item, traceback), ' '), '') "
            f"FROM {jobs_store.table('job_errors')}").fetchone()[0]
        stored += conn.execute(
            f"SELECT coalesce(string_agg(concat_ws(' ', last_error, error_item, error_traceback, "
            f"details::text), ' '), '') FROM {jobs_store.table('job_batches')}").fetchone()[0]
    assert "ValueError" in stored and "LookupError" in stored
    logs = "".join(p.read_text() for p in tmp_path.glob("workers-*.log"))
    assert "batch.failed" in logs
    in_redis = _redis_text(job_env["REDIS_URL"], os.environ["EVSTORE_DRAMATIQ_NAMESPACE"])
    assert "evstore_run_batch" in in_redis  # the dead-letter set holds the messages
    for value in (email, name, email.split("@")[0]):
        assert value not in stored
        assert value not in logs
        assert value not in in_redis
