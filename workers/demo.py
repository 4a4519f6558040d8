"""The demo's replay: start workers (embedded Redis by default), replay, stop them.

    from evstore.workers.demo import run_replay_demo
    result = run_replay_demo(store, on_progress=lambda job: bar.update(...))

For a program that wants workers of its own for a while, without an operator
running ``evstore worker``: real `dramatiq` processes, stopped at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from evstore.core.embedded import private_dir, private_umask
from evstore.core.jobs.model import Job
from evstore.core.store.postgres import PostgreSQLEventStore

from .broker import make_broker, redis_url
from .engine import JobEngine
from .pool import WorkerPool, wait_for
from .replay import EventReplayService, ReplayConfig, ReplayResult


def run_replay_demo(
    store: PostgreSQLEventStore,
    config: ReplayConfig | None = None,
    *,
    processes: int = 2,
    threads: int = 2,
    on_progress: Callable[[Job], None] | None = None,
    on_started: Callable[[int, Job], None] | None = None,
    log_path: Path | None = None,
    timeout: float = 600.0,
    announce: Callable[[str], None] | None = None,
) -> ReplayResult:
    """Replay ``config`` (default: every event to the no-op handler) on fresh workers.

    Uses REDIS_URL, or the embedded Redis under EVSTORE_HOME; the workers use
    the store's database. ``on_started(job_id, job)`` is called once the job is
    planned (its ``items_total`` and ``batches_total`` are known),
    ``on_progress(job)`` about four times a second until it ends. Worker logs go
    to ``log_path`` (default ``$EVSTORE_HOME/logs/demo-workers.log``).
    """
    from .logs import configure_logging

    configure_logging(default_level="WARNING")
    config = config or ReplayConfig(handler_names=["noop"])
    settings = store.settings
    log_path = log_path or Path(settings.home) / "logs" / "demo-workers.log"
    private_dir(log_path.parent)
    namespace = f"evstore-demo-{uuid.uuid4().hex[:8]}"
    from .settings import load_job_settings

    job_settings = load_job_settings(namespace=namespace)
    with redis_url(settings, announce=announce) as url:
        broker = make_broker(url, job_settings)
        pool = WorkerPool(store.url, url, processes=processes, threads=threads,
                          log_path=log_path, env={"EVSTORE_DRAMATIQ_NAMESPACE": namespace})
        try:
            with private_umask():  # the workers and their log file inherit it
                pool.start()
            wait_for(lambda: broker.client.zcard(f"{namespace}:__heartbeats__") >= processes,
                     timeout=60, what="the demo's workers to start")
            service = EventReplayService(store, engine=JobEngine(store, broker, job_settings))
            job_id = service.start(config, created_by="evstore demo")
            if on_started is not None:
                on_started(job_id, service.engine.get(job_id))
            return service.wait(job_id, timeout=timeout, on_progress=on_progress)
        finally:
            pool.stop()
            for key in broker.client.scan_iter(f"{namespace}:*"):
                broker.client.delete(key)
            broker.client.close()
