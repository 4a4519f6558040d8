"""The Queries page: a criteria form and a full-text box over the EventQueryService (issue 12),
with the plan and the index suggestions of ``explain``.

The form is a POST (criteria may name people: aggregate ids, user ids, words of
the data), never a query string; results are shown like a stream's events,
personal fields masked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from evstore.core.errors import EventStoreError

from . import data

FIELDS = ("event_types", "aggregate_types", "aggregate_ids", "user_id", "correlation_id",
          "from", "to", "limit", "text")
MAX_LIMIT = 500


def _names(text: str) -> list[str] | None:
    names = [n.strip() for n in text.split(",") if n.strip()]
    return names or None


def _time(text: str, name: str) -> datetime | None:
    if not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name}: {text!r} is not a time such as 2026-05-01T12:00") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def run(store: Any, form: dict[str, str]) -> dict[str, Any]:
    """The page's context for a submitted form: events, plan, suggestions, or the error."""
    from evstore.core.query.criteria import EventSearchCriteria
    from evstore.core.query.service import EventQueryService

    out: dict[str, Any] = {"form": form, "events": None, "plan": None, "error": None}
    try:
        limit = int(form.get("limit") or 50)
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be from 1 to {MAX_LIMIT}")
        criteria: dict[str, Any] = {
            "event_types": _names(form.get("event_types", "")),
            "aggregate_types": _names(form.get("aggregate_types", "")),
            "aggregate_ids": _names(form.get("aggregate_ids", "")),
            "user_id": form.get("user_id", "").strip() or None,
            "correlation_id": form.get("correlation_id", "").strip() or None,
            "from_timestamp": _time(form.get("from", ""), "from"),
            "to_timestamp": _time(form.get("to", ""), "to"),
        }
        service = EventQueryService(store)
        text = form.get("text", "").strip()
        if text:
            types = criteria.pop("event_types")
            found = service.search_event_content(
                text, types, limit=limit, **{k: v for k, v in criteria.items() if v is not None})
            out["plan"] = {"summary": "full-text search (ranked, best first)", "scanned": [],
                           "pruned": [], "suggestions": [], "metrics": None}
        else:
            search = EventSearchCriteria(limit=limit, **criteria)
            result, metrics = service.query_events(search)
            found = result.events
            report = service.explain(search)
            out["plan"] = {"summary": report.summary, "scanned": report.partitions_scanned,
                           "pruned": report.partitions_pruned, "suggestions": report.suggestions,
                           "metrics": metrics}
        out["events"] = data.event_views(found, data.privacy_registry())
    except (EventStoreError, ValueError) as exc:
        out["error"] = str(exc)
    return out
