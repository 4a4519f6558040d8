"""What the console's pages show, read through the same core functions as the CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from evstore.core.store.persistence import EventRecord

APPEND_WINDOW = 300  # seconds over which the append rate is measured
EXACT_COUNT_BELOW = 200_000  # count events exactly when the estimate is this small
MASK = "•••• (personal data)"


@dataclass(frozen=True)
class Figure:
    label: str
    value: str
    href: str
    warn: bool = False


def overview(store: Any) -> list[Figure]:
    """The overview's figures, each linked to the page that explains it."""
    from evstore.core.reader.checkpoints import CheckpointStore

    db = store.db
    metrics = store.metrics(exact=False)
    events = metrics.events
    if events < EXACT_COUNT_BELOW:
        events = store.metrics(exact=True).events
    with db.connection() as conn:
        (recent,) = conn.execute(db.sql("console", "recent_appends"), {"seconds": APPEND_WINDOW}).fetchone()
        (open_for,) = conn.execute(db.sql("console", "oldest_open_write")).fetchone()
        failed, workers = conn.execute(db.sql("console", "batch_overview")).fetchone()
    this_month = datetime.now().astimezone().strftime("%Y-%m")
    ahead = sum(1 for p in store.list_partitions() if p.month > this_month)
    groups = CheckpointStore(store).groups(with_lag=True)
    behind = sum(1 for g in groups if g.lag_events > 0)
    return [
        Figure("events stored", f"{events:,}", "/streams"),
        Figure("append rate", f"{recent / APPEND_WINDOW:,.1f}/s (last {APPEND_WINDOW // 60} min)",
               "/streams"),
        Figure("horizon lag", f"{float(open_for):.1f} s (oldest open write)", "/consumers",
               warn=float(open_for) > 60),
        Figure("month partitions ahead", str(ahead), "/streams#partitions", warn=ahead < 1),
        Figure("workers seen", f"{workers} (last hour)", "/jobs"),
        Figure("failed batches", str(failed), "/jobs?status=failed", warn=bool(failed)),
        Figure("consumer groups behind", f"{behind} of {len(groups)}", "/consumers", warn=bool(behind)),
    ]


def list_actions(store: Any, limit: int = 200) -> list[dict[str, Any]]:
    db = store.db
    with db.connection() as conn:
        cur = conn.execute(db.sql("console", "list_actions"), {"limit": limit})
        names = [c.name for c in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def record_action(store: Any, operator: str, action: str, target: str, outcome: str,
                  detail: str = "", client: str = "") -> None:
    """One row of console_actions (migration 0011); never event data or a stream id."""
    from evstore.core.redaction import redact

    db = store.db
    with db.connection() as conn:
        conn.execute(db.sql("console", "record_action"), {
            "operator": operator, "action": action, "target": target, "outcome": outcome,
            "detail": redact(detail)[:500], "client": client})


# -- streams: events as formatted JSON, personal fields masked ----------------

def privacy_registry() -> Any | None:
    """The personal-data declarations (issue 10), or None where that module is missing."""
    try:
        from evstore.core.privacy.declarations import registry_for
    except ImportError:  # pragma: no cover - an older tree
        return None
    return registry_for()


def _mask(event: EventRecord, registry: Any | None) -> tuple[dict[str, Any], dict[str, Any], int]:
    """(data, metadata, fields masked): copies with every declared personal field hidden."""
    data = json.loads(json.dumps(event.event_data, default=str))
    meta = json.loads(json.dumps(event.metadata.to_dict(), default=str))
    if registry is None:
        return data, meta, 0
    from evstore.core.privacy.declarations import parse_path, transform_at

    pd = registry.declaration_of(event)
    if pd is None:
        return data, meta, 0
    masked = 0
    for path in pd.fields:
        root, steps = parse_path(path)
        masked += transform_at(data if root == "data" else meta, steps, lambda _v: MASK)
    return data, meta, masked


def event_views(events: list[EventRecord], registry: Any | None) -> list[dict[str, Any]]:
    out = []
    for e in events:
        data, meta, masked = _mask(e, registry)
        out.append({
            "position": e.stream_position, "global_position": e.global_position,
            "event_type": e.event_type, "event_version": e.event_version,
            "event_id": str(e.event_id), "created_at": e.created_at, "stored_at": e.stored_at,
            "data": json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True),
            "metadata": json.dumps(meta, indent=2, ensure_ascii=False, sort_keys=True),
            "masked": masked, "checksum": (e.checksum or "")[:16],
        })
    return out


def verify_stream_page(store: Any, stream_id: str, first: int, last: int) -> dict[str, Any]:
    """Check the checksums of a stream's events at versions first..last (store.verify over their
    global positions; mismatches of other streams in that range are left out)."""
    db = store.db
    with db.connection() as conn:
        low, high, count = conn.execute(db.sql("console", "stream_range"), {
            "stream_id": stream_id, "first": first, "last": last}).fetchone()
    if not count:
        return {"checked": 0, "ok": True, "mismatches": []}
    report = store.verify(int(low), int(high))
    mine = [m for m in report.mismatches if m.stream_id == stream_id]
    return {"checked": int(count), "ok": not mine,
            "mismatches": [{"global_position": m.global_position, "event_id": str(m.event_id),
                            "problem": m.computed[:80]} for m in mine]}


def schedules(store: Any) -> list[dict[str, Any]]:
    """What ``evstore schedules`` lists (same functions)."""
    from evstore.core.jobs.firings import last_firings
    from evstore.schedules import load_schedules
    from evstore.workers.scrub import without_urls

    found = load_schedules()
    now = datetime.now(UTC)
    last = last_firings(store)
    rows = []
    for name, s in found.items():
        f = last.get(name)
        rows.append({
            "name": name, "what": s.describe(), "trigger": str(s.trigger),
            "next_firing": s.trigger.next_after(now),
            "last_firing": f.scheduled_for if f else None, "last_status": f.status if f else None,
            "job_kind": f.job_kind if f else None, "job_id": f.job_id if f else None,
            "detail": without_urls(f.detail) if f and f.detail else None,
        })
    return rows
