"""``evstore scheduler`` runs the schedules; ``evstore schedules`` lists them.

Run as many ``evstore scheduler`` replicas as you like: each firing is
claimed in PostgreSQL, so each period enqueues one job (docs/schedules.md).
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from .common import console, err_console, handle_errors, open_broker, open_store, print_json
from .serve import HttpHost, HttpPort, ops_started, start_ops

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]


def scheduler(
    replica: Annotated[str | None, typer.Option(
        help="This replica's name in schedule_firings (default host:pid).")] = None,
    http_port: HttpPort = None,
    http_host: HttpHost = None,
) -> None:
    """Run the schedules until stopped (SIGTERM or Ctrl-C); firings enqueue jobs on the workers."""
    from evstore.schedules import SchedulerService, engine_enqueue
    from evstore.workers.engine import JobEngine
    from evstore.workers.logs import configure_logging

    configure_logging()
    ops = start_ops("scheduler", http_host, http_port, needs_redis=True)

    with open_store() as store, open_broker() as broker:
        service = SchedulerService(store, engine_enqueue(JobEngine(store, broker)), replica=replica)
        ops.readiness.redis_client = broker.client  # (the embedded Redis has no REDIS_URL)
        ops_started(ops, store.url, pool=store.pool)
        for schedule in service.schedules.values():
            err_console.print(f"[dim]{schedule.name}: {schedule.trigger} ({schedule.describe()})[/]",
                              highlight=False)

        def stop(*_: Any) -> None:
            service.stop()

        signal.signal(signal.SIGTERM, stop)
        try:
            service.start(blocking=True)
        except (KeyboardInterrupt, SystemExit):
            service.stop()


def schedules(as_json: JsonOpt = False) -> None:
    """Each schedule with its trigger, next and last firing, and the job the last one started."""
    from evstore.core.jobs.firings import last_firings
    from evstore.schedules import load_schedules
    from evstore.workers.scrub import without_urls

    found = load_schedules()
    now = datetime.now(UTC)
    with open_store() as store:
        last = last_firings(store)
    rows = []
    for name, s in found.items():
        f = last.get(name)
        rows.append({
            "name": name, "task": s.task, "what": s.describe(), "trigger": str(s.trigger),
            "next_firing": s.trigger.next_after(now),
            "last_firing": f.scheduled_for if f else None, "last_status": f.status if f else None,
            "last_replica": f.replica if f else None, "job_kind": f.job_kind if f else None,
            "job_id": f.job_id if f else None,
            # Rows written before details were scrubbed may hold a URL: its host only.
            "detail": without_urls(f.detail) if f and f.detail else None,
        })
    if as_json:
        print_json(rows)
        return
    table = Table(title="schedules", title_justify="left")
    for col in ("name", "what", "trigger", "next (UTC)", "last (UTC)", "status", "job"):
        table.add_column(col, overflow="fold")
    for r in rows:
        job = f"{r['job_kind']} {r['job_id']}" if r["job_id"] else (r["detail"] or "")
        table.add_row(escape(r["name"]), escape(r["what"]), r["trigger"],
                      f"{r['next_firing']:%Y-%m-%d %H:%M:%S}" if r["next_firing"] else "-",
                      f"{r['last_firing']:%Y-%m-%d %H:%M:%S}" if r["last_firing"] else "never",
                      r["last_status"] or "", escape(job))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("scheduler")(handle_errors(scheduler))
    app.command("schedules")(handle_errors(schedules))
