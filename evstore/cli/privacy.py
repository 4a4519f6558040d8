"""``evstore privacy``: forget a data subject (a job), rotate the master key, audit declarations.

Personal data is declared per event type (``[privacy.<EventType>]`` of the
configuration file, or in code: docs/privacy.md). ``forget`` runs a forget
job on the workers (``--here``: in this process, no workers needed).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .common import (
    EXIT_FAILED,
    add_group,
    console,
    err_console,
    fail,
    handle_errors,
    open_broker,
    open_store,
    plain,
    print_json,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def forget(
    subject: Annotated[str, typer.Argument(help="The subject id (the value at the declared subject path).")],
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the job to end; print its counts.")] = False,
    here: Annotated[bool, typer.Option("--here", help="Run the job in this process (no workers).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Forget SUBJECT everywhere: data keys, plain-text fields, snapshots, archives, blind index."""
    from evstore.core.privacy.forget import get_result
    from evstore.core.privacy.forget_job import run_here

    with open_store() as store:
        if here:
            result = run_here(store, subject, "evstore privacy forget")
        else:
            from evstore.workers.engine import JobEngine
            from evstore.workers.forget_jobs import start_forget_job

            with open_broker() as broker:
                engine = JobEngine(store, broker)
                job_id = start_forget_job(engine, subject, created_by="evstore privacy forget")
                err_console.print(f"started forget job {job_id} (follow it: evstore jobs show {job_id} "
                                  "--follow)", highlight=False)
                request_id = int(engine.get(job_id).params["request_id"])
                if not wait:
                    if as_json:
                        print_json({"job_id": job_id, "request_id": request_id})
                    return
                job = engine.wait(job_id)
                if job.status != "succeeded":
                    raise fail(f"forget job {job_id} {job.status}: see 'evstore jobs show {job_id}'; "
                               f"'evstore jobs requeue {job_id}' completes it", EXIT_FAILED)
            result = get_result(store, request_id)
    if as_json:
        print_json(result.as_dict())
        return
    console.print(plain(
        f"forgotten (subject ref {result.subject_ref[:12]}…, job {result.job_id}): "
        f"{result.keys_destroyed} key(s) destroyed, {result.events_anonymized:,} plain-text "
        f"event(s) anonymized, {result.events_crypto_shredded:,} encrypted event(s) made "
        f"unreadable, {result.snapshots_rewritten:,} snapshot(s) dropped, "
        f"{result.archive_segments_rewritten:,} archive segment(s) rewritten, "
        f"{result.blind_index_entries_removed:,} blind-index entries removed"))


def rotate_master_key(as_json: JsonOpt = False) -> None:
    """Rewrap every data key with the current master key (events are not touched).

    Set the new key as EVENT_STORE_MASTER_KEY and the old one in
    EVENT_STORE_PREVIOUS_MASTER_KEYS, run this, then drop the old key.
    """
    from evstore.core.privacy.admin import rotate_master_key as rotate

    with open_store() as store:
        done, total = rotate(store)
    if as_json:
        print_json({"rewrapped": done, "keys": total})
        return
    console.print(f"{done:,} data key(s) rewrapped; {total:,} in all, every one under the current master key")


def audit(as_json: JsonOpt = False) -> None:
    """Event types with no personal-data declaration, and undeclared fields that look personal."""
    from evstore.core.privacy.admin import audit as run_audit

    with open_store() as store:
        report = run_audit(store)
    if as_json:
        print_json(report.as_dict())
        return
    console.print(plain(f"declared event types: {', '.join(report.declared) or 'none'}"))
    if report.undeclared_types:
        console.print(plain("event types with no declaration: " + ", ".join(report.undeclared_types)))
    if report.warnings:
        table = Table("event type", "field", "warning", title="fields that look personal but are undeclared")
        for event_type, path, why in report.warnings:
            table.add_row(plain(event_type), plain(path), plain(why))
        console.print(table)
    else:
        console.print("no undeclared field looks personal")


def forgets(limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 20,
            as_json: JsonOpt = False) -> None:
    """The audit of forget requests: counts, who, when (subjects by keyed ref only)."""
    from psycopg.rows import dict_row

    with open_store() as store, store.db.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(store.db.sql("privacy", "requests_recent"), {"limit": limit}).fetchall()
    if as_json:
        print_json(rows)
        return
    table = Table("request", "subject ref", "job", "by", "requested", "finished", "counts")
    for r in rows:
        table.add_row(str(r["request_id"]), r["subject_ref"][:12] + "…", str(r["job_id"] or ""),
                      plain(r["requested_by"]), str(r["requested_at"])[:19],
                      str(r["finished_at"] or "")[:19], plain(r["counts"]))
    console.print(table)


def register(app: typer.Typer) -> None:
    group = add_group(app, "privacy",
                      "Personal data: forget a subject, rotate the master key, audit declarations.",
                      {"forget": forget, "forgets": forgets, "rotate-master-key": rotate_master_key,
                       "audit": audit}, wrap=handle_errors)
    from .privacy_records import add_commands

    add_commands(group)
