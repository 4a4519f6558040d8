"""The demo's privacy step: encryption on, a few members forgotten by forget jobs.

Members sign up in a month long past (``PrivacyDemoSignedUp``: e-mail, name
and IP address declared personal, the member's aggregate id the subject): a
third before encryption was turned on (plain text), the rest encrypted per
member. The month is archived to ``$EVSTORE_HOME/archive/privacy-demo``. Then a few
members are forgotten, each by a forget job (job rows and batches, run in
this process): keys destroyed, plain-text fields anonymized, archive segments
rewritten. Shown: the job's counts; that none of their strings is left in the
database or in the archive (every object decompressed and searched); that the
archive, restored, brings them back anonymized while everyone else's events
read back as written and every checksum verifies.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from evstore.core.store.partitions import add_months, month_of
from evstore.core.store.persistence import EventMetadata, EventRecord
from evstore.core.store.postgres import PostgreSQLEventStore

from .common import console, err_console, plain

EVENT_TYPE = "PrivacyDemoSignedUp"
AGGREGATE = "DemoMember"
MONTHS_AGO = 30


def _archive_text(folder: Path) -> str:
    import zstandard

    out = []
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".zst":
                data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
            out.append(data.decode("utf-8", "replace"))
    return "\n".join(out)


def _database_text(store: PostgreSQLEventStore) -> str:
    with store.db.connection() as conn:
        rows = conn.execute(store.db.sql("privacy", "demo_texts")).fetchall()
    return "\n".join(t for (t,) in rows if t)


def run_privacy_demo(store: PostgreSQLEventStore, members: int = 30, forget: int = 3) -> None:
    """The privacy step; exits 1 (after showing why) when something it shows did not hold."""
    from evstore.core.archive import ArchivalPolicy, EventArchiver
    from evstore.core.embedded import private_dir
    from evstore.core.privacy.crypto import FORGOTTEN
    from evstore.core.privacy.declarations import PersonalData, declare
    from evstore.core.privacy.forget_job import run_here

    declare(PersonalData(EVENT_TYPE, ("data.email", "data.name", "metadata.ip_address"),
                         subject="aggregate_id", aggregate_type=AGGREGATE))
    tag = uuid.uuid4().hex[:6]
    month = add_months(month_of(datetime.now(UTC)), -MONTHS_AGO)
    at = datetime(month.year, month.month, 3, tzinfo=UTC)
    ids = [f"m{tag}{i:03d}" for i in range(members)]

    def signed_up(i: int, member: str) -> EventRecord:
        return EventRecord(member, AGGREGATE, EVENT_TYPE, {
            "email": f"{member}@privacy-demo.example", "name": f"Name-{member}", "plan": "free"},
            metadata=EventMetadata(user_id=member, extra={"ip_address": f"10.{i}.{tag}"}),
            created_at=at + timedelta(minutes=i))

    on = store.settings.model_copy(update={"encryption": "aes-256-gcm"})
    off = store.settings.model_copy(update={"encryption": "none"})
    folder = private_dir(private_dir(Path(store.settings.home) / "archive") / "privacy-demo")
    with PostgreSQLEventStore(pool=store.db.pool, settings=off) as plain_store, \
            PostgreSQLEventStore(pool=store.db.pool, settings=on) as enc:
        for i, member in enumerate(ids):
            (plain_store if i % 3 == 0 else enc).append_events(f"{AGGREGATE}-{member}",
                                                                [signed_up(i, member)])
        before = {m: enc.read_stream(f"{AGGREGATE}-{m}") for m in ids}
        policy = ArchivalPolicy(name="demo-privacy", strategy="time_based",
                                retention_days=max(1, (datetime.now(UTC) - add_month_end(month)).days),
                                target_url=folder.as_uri())
        with err_console.status("privacy: archiving the members' month"):
            archived = EventArchiver(enc).archive(policy)
        gone, kept = ids[:forget], ids[forget:]
        results = []
        with err_console.status(f"privacy: forgetting {forget} members (forget jobs)"):
            for member in gone:
                results.append(run_here(enc, member, "evstore demo"))
        strings = [s for m in gone for s in (f"{m}@privacy-demo.example", f"Name-{m}")]
        in_db = sum(s in _database_text(enc) for s in strings)
        in_archive = sum(s in _archive_text(folder) for s in strings)
        assert archived.run.manifest_url is not None
        restored = EventArchiver(enc).restore(archived.run.manifest_url)
        after = {m: enc.read_stream(f"{AGGREGATE}-{m}") for m in ids}
        anonymized = all(after[m][0].event_data["email"] == FORGOTTEN
                         and after[m][0].metadata.extra["ip_address"] == FORGOTTEN for m in gone)
        others_equal = all(
            [(e.event_id, e.event_data, e.metadata) for e in after[m]]
            == [(e.event_id, e.event_data, e.metadata) for e in before[m]] for m in kept)
        verified = enc.verify().ok
    table = Table(title="privacy: encryption on, members forgotten by forget jobs",
                  title_justify="left", show_header=False)
    table.add_column()
    table.add_column(justify="right")
    table.add_row("members (a third written before encryption)", f"{members}")
    table.add_row("their month archived", plain(f"{archived.events} events to {folder}"))
    for member, result in zip(gone, results, strict=True):
        table.add_row(plain(f"forget job {result.job_id} ({member})"), plain(
            f"{result.keys_destroyed} key destroyed, {result.events_anonymized} plain event "
            f"anonymized, {result.events_crypto_shredded} encrypted event shredded, "
            f"{result.archive_segments_rewritten} archive segment(s) rewritten"))
    table.add_row("their strings left in the database / the archive", f"{in_db} / {in_archive}")
    table.add_row("archive restored", f"{restored.events_restored} events, the forgotten ones "
                  + ("[green]anonymized[/]" if anonymized else "[red]NOT anonymized[/]"))
    table.add_row("everyone else's events read back as written",
                  "[green]yes[/]" if others_equal else "[red]NO[/]")
    table.add_row("checksums verified", "[green]ok[/]" if verified else "[red]FAILED[/]")
    console.print(table)
    if not (in_db == 0 and in_archive == 0 and anonymized and others_equal and verified):
        raise typer.Exit(1)


def add_month_end(month: Any) -> datetime:
    """The first instant after ``month``."""
    nxt = add_months(month, 1)
    return datetime(nxt.year, nxt.month, 1, tzinfo=UTC)
