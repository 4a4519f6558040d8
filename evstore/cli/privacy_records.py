"""``evstore privacy`` records (issue 11): the access log, legal holds, consent, subject export.

``add_commands(group)`` adds them to the ``privacy`` group of evstore/cli/privacy.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .common import (
    EXIT_INTEGRITY,
    console,
    err_console,
    fail,
    handle_errors,
    open_store,
    plain,
    print_json,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _accessor(store: Any) -> str:
    from evstore.core.privacy.access_observer import observer

    return observer(store).context().accessor or "evstore"


def verify_log(as_json: JsonOption = False) -> None:
    """Check the access log's hash chain: a changed, removed or inserted row fails (exit 5)."""
    from evstore.core.privacy.access_log import adopt_legacy
    from evstore.core.privacy.access_log import verify_log as verify

    with open_store() as store:
        adopted = adopt_legacy(store)  # rows logged before migration 0010, if none is chained yet
        if adopted and not as_json:
            console.print(plain(f"{adopted:,} entries logged before the chain existed were chained"))
        report = verify(store)
    if as_json:
        print_json({"ok": report.ok, "checked": report.checked, "head_seq": report.head_seq,
                    "problems": report.problems})
    elif report.ok:
        console.print(plain(f"access log intact: {report.checked:,} entries chained, "
                            f"head at entry {report.head_seq:,}"))
    if not report.ok:
        if not as_json:
            for problem in report.problems:
                err_console.print(plain(f"  {problem}"), highlight=False)
        raise fail(f"the access log was tampered with: {len(report.problems)} problem(s) found",
                   EXIT_INTEGRITY)


def access_log(
    subject: Annotated[str, typer.Argument(help="The data subject's id.")],
    limit: Annotated[int, typer.Option("--limit", help="At most this many entries.")] = 1000,
    as_json: JsonOption = False,
) -> None:
    """Every logged access to a subject's personal data, oldest first."""
    from evstore.core.privacy.access_log import entries_about

    if limit < 1:
        raise ValueError(f"--limit must be at least 1 (got {limit})")
    with open_store() as store:
        store.flush_access_log()
        rows = entries_about(store, subject, limit)
    if as_json:
        for row in rows:
            row["details"] = row["details"] if isinstance(row["details"], dict) else json.loads(
                row["details"] or "{}")
        print_json(rows)
        return
    if not rows:
        console.print(plain(f"no logged access to subject {subject!r}"))
        return
    table = Table("#", "time", "accessor", "type", "purpose", "ip", "events", "subjects")
    for row in rows:
        table.add_row(
            plain(row["seq"] if row["seq"] is not None else "-"),
            plain(row["accessed_at"].isoformat(timespec="seconds")), plain(row["accessor"]),
            plain(row["access_type"]), plain(row["purpose"] or "-"),
            plain(row["ip_address"] or "-"), plain(len(row["event_ids"] or [])),
            plain(len(row["subject_ids"] or [row["subject_id"]])),
        )
    console.print(table)


def hold(
    subject: Annotated[str, typer.Argument(help="The data subject's id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (a case number, a claim).")],
) -> None:
    """Put a subject under legal hold: it cannot be forgotten, its partitions are not dropped."""
    from evstore.core.privacy import holds

    with open_store() as store:
        found, created = holds.place(store, subject, reason, _accessor(store))
    if created:
        console.print(plain(f"subject {subject!r} is under legal hold ({reason})"))
    else:
        console.print(plain(f"subject {subject!r} was already under legal hold since "
                            f"{found.placed_at.isoformat(timespec='seconds')} ({found.reason})"))


def release(subject: Annotated[str, typer.Argument(help="The data subject's id.")]) -> None:
    """Release a subject's legal hold."""
    from evstore.core.privacy import holds

    with open_store() as store:
        holds.release(store, subject, _accessor(store))
    console.print(plain(f"legal hold on subject {subject!r} released"))


def list_holds(as_json: JsonOption = False) -> None:
    """Subjects under legal hold now."""
    from evstore.core.privacy import holds

    with open_store() as store:
        found = holds.active(store)
    if as_json:
        print_json(found)
        return
    table = Table("subject", "reason", "by", "since")
    for h in found:
        table.add_row(plain(h.subject_id), plain(h.reason), plain(h.placed_by),
                      plain(h.placed_at.isoformat(timespec="seconds")))
    console.print(table if found else plain("no subject is under legal hold"))


def consent(
    subject: Annotated[str, typer.Argument(help="The data subject's id.")],
    purpose: Annotated[str, typer.Argument(help="The purpose (e.g. marketing, analytics).")],
    withdraw: Annotated[bool, typer.Option("--withdraw", help="Record a withdrawal.")] = False,
    note: Annotated[str | None, typer.Option("--note", help="Where it was given or withdrawn.")] = None,
) -> None:
    """Record a subject's consent (or, with --withdraw, its withdrawal) for a purpose."""
    from evstore.core.privacy import consent as consents

    with open_store() as store:
        consents.record(store, subject, purpose, not withdraw, _accessor(store), note)
    state = "withdrawn" if withdraw else "given"
    console.print(plain(f"consent of {subject!r} for {purpose!r}: {state}"))


def consents_of(
    subject: Annotated[str, typer.Argument(help="The data subject's id.")],
    as_json: JsonOption = False,
) -> None:
    """A subject's consent, per purpose."""
    from evstore.core.privacy import consent as consents

    with open_store() as store:
        found = consents.states(store, subject)
    if as_json:
        print_json(found)
        return
    table = Table("purpose", "state", "by", "at", "note")
    for c in found:
        table.add_row(plain(c.purpose), plain("given" if c.granted else "withdrawn"),
                      plain(c.recorded_by), plain(c.recorded_at.isoformat(timespec="seconds")),
                      plain(c.note or ""))
    console.print(table if found else plain(f"no consent recorded for {subject!r}"))


def export(
    subject: Annotated[str, typer.Argument(help="The data subject's id.")],
    out: Annotated[Path, typer.Option("--out", help="The JSON file to write.")],
    no_archive: Annotated[bool, typer.Option(
        "--no-archive", help="Leave out archived events (no archive target is read).")] = False,
) -> None:
    """Everything stored about a subject, decrypted, as JSON with a manifest of SHA-256s."""
    from evstore.core.privacy.export import export_subject

    with open_store() as store:
        result = export_subject(store, subject, out, include_archive=not no_archive)
    counts = ", ".join(f"{n:,} {k}" for k, n in result.counts.items())
    console.print(plain(f"exported subject {subject!r} to {out}: {counts}"))


def add_commands(group: typer.Typer) -> None:
    """Add the access-log, hold, consent and export commands to ``evstore privacy``."""
    for name, func in (
        ("verify-log", verify_log), ("access-log", access_log), ("hold", hold),
        ("release", release), ("holds", list_holds), ("consent", consent),
        ("consents", consents_of), ("export", export),
    ):
        group.command(name)(handle_errors(func))
