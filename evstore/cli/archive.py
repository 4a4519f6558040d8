"""``evstore archive``: preview, run, list runs, restore, verify, forget a data subject.

fsspec and its back-ends are imported inside the commands; a target whose
back-end is missing names the extra to install.
"""

from __future__ import annotations

import os
from functools import wraps
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from evstore.core.errors import ArchiveIntegrityError, ArchiveTargetError

from .common import (
    EXIT_INTEGRITY,
    EXIT_UNAVAILABLE,
    add_group,
    console,
    err_console,
    fail,
    handle_errors,
    human_bytes,
    open_broker,
    open_store,
    print_json,
    to_jsonable,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
TrustUnsignedOpt = Annotated[bool, typer.Option(
    "--trust-unsigned",
    help="Accept manifests with no signature (archives written before manifests were signed). "
         "A wrong signature is never accepted.")]


def archive_errors(func: Any) -> Any:
    """handle_errors, with archive integrity failures exiting 5 and unreachable targets 3."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ArchiveIntegrityError as exc:
            raise fail(str(exc), EXIT_INTEGRITY) from None
        except ArchiveTargetError as exc:
            raise fail(str(exc), EXIT_UNAVAILABLE) from None

    return handle_errors(wrapper)


def policies(as_json: JsonOpt = False) -> None:
    """List the archival policies (configuration file and registered ones)."""
    from evstore.core.archive import list_policies

    broken: dict[str, str] = {}
    found = list_policies(broken)
    if as_json:
        print_json([p.to_dict() for p in found.values()]
                   + [{"name": name, "error": error} for name, error in sorted(broken.items())])
        return
    if not found and not broken:
        console.print("no archival policies: add [archive.policies.NAME] tables to the file "
                      "named by EVSTORE_CONFIG (see docs/archive.md)")
        return
    table = Table(title="archival policies", title_justify="left")
    for col in ("name", "strategy", "rule", "target", "delete", "schedule"):
        table.add_column(col, overflow="fold")
    for p in found.values():
        rule = {"time_based": f"older than {p.retention_days} days (whole months)",
                "gdpr_based": f"older than {p.retention_days} days, anonymized",
                "count_based": f"keep newest {p.keep_events} per stream",
                "size_based": f"keep under {human_bytes(p.max_bytes or 0)}"}[p.strategy.value]
        table.add_row(p.name, p.strategy.value, rule, p.target_url,
                      "yes" if p.delete_after_archive else "no", p.schedule or "-")
    for name, error in sorted(broken.items()):
        table.add_row(Text(name), Text("invalid", style="red"), Text(error), "-", "-", "-")
    console.print(table)


def preview(
    policy: Annotated[str, typer.Argument(help="The policy's name (see 'evstore archive policies').")],
    as_json: JsonOpt = False,
) -> None:
    """What POLICY would archive now (a dry run: nothing is changed)."""
    from evstore.core.archive import EventArchiver

    with open_store() as store:
        found = EventArchiver(store).preview(policy)
    if as_json:
        print_json(found)
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_row("policy", f"{found.policy} ({found.strategy}) -> {found.target_url}")
    grid.add_row("events", f"{found.events:,} in {found.streams:,} streams, {found.segments} segment(s)")
    grid.add_row("size", f"{human_bytes(found.bytes)} of rows, {human_bytes(found.payload_bytes)} of JSON")
    if found.first_created_at:
        grid.add_row("time range", f"{found.first_created_at:%Y-%m-%d %H:%M} .. "
                     f"{found.last_created_at:%Y-%m-%d %H:%M} UTC")
    if found.cutoff:
        grid.add_row("cutoff", f"before {found.cutoff:%Y-%m-%d %H:%M} UTC")
    parts = ", ".join(found.partitions) or "none"
    grid.add_row("partitions", f"{parts} ({human_bytes(found.partition_bytes)})")
    after = ("partitions detached and dropped" if found.drops_partitions
             else "rows deleted" if found.delete_after_archive else "kept in PostgreSQL")
    grid.add_row("afterwards", after)
    console.print(grid)
    console.print("[dim]dry run: nothing was changed[/]")


def run(
    policy: Annotated[str, typer.Argument(help="The policy's name.")],
    here: Annotated[bool | None, typer.Option(
        "--here/--on-workers",
        help="Upload in this process, or enqueue an 'archive' job for the workers. "
             "Default: on the workers when REDIS_URL is set, else here.")] = None,
    workers: Annotated[int, typer.Option(help="Upload threads when running here.")] = 4,
    wait: Annotated[bool, typer.Option(
        "--wait/--no-wait", help="With --on-workers: wait for the job.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Archive what POLICY selects (resumes the policy's unfinished run, if any)."""
    from evstore.core.archive import EventArchiver, get_policy, get_run

    if here is None:
        here = not os.environ.get("REDIS_URL")
        if here:
            err_console.print("[dim]REDIS_URL not set: archiving in this process[/]")
    with open_store() as store:
        pol = get_policy(policy)
        if here:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          console=err_console, transient=True, disable=as_json) as bar:
                task = bar.add_task(f"archiving {pol.name}", total=None)

                def step(_result: Any) -> None:
                    bar.advance(task)

                result = EventArchiver(store, workers=workers).archive(pol, on_segment=step)
            out: Any = result
            runinfo = result.run
        else:
            from evstore.workers.archive_jobs import guard_report, start_archive_job
            from evstore.workers.engine import JobEngine

            with open_broker() as broker:
                engine = JobEngine(store, broker)
                job_id = start_archive_job(engine, pol, created_by="evstore archive run")
                err_console.print(f"started archive job {job_id} "
                                  f"(follow it: evstore jobs show {job_id} --follow)")
                if wait:
                    engine.wait(job_id)
                job = engine.get(job_id)
                guard = guard_report(engine.detail(job_id))
            runinfo = get_run(store, str(job.params["run_id"]))
            out = {"job": job, "run": runinfo, "guard": guard}
    if as_json:
        print_json(out)
        return
    console.print(f"run {runinfo.run_id}: [bold]{runinfo.status}[/], {runinfo.event_count:,} "
                  f"events in {runinfo.segment_count} segment(s), {runinfo.deleted_events:,} "
                  f"deleted, partitions dropped: {', '.join(runinfo.dropped_partitions) or 'none'}")
    if runinfo.manifest_url:
        console.print(f"manifest: {runinfo.manifest_url}")
    guarded = out.get("guard") if isinstance(out, dict) else None
    if guarded is not None:
        console.print(f"snapshot guard: {guarded.affected:,} aggregate(s) affected, "
                      f"{guarded.built:,} snapshot(s) built, {guarded.already:,} had one")
    if runinfo.last_error:
        err_console.print(f"[yellow]note:[/] {runinfo.last_error}")


