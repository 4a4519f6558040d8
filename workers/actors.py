"""The Dramatiq entry point of evstore's workers.

    dramatiq evstore.workers.actors:broker --processes 2 --threads 8

(or ``evstore worker``, which sets sensible defaults). Reads REDIS_URL (an
embedded Redis under EVSTORE_HOME when unset), DATABASE_URL, the EVSTORE_JOB_*
settings, and imports the handler modules named in EVSTORE_HANDLER_MODULES
(the only operator code a worker runs: see registry.py).
"""

from __future__ import annotations

import atexit

import dramatiq
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from evstore.core.config import load_settings

from . import replay as _replay  # noqa: F401  (registers the replay job kind)
from . import runtime
from .broker import EmbeddedRedis, embedded_redis_path, make_broker
from .engine import ACTOR_NAME
from .logs import configure_logging
from .middleware import BatchFailures, JobLogContext, OrphanSweeper
from .registry import drop_implicit_cwd, load_configured
from .settings import load_job_settings

# `dramatiq` puts its folder (--path, default ".") first on sys.path: a worker
# imports only what its configuration names, never a file of the current folder.
drop_implicit_cwd()
configure_logging()
settings = load_job_settings()
_core = load_settings()
if _core.redis_url:
    _url = _core.redis_url
else:
    _embedded = EmbeddedRedis(embedded_redis_path(_core))
    _url = _embedded.start()
    atexit.register(_embedded.stop)

broker = make_broker(_url, settings, check=False, middleware=[
    JobLogContext(),
    AgeLimit(),
    TimeLimit(),
    ShutdownNotifications(),
    Callbacks(),
    Pipelines(),
    BatchFailures(runtime.engine),
    Retries(max_retries=settings.max_retries, min_backoff=settings.min_backoff_ms,
            max_backoff=settings.max_backoff_ms),
    OrphanSweeper(runtime.engine, settings.sweep_interval),
])
dramatiq.set_broker(broker)
runtime.configure(broker, settings)
load_configured(settings)


@dramatiq.actor(
    actor_name=ACTOR_NAME, queue_name=settings.queue, broker=broker,
    max_retries=settings.max_retries, min_backoff=settings.min_backoff_ms,
    max_backoff=settings.max_backoff_ms, time_limit=settings.time_limit_ms,
)
def run_batch(job_id: int, number: int) -> None:
    """Run one batch of a job (any kind): one delivery of its message.

    A failure leaves as BatchAttemptFailed (ids and scrubbed text only): what
    Dramatiq logs and keeps in Redis of it holds no event data.
    """
    runtime.engine().run_batch_safely(job_id, number)
