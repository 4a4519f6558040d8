"""The console's pages and actions (see app.py for the rules they follow)."""

from __future__ import annotations

import contextlib
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from evstore.core.errors import EventStoreError

from . import data
from .auth import Session, clean_name
from .state import PAGE_SIZE, Console, not_found


def _int(text: str | None, default: int | None = None, low: int = 1) -> int | None:
    try:
        value = int(text) if text not in (None, "") else default
    except ValueError:
        return default
    return value if value is None or low <= value < 2**63 else default


def _access(c: Console, request: Request) -> Any:
    """The access-log context of a read (issue 11's access log, where the store has one):
    the console's operator, or "anonymous", as the accessor."""
    context = getattr(c.store, "access_context", None)
    if context is None:  # pragma: no cover - a store without the access log
        return contextlib.nullcontext()
    who = c.session(request).operator or "anonymous"
    return context(accessor=f"console:{who}",
                   ip_address=request.client.host if request.client else None)


def build(c: Console) -> list[Route]:
    def overview(request: Request) -> Response:
        return c.page(request, "overview.html", figures=data.overview(c.store))

    # -- jobs ------------------------------------------------------------------
    def jobs(request: Request) -> Response:
        from evstore.core.jobs.model import JOB_STATUSES
        from evstore.core.jobs.repository import JobRepository

        status = request.query_params.get("status") or None
        if status not in (None, *JOB_STATUSES):
            status = None
        found = JobRepository(c.store).list_jobs(status=status, limit=200)
        return c.page(request, "jobs.html", jobs=found, job_status=status, statuses=JOB_STATUSES)

    def _detail(request: Request) -> Any:
        from evstore.core.errors import JobNotFoundError
        from evstore.core.jobs.repository import JobRepository

        job_id = _int(request.path_params["job_id"])
        if job_id is None:
            return None
        try:
            return JobRepository(c.store).detail(job_id)
        except JobNotFoundError:
            return None

    def job(request: Request) -> Response:
        detail = _detail(request)
        if detail is None:
            return not_found(c, request, "No such job.")
        return c.page(request, "job.html", d=detail)

    def job_progress(request: Request) -> Response:
        detail = _detail(request)
        if detail is None:
            return not_found(c, request, "No such job.")
        return c.page(request, "job_progress.html", d=detail)

    async def job_requeue(request: Request) -> Response:
        job_id = _int(request.path_params["job_id"])
        if job_id is None:
            return not_found(c, request, "No such job.")

        def run(form: dict[str, str]) -> str:
            from evstore.workers.engine import JobEngine

            batch = _int(form.get("batch"))
            with c.broker() as broker:  # what `evstore jobs requeue [--batch N]` calls
                numbers = JobEngine(c.store, broker).requeue(job_id, batch)
            return f"requeued batches {numbers}" if numbers else "nothing to requeue"

        return await c.act(request, "requeue", f"job {job_id}", run, f"/jobs/{job_id}")

    async def job_cancel(request: Request) -> Response:
        job_id = _int(request.path_params["job_id"])
        if job_id is None:
            return not_found(c, request, "No such job.")

        def run(_form: dict[str, str]) -> str:
            from evstore.core.jobs.repository import JobRepository

            numbers = JobRepository(c.store).cancel(job_id)  # what `evstore jobs cancel` calls
            return f"cancelled {len(numbers)} batch(es)"

        return await c.act(request, "cancel", f"job {job_id}", run, f"/jobs/{job_id}")

    # -- consumers -------------------------------------------------------------
    def consumers(request: Request) -> Response:
        from evstore.core.reader.checkpoints import CheckpointStore

        return c.page(request, "consumers.html", groups=CheckpointStore(c.store).groups(with_lag=True))

    def consumer(request: Request) -> Response:
        from evstore.core.reader.checkpoints import CheckpointStore

        name = request.query_params.get("name", "")
        group = request.query_params.get("group", "")
        cps = CheckpointStore(c.store)
        shards = cps.shards(name, group)
        if not shards:
            return not_found(c, request, "No such consumer.")
        lag_events, lag_seconds = cps.lag(name, group)
        return c.page(request, "consumer.html", name=name, group=group, shards=shards,
                      lag_events=lag_events, lag_seconds=lag_seconds,
                      running=any(s.leased for s in shards))

    async def consumer_reset(request: Request) -> Response:
        form = await request.form()
        name, group = str(form.get("name", "")), str(form.get("group", ""))

        def run(f: dict[str, str]) -> str:
            from evstore.core.reader.checkpoints import CheckpointStore
            from evstore.core.store.persistence import START

            cps = CheckpointStore(c.store)
            position = START if f.get("to") == "start" else cps.head()
            count = cps.reset(name, group, position)  # `evstore consumers reset` without --force
            return f"{count} shard(s) set to {f.get('to') or 'head'}"

        from urllib.parse import urlencode

        back = "/consumers/show?" + urlencode({"name": name, "group": group})
        return await c.act(request, "reset", f"consumer {name} group {group or '-'}", run, back)

    # -- streams ---------------------------------------------------------------
    def streams(request: Request) -> Response:
        return c.page(request, "streams.html", partitions=c.store.list_partitions(),
                      privacy=data.privacy_registry() is not None)

    async def stream_lookup(request: Request) -> Response:
        form = await request.form()
        session = c.session(request)
        stream_id = str(form.get("stream_id", "")).strip()
        if not c.auth.csrf_ok(session, str(form.get("csrf_token", ""))):
            return c.message(request, "Refused", "The form's CSRF token is missing or wrong.", 403)
        if not stream_id:
            return c.message(request, "No stream", "Give a stream id.", 400)
        token = c.token_for(stream_id)
        return c.finish(request, RedirectResponse(f"/streams/v/{token}", status_code=303))

    def _stream(request: Request) -> str | None:
        return c.stream_of(request.path_params["token"])

    def stream(request: Request) -> Response:
        stream_id = _stream(request)
        if stream_id is None:
            return not_found(c, request, "This stream link has expired: look the stream up again.")
        start = _int(request.query_params.get("from"), 1) or 1
        store = c.store
        version = store.get_stream_version(stream_id)
        with _access(c, request):
            events = store.read_stream(stream_id, start, PAGE_SIZE)
        registry = data.privacy_registry()
        return c.page(request, "stream.html", stream_id=stream_id, token=request.path_params["token"],
                      version=version, events=data.event_views(events, registry), start=start,
                      page_size=PAGE_SIZE, privacy=registry is not None, verified=None)

    async def stream_verify(request: Request) -> Response:
        form = await request.form()
        stream_id = _stream(request)
        if stream_id is None:
            return not_found(c, request, "This stream link has expired: look the stream up again.")
        if not c.auth.csrf_ok(c.session(request), str(form.get("csrf_token", ""))):
            return c.message(request, "Refused", "The form's CSRF token is missing or wrong.", 403)
        start = _int(str(form.get("from", "1")), 1) or 1

        def run() -> Response:
            store = c.store
            result = data.verify_stream_page(store, stream_id, start, start + PAGE_SIZE - 1)
            with _access(c, request):
                events = store.read_stream(stream_id, start, PAGE_SIZE)
            registry = data.privacy_registry()
            return c.page(request, "stream.html", stream_id=stream_id,
                          token=request.path_params["token"], version=store.get_stream_version(stream_id),
                          events=data.event_views(events, registry), start=start, page_size=PAGE_SIZE,
                          privacy=registry is not None, verified=result)

        try:
            return await run_in_threadpool(run)
        except EventStoreError as exc:  # a checksum that fails on read, for one
            return c.message(request, "Verification failed", str(exc), 409)

    # -- archives ----------------------------------------------------------------
    def archives(request: Request) -> Response:
        from evstore.core.archive import list_runs

        return c.page(request, "archives.html", runs=list_runs(c.store, limit=100))

    def archive_run(request: Request) -> Response:
        from evstore.core.archive import get_run, list_segments

        run_id = request.path_params["run_id"]
        try:
            run = get_run(c.store, run_id)
        except (EventStoreError, ValueError):
            return not_found(c, request, "No such archive run.")
        return c.page(request, "archive_run.html", run=run, segments=list_segments(c.store, run_id),
                      verified=None)

    async def archive_verify(request: Request) -> Response:
        form = await request.form()
        if not c.auth.csrf_ok(c.session(request), str(form.get("csrf_token", ""))):
            return c.message(request, "Refused", "The form's CSRF token is missing or wrong.", 403)
        run_id = request.path_params["run_id"]

        def run() -> Response:
            from evstore.core.archive import get_run, list_segments, verify_archive

            found = get_run(c.store, run_id)
            try:
                report: Any = verify_archive(found.manifest_url or found.target_url)
            except (EventStoreError, ValueError, OSError) as exc:
                report = str(exc)
            return c.page(request, "archive_run.html", run=found,
                          segments=list_segments(c.store, run_id), verified=report)

        return await run_in_threadpool(run)

    async def archive_restore(request: Request) -> Response:
        run_id = request.path_params["run_id"]

        def run(_form: dict[str, str]) -> str:
            from evstore.core.archive import get_run, restore_archive

            found = get_run(c.store, run_id)
            result = restore_archive(c.store, found.manifest_url or found.target_url)
            return (f"restored {result.events_restored} of {result.events_in_archive} events "
                    f"({result.events_already_present} already present)")

        return await c.act(request, "restore", f"archive run {run_id}", run, f"/archives/{run_id}")

    # -- queries (issue 12's EventQueryService) ---------------------------------
    def queries_page(request: Request) -> Response:
        return c.page(request, "queries.html", form={}, events=None, plan=None, error=None)

    async def queries_run(request: Request) -> Response:
        from . import queries

        form = {k: str(v) for k, v in (await request.form()).items() if k in queries.FIELDS}
        if not c.auth.csrf_ok(c.session(request), str((await request.form()).get("csrf_token", ""))):
            return c.message(request, "Refused", "The form's CSRF token is missing or wrong.", 403)

        def run() -> dict[str, Any]:
            with _access(c, request):
                return queries.run(c.store, form)

        return c.page(request, "queries.html", **await run_in_threadpool(run))

    # -- schedules, actions, login ----------------------------------------------
    def schedules(request: Request) -> Response:
        try:
            rows, problem = data.schedules(c.store), None
        except (EventStoreError, ValueError) as exc:
            rows, problem = [], str(exc)
        return c.page(request, "schedules.html", rows=rows, problem=problem)

    def actions(request: Request) -> Response:
        return c.page(request, "actions.html", actions=data.list_actions(c.store))

    def login_page(request: Request) -> Response:
        return c.page(request, "login.html", failed=False)

    async def login(request: Request) -> Response:
        form = await request.form()
        session = c.session(request)
        name = clean_name(str(form.get("name", "")))
        if not c.auth.csrf_ok(session, str(form.get("csrf_token", ""))):
            return c.message(request, "Refused", "The form's CSRF token is missing or wrong.", 403)
        ok = c.auth.check_secret(str(form.get("secret", "")))
        await run_in_threadpool(c.record, request, name, "login", "console",
                                "done" if ok else "refused", "" if ok else "wrong secret")
        if not ok:
            return c.page(request, "login.html", status=403, failed=True)
        request.scope["console_session"] = Session(operator=name)  # a new session and CSRF token
        return c.finish(request, RedirectResponse("/", status_code=303))

    async def logout(request: Request) -> Response:
        form = await request.form()
        if not c.auth.csrf_ok(c.session(request), str(form.get("csrf_token", ""))):
            return c.message(request, "Refused", "The form's CSRF token is missing or wrong.", 403)
        request.scope["console_session"] = Session()
        return c.finish(request, RedirectResponse("/", status_code=303))

    return [
        Route("/", overview),
        Route("/jobs", jobs),
        Route("/jobs/{job_id}", job),
        Route("/jobs/{job_id}/progress", job_progress),
        Route("/jobs/{job_id}/requeue", job_requeue, methods=["POST"]),
        Route("/jobs/{job_id}/cancel", job_cancel, methods=["POST"]),
        Route("/consumers", consumers),
        Route("/consumers/show", consumer),
        Route("/consumers/reset", consumer_reset, methods=["POST"]),
        Route("/streams", streams),
        Route("/streams", stream_lookup, methods=["POST"]),
        Route("/streams/v/{token}", stream),
        Route("/streams/v/{token}/verify", stream_verify, methods=["POST"]),
        Route("/archives", archives),
        Route("/archives/{run_id}", archive_run),
        Route("/archives/{run_id}/verify", archive_verify, methods=["POST"]),
        Route("/archives/{run_id}/restore", archive_restore, methods=["POST"]),
        Route("/queries", queries_page),
        Route("/queries", queries_run, methods=["POST"]),
        Route("/schedules", schedules),
        Route("/actions", actions),
        Route("/login", login_page),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