def runs(
    policy: Annotated[str | None, typer.Option(help="Only this policy's runs.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Archive runs, newest first."""
    from evstore.core.archive import list_runs

    with open_store() as store:
        found = list_runs(store, policy=policy, limit=limit)
    if as_json:
        print_json(found)
        return
    table = Table(title="archive runs", title_justify="left")
    for col in ("run", "policy", "status", "events", "segments", "deleted", "job", "created (UTC)",
                "manifest / error"):
        table.add_column(col, overflow="fold")
    for r in found:
        table.add_row(r.run_id, r.policy, r.status, f"{r.event_count:,}", str(r.segment_count),
                      f"{r.deleted_events:,}", r.job_id or "", f"{r.created_at:%Y-%m-%d %H:%M:%S}",
                      r.last_error or r.manifest_url or "")
    console.print(table)


def restore(
    url: Annotated[str, typer.Argument(help="A run (folder or run.json), a segment, or a folder of runs.")],
    trust_unsigned: TrustUnsignedOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Bring archived events back into the store (idempotent: never duplicates)."""
    from evstore.core.archive import restore_archive

    with open_store() as store:
        result = restore_archive(store, url, trust_unsigned=trust_unsigned)
    if as_json:
        print_json(result)
        return
    console.print(f"restored {result.events_restored:,} of {result.events_in_archive:,} events "
                  f"from {result.segments} segment(s); {result.events_already_present:,} were "
                  "already in the store")


def verify(
    url: Annotated[str, typer.Argument(help="A run (folder or run.json), a segment, or a folder of runs.")],
    trust_unsigned: TrustUnsignedOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Check an archive where it is: signatures, SHA-256 of every file, sizes, counts, every
    event's checksum."""
    from evstore.core.archive import verify_archive

    report = verify_archive(url, trust_unsigned=trust_unsigned)
    if as_json:
        print_json({**to_jsonable(report), "ok": report.ok})
    else:
        colour = "green" if report.ok else "red"
        console.print(f"[{colour}]{'ok' if report.ok else 'FAILED'}[/]: {report.segments} "
                      f"segment(s), {report.events:,} events, {human_bytes(report.stored_bytes)}"
                      + (", with run manifest" if report.has_run_manifest else ""))
        for problem in report.problems:
            err_console.print(f"[red]problem:[/] {problem}", highlight=False)
    if not report.ok:
        raise typer.Exit(EXIT_INTEGRITY)


def forget(
    user_id: Annotated[str, typer.Argument(help="The data subject (metadata user_id or aggregate id).")],
    delete: Annotated[bool, typer.Option(
        "--delete", help="Delete the events instead of anonymizing them.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Forget a data subject in PostgreSQL (cleanup_gdpr_data); shipped archives are not rewritten."""
    from evstore.core.archive import cleanup_gdpr_data

    with open_store() as store:
        result = cleanup_gdpr_data(store, user_id, anonymize=not delete, accessor="evstore cli")
    if as_json:
        print_json(result.as_dict())
        return
    console.print(f"{user_id}: {result.events_anonymized:,} events anonymized, "
                  f"{result.events_deleted:,} deleted, {result.snapshots_deleted:,} snapshots deleted")


def catalog(
    stream: Annotated[str | None, typer.Argument(help="A stream id: which archives hold its events.")] = None,
    backfill: Annotated[bool, typer.Option(
        "--backfill", help="Catalog completed runs made before the catalog existed (reads their "
                           "segments from the targets).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Which archive run, segment and target holds which positions of a stream."""
    from evstore.core.archive.catalog import backfill_catalog, stream_catalog

    if stream is None and not backfill:
        raise fail("name a stream (evstore archive catalog STREAM) or pass --backfill", 2)
    with open_store() as store:
        if backfill:
            written = backfill_catalog(store)
            if as_json:
                print_json({"runs": written})
            else:
                console.print(f"{len(written)} run(s) cataloged, {sum(written.values()):,} rows")
            if stream is None:
                return
        assert stream is not None
        entries = stream_catalog(store, stream)
        live = store.get_stream_version(stream)
    if as_json:
        print_json({"stream": stream, "version": live, "archived": entries})
        return
    if not entries:
        console.print(f"stream {stream!r}: nothing archived (version {live})")
        return
    table = Table(title=f"archived ranges of {stream} (version {live})", title_justify="left")
    for col in ("positions", "events", "created (UTC)", "run", "policy", "segment", "target"):
        table.add_column(col, overflow="fold")
    for e in entries:
        table.add_row(f"{e.first_position}-{e.last_position}", f"{e.event_count:,}",
                      f"{e.min_created_at:%Y-%m-%d} .. {e.max_created_at:%Y-%m-%d}", e.run_id,
                      e.policy, str(e.segment_no), f"{e.target_url}/{e.data_path or ''}")
    console.print(table)


def tier_rows(store: Any) -> list[dict[str, Any]]:
    """Live and archived events and bytes per month (``evstore stats``)."""
    from evstore.core.archive.catalog import tier_stats

    return [{"month": f"{m.month:%Y-%m}", "live_events": m.live_events, "live_bytes": m.live_bytes,
             "archived_events": m.archived_events, "archived_bytes": m.archived_bytes}
            for m in tier_stats(store)]


def print_tiers(rows: list[dict[str, Any]]) -> None:
    table = Table(title="by month: live and archived", title_justify="left")
    for col in ("month", "live events", "live bytes", "archived events", "archived bytes"):
        table.add_column(col, justify="left" if col == "month" else "right")
    for r in rows:
        table.add_row(r["month"], f"{r['live_events']:,}", human_bytes(r["live_bytes"]),
                      f"{r['archived_events']:,}", human_bytes(r["archived_bytes"]))
    console.print(table)


def register(app: typer.Typer) -> None:
    add_group(app, "archive",
              "Archive events to files, S3, GCS or Azure by policy; restore and verify archives.",
              {"policies": policies, "preview": preview, "run": run, "runs": runs,
               "restore": restore, "verify": verify, "forget": forget, "catalog": catalog},
              wrap=archive_errors)
