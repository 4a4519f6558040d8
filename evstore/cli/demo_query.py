"""The demo's query step: criteria, a --where filter, full text, the cache, explain, anomalies.

Over the run's own workload: every EmailChanged of one user in the last four
months; the user's current address found by a JSON-path filter and by full-text
search; the same query again (answered by the cache); a plan with its
suggestions; and a burst of 300 logins it injects for one account in the last
complete 5-minute bucket, which the anomaly scan must find.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from rich.table import Table

from evstore.core.store.persistence import EventMetadata, EventRecord

from .common import console, err_console, plain

BURST = 300


def _forgotten_lately(store: Any, service: Any) -> bool:
    """A subject forgotten within the cache's lifetime (an earlier demo run, say): the cache
    then serves nothing once anything was written since (docs/query.md), by design."""
    with store.db.connection() as conn:
        row = conn.execute(store.db.sql("query", "forgotten_lately"),
                           [service.cache.ttl + 5.0]).fetchone()
    return bool(row and row[0])


def run_query_demo(store: Any, run_id: str) -> None:
    """The query step; exits 1 (after showing why) when something it shows did not hold."""
    from evstore.core.query import EventQueryService, EventSearchCriteria, f
    from evstore.core.query.where import parse_where

    service = EventQueryService(store)
    now = datetime.now(UTC)
    pick, _ = service.query_events(EventSearchCriteria(
        event_types=["EmailChanged"], where=f("metadata.demo_run") == run_id, limit=1, order="desc"))
    if not pick.events:
        console.print("query demo: no EmailChanged in this run (too few users); skipped")
        return
    chosen = pick.events[0]
    user, email = chosen.metadata.user_id, chosen.event_data["new_email"]
    rows: list[tuple[str, str, Any]] = []
    problems: list[str] = []

    def run(label: str, criteria: Any) -> Any:
        result, m = service.query_events(criteria)
        rows.append((label, f"{len(result.events)} events", m))
        return result

    month_ago = EventSearchCriteria(user_id=user, event_types=["EmailChanged"],
                                    from_timestamp=now - timedelta(days=120))
    changes = run(f"EmailChanged of user {user[:8]}, last 120 days", month_ago)
    where = f"data.new_email == {json.dumps(email)} and not metadata.source == \"import\""
    by_path = run(f"--where '{where}'", EventSearchCriteria(where=parse_where(where)))
    again = run("the first query again", month_ago)
    hits = service.search_event_content(email, limit=5)
    if chosen.event_id not in {e.event_id for e in changes.events}:
        problems.append("the user's EmailChanged was not found by criteria")
    if chosen.event_id not in {e.event_id for e in by_path.events}:
        problems.append("the JSON-path filter missed the address")
    if chosen.event_id not in {e.event_id for e in hits}:
        problems.append("full-text search missed the address")
    if again.events != changes.events:
        problems.append("the repeated query did not give the same events")
    elif not rows[2][2].cache_hit:
        if not _forgotten_lately(store, service):
            problems.append("the repeated query was not answered by the cache")
        else:
            err_console.print("[dim]the repeated query was not cached: a subject was forgotten "
                              "within the cache's lifetime (docs/query.md)[/]")

    # A burst of logins for one account in the last complete 5-minute bucket.
    burst_user = str(uuid.uuid4())
    end = datetime.fromtimestamp(int(now.timestamp()) // 300 * 300, UTC)
    at = end - timedelta(seconds=150)
    store.append_events(f"User-{burst_user}", [EventRecord(
        aggregate_id=burst_user, aggregate_type="User", event_type="UserLoggedIn",
        event_data={"ip": f"203.0.113.{i % 250}", "method": "password", "success": False},
        created_at=at + timedelta(milliseconds=i),
        metadata=EventMetadata(user_id=burst_user, source="identity-service",
                               extra={"demo_run": run_id})) for i in range(BURST)])
    found = service.detect_anomalies(window=timedelta(days=7), bucket=timedelta(minutes=5),
                                     by="metadata.user_id", now=now)
    burst = [a for a in found if a.key == f"UserLoggedIn for {burst_user}" and a.kind == "burst"]
    if not burst:
        problems.append("the injected burst of logins was not flagged")
    plan = service.explain(EventSearchCriteria(where=f("metadata.source") == "identity-service"))

    table = Table(title="queries (evstore query, docs/query.md)", title_justify="left")
    for col in ("query", "found", "ms", "partitions scanned / pruned", "cache"):
        table.add_column(col, overflow="fold")
    for label, found_text, m in rows:
        table.add_row(plain(label), found_text, f"{m.query_duration_ms:.1f}",
                      f"{len(m.partitions_scanned)} / {len(m.partitions_pruned)}",
                      "hit" if m.cache_hit else "-")
    table.add_row(plain(f"search {email!r}"), f"{len(hits)} events", "-", "-", "-")
    console.print(table)
    console.print(plain(f"anomalies (7 days, 5-minute buckets, by user): {len(found)} flagged"))
    for a in (burst or found)[:3]:
        console.print(plain("  " + a.explanation), style="red")
    console.print(plain(f"explain (no time bound): {plan.summary}; {len(plan.suggestions)} suggestions, "
                        f"e.g. {plan.suggestions[0] if plan.suggestions else '-'}"))
    if problems:
        for p in problems:
            err_console.print(plain(f"query demo: {p}"), style="red")
        raise typer.Exit(1)
