"""A store of generated events shared by a module's query tests (built once: appends are slow)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from evstore.core.config import load_settings
from evstore.core.store.persistence import EventMetadata, EventRecord

from evstore import PostgreSQLEventStore
from tests.conftest import PRIMARY, _fresh

START = datetime(2026, 1, 1, tzinfo=UTC)
WORDS = ["ada", "grace", "alan", "edsger", "barbara", "ken", "an'd", "x;DROP", "émile", "Zoë", ""]
SOURCES = ["web", "import", "api"]


def generated_event(rng: random.Random, aggregate: str, i: int) -> EventRecord:
    data: dict[str, Any] = {
        "email": f"{rng.choice(WORDS)}@{rng.choice(['example.com', 'x.org'])}",
        "n": rng.randint(-5, 30),
        "flag": rng.choice([True, False]),
    }
    if rng.random() < 0.7:
        data["x"] = rng.choice([0.5, 1.0, 2.25, -3.5, 10.0, 1e-7])
    if rng.random() < 0.6:
        # A key whose JSON type varies from event to event.
        data["tag"] = rng.choice([None, "a", "b", "ab", 3, 3.0, True, [1, 2], {"k": "a"}])
    if rng.random() < 0.6:
        data["nested"] = {"k": rng.choice([*WORDS, 7, None]), "deep": {"v": rng.randint(0, 5)}}
    if rng.random() < 0.4:
        data["arr"] = [rng.randint(0, 3) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.3:
        data["pad"] = "lorem ipsum " * rng.randint(20, 40)  # large: stored compressed
    extra: dict[str, Any] = {}
    if rng.random() < 0.5:
        extra["score"] = rng.randint(0, 9)
    meta = EventMetadata(user_id=f"u{rng.randint(0, 9)}" if rng.random() < 0.9 else None,
                         correlation_id=f"c{rng.randint(0, 30)}",
                         source=rng.choice(SOURCES) if rng.random() < 0.8 else None, extra=extra)
    return EventRecord(
        aggregate_id=aggregate, aggregate_type=rng.choice(["User", "Account"]) if False else "User",
        event_type=f"T{rng.randint(0, 4)}", event_data=data, metadata=meta, event_id=uuid.uuid4(),
        created_at=START + timedelta(hours=rng.randint(0, 24 * 120)))


class Loaded(tuple):  # type: ignore[type-arg]
    """(store, events): a short repr, for hypothesis' failure reports."""

    def __repr__(self) -> str:
        return f"<query store of {len(self[1])} events>"


@pytest.fixture(scope="module")
def query_store(_servers: Any) -> Iterator[tuple[PostgreSQLEventStore, list[EventRecord]]]:
    """~2,000 events over 4 months (about a third stored compressed) and all of them as read back."""
    rng = random.Random(12)
    with _fresh(_servers[PRIMARY]) as url:
        settings = load_settings(database_url=url, compression="zstd", compression_threshold=256)
        with PostgreSQLEventStore(settings=settings) as store:
            for a in range(40):
                events = [generated_event(rng, f"a{a}", i) for i in range(50)]
                store.append_events(f"User-a{a}", events)
            everything = list(store.iter_all(None, 1000))
            yield Loaded((store, everything))
