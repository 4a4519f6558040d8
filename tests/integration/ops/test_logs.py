"""Logs of real worker processes: JSON lines with ids bound, and no personal data.

Events carry planted personal strings (an e-mail address, a name, a phone
number, an address, an IP in metadata). They go through a replay on a real
worker pool (a handler that succeeds and one whose exceptions quote the event,
as ``int('ada@...')`` would), an archive job on the same pool, and the HTTP
endpoints of the pool; then every line the processes wrote is searched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evstore import EventMetadata, EventRecord, PostgreSQLEventStore
from tests.integration.workers.handlers import EFFECTS_DDL

from .helpers import EVSTORE, free_port, get, process, wait_http
from .test_processes import env  # noqa: F401  (the fixture)

PLANTED = {
    "email": "canary.ada.lovelace@planted-example.org",
    "name": "Zerubbabel Quimbyfeather",
    "phone": "+44-7700-900-4321",
    "street": "17 Canarywharf Lane",
    "ip": "203.0.113.199",
}


def _events(n: int) -> list[tuple[str, list[EventRecord]]]:
    out = []
    for i in range(n):
        stream = f"User-{i}"
        data = [{"email": PLANTED["email"]}, {"name": PLANTED["name"], "phone": PLANTED["phone"]},
                {"address": {"street": PLANTED["street"]}}]
        out.append((stream, [
            EventRecord(str(i), "User", "UserRegistered", d, aggregate_version=v + 1,
                        metadata=EventMetadata(user_id=str(i), correlation_id=f"req-{i}",
                                               extra={"ip_address": PLANTED["ip"]}))
            for v, d in enumerate(data)]))
    return out


def test_no_personal_data_in_any_log_line(env: dict[str, str], tmp_path: Path,  # noqa: F811
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from evstore.core.archive import ArchivalPolicy
    from evstore.workers.archive_jobs import start_archive_job
    from evstore.workers.broker import make_broker
    from evstore.workers.engine import JobEngine
    from evstore.workers.replay import EventReplayService, ReplayConfig

    import tests.integration.workers.handlers  # noqa: F401

    target = f"file://{tmp_path}/archive"
    monkeypatch.setenv("EVSTORE_ARCHIVE_TARGETS", target)
    log = tmp_path / "worker.log"
    port = free_port()
    wenv = {**env, "EVSTORE_LOG_FORMAT": "json", "EVSTORE_LOG_LEVEL": "DEBUG",
            "EVSTORE_ARCHIVE_TARGETS": target}
    with PostgreSQLEventStore(env["DATABASE_URL"]) as store:
        with store.connection() as conn:
            conn.execute(EFFECTS_DDL)
        for stream, events in _events(20):
            store.append_events(stream, events)
        args = [*EVSTORE, "worker", "-p", "1", "-t", "2", "--http-port", str(port)]
        with process(args, wenv, log) as proc:
            wait_http(port, "/readyz", proc=proc)
            broker = make_broker(env["REDIS_URL"])
            try:
                service = EventReplayService(store, broker)
                ok = service.replay_events(ReplayConfig(handler_names=["record"], batch_size=20),
                                           wait=True, timeout=120)
                assert ok.status == "succeeded"
                # A handler that fails quoting the event: every batch's failed attempts are
                # logged, and the job ends failed (it once could stall with a batch left
                # 'retrying': tests/integration/workers/test_failed_batches_end.py).
                bad = service.replay_events(ReplayConfig(handler_names=["leaky"], batch_size=20),
                                            wait=True, timeout=120)
                assert bad.status == "failed"
                engine = JobEngine(store, broker)
                policy = ArchivalPolicy(name="canary", strategy="count_based", keep_events=0,
                                        target_url=target, segment_size=20)
                job = engine.wait(start_archive_job(engine, policy, created_by="test"), timeout=120)
                assert job.status == "succeeded", engine.detail(job.job_id)
            finally:
                broker.client.close()
            get(port, "/metrics")
            get(port, "/readyz")

    lines = [line for line in log.read_text().splitlines() if line.strip()]
    # Every log line is JSON; the command's one banner for a person is not a log line.
    banner = [line for line in lines if not line.startswith("{")]
    assert " ".join(banner).startswith("1 worker process(es) x 2 threads; handler modules:"), banner
    assert len(banner) <= 3, f"lines that are not JSON: {banner}"
    records = []
    for line in lines:
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"a log line that is not one JSON object: {line[:500]!r}") from None
    batch_lines = [r for r in records if str(r.get("event", "")).startswith("batch.")]
    assert batch_lines, "the workers logged no batch"
    assert all("job_id" in r and "batch" in r for r in batch_lines)
    assert any(r.get("event") == "batch.attempt_failed" for r in records)  # the leaky handler's
    text = log.read_text()
    for what, value in PLANTED.items():
        for part in {value, value.split("@")[0], value.split()[-1]}:
            assert part not in text, f"the planted {what} ({part!r}) is in the workers' log"
