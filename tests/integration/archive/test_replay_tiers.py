"""Replays across tiers (issue 13): with archived months included, a replay on real
worker processes delivers every event of the workload once, in the one global order."""

from __future__ import annotations

from pathlib import Path

import pytest
from evstore.core.archive import ArchivalPolicy, run_policy
from evstore.core.errors import ArchivedHistoryError
from evstore.workers.pool import wait_for
from evstore.workers.replay import ReplayConfig

from evstore.workload import generate
from tests.integration.workers import conftest as workers

from .helpers import month_start

pytestmark = pytest.mark.slow
# The worker fixtures of tests/integration/workers (real dramatiq processes).
job_env, jobs_store, broker = workers.job_env, workers.jobs_store, workers.broker
service, start_workers, effects = workers.service, workers.start_workers, workers.effects
NOW = month_start(0).replace(day=20)


def test_replay_with_archived_months_delivers_every_event_once_in_global_order(
    service, jobs_store, start_workers, broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVSTORE_ARCHIVE_CACHE_DIR", str(tmp_path / "cache"))
    store = jobs_store
    for script in generate(80, seed=5, months=4):
        store.append_events(script.stream_id, script.events)
    order = [(e.event_id, e.transaction_id, e.global_position) for e in store.iter_all()]
    result = run_policy(store, ArchivalPolicy(name="old", strategy="time_based", retention_days=62,
                                              target_url=f"file://{tmp_path}/archive"), now=NOW)
    assert 0 < result.run.deleted_events < len(order)
    live = {e.event_id for e in store.iter_all()}
    assert len(live) == len(order) - result.run.deleted_events

    start_workers(processes=1, threads=2)
    wait_for(lambda: int(broker.client.zcard(f"{broker.namespace}:__heartbeats__")) >= 1,
             timeout=60, what="a worker polling Redis")
    # one batch: the whole workload in the global order
    done = service.replay_events(ReplayConfig(handler_names=["record"], batch_size=100_000,
                                              include_archived=True), wait=True, timeout=120)
    assert done.status == "succeeded" and done.successful_events == len(order)
    got = effects(store, f"SELECT event_id, transaction_id, global_position FROM public.replay_effects "
                         f"WHERE job_id = {done.job_id} ORDER BY seq")
    assert [tuple(r) for r in got] == order
    # several batches: each event once, each batch in the global order
    done = service.replay_events(ReplayConfig(handler_names=["record"], batch_size=60,
                                              include_archived=True), wait=True, timeout=120)
    assert done.status == "succeeded"
    rows = effects(store, "SELECT event_id, batch, transaction_id, global_position FROM "
                          f"public.replay_effects WHERE job_id = {done.job_id} ORDER BY seq")
    assert sorted(r[0] for r in rows) == sorted(e for e, _, _ in order)
    batches: dict[int, list[tuple[int, int]]] = {}
    for _, batch, tx, gp in rows:
        batches.setdefault(batch, []).append((tx, gp))
    assert len(batches) > 1 and all(b == sorted(b) for b in batches.values())
    # without include_archived: only the live tier
    done = service.replay_events(ReplayConfig(handler_names=["record"], batch_size=100_000),
                                 wait=True, timeout=120)
    assert done.successful_events == len(live)
    # read-through off: a replay that includes archived months is refused
    store.settings = store.settings.model_copy(update={"archive_read_through": False})
    with pytest.raises(ArchivedHistoryError):
        service.start(ReplayConfig(handler_names=["record"], include_archived=True))
