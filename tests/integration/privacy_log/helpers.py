"""What the access-log tests share: declarations, a store with a chosen flush delay, the log's rows."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from evstore.core.config import load_settings
from evstore.core.privacy.declarations import PersonalData, declare

from evstore import EventMetadata, EventRecord, PostgreSQLEventStore

# Event types of these tests, declared in the process-wide registry (names no other test uses).
PROFILE = "P2ProfileSet"      # personal: data.email, data.name; subject metadata.user_id
ORDER = "P2OrderPlaced"       # no personal data
declare(PersonalData(PROFILE, ("data.email", "data.name")))


def open_store(url: str, flush_ms: int = 200, **overrides: Any) -> PostgreSQLEventStore:
    return PostgreSQLEventStore(settings=load_settings(database_url=url,
                                                       access_log_flush_ms=flush_ms, **overrides))


def profile(user: str, email: str | None = None) -> EventRecord:
    return EventRecord(user, "User", PROFILE,
                       {"email": email or f"{user}@example.com", "name": f"Name {user}", "plan": "pro"},
                       metadata=EventMetadata(user_id=user))


def order(user: str) -> EventRecord:
    return EventRecord(f"order-{uuid.uuid4().hex[:6]}", "Order", ORDER, {"total": 10},
                       metadata=EventMetadata(user_id=user))


def log_rows(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn:
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        return cur.execute(
            "SELECT * FROM events.event_access_log ORDER BY seq NULLS LAST, id").fetchall()


def sql(url: str, text: str, *args: Any) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(text, args or None)
