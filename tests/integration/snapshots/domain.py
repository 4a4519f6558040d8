"""Test aggregates: a bank account whose state depends on the order of its events."""

from __future__ import annotations

from typing import Any

from evstore.core.snapshots.aggregate import Aggregate

from evstore import EventRecord

EVENT_TYPES = ("Opened", "Deposited", "Withdrew", "Renamed", "Tagged")


class Account(Aggregate):
    aggregate_type = "Account"
    state_schema = 1

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.name = ""
        self.balance = 0
        self.tags: list[str] = []
        self.history: list[str] = []  # order-sensitive

    def apply(self, event: EventRecord) -> None:
        d = event.event_data
        if event.event_type == "Opened":
            self.name = d["name"]
        elif event.event_type == "Deposited":
            self.balance += d["amount"]
        elif event.event_type == "Withdrew":
            self.balance -= d["amount"]
        elif event.event_type == "Renamed":
            self.name = d["name"]
        elif event.event_type == "Tagged":
            self.tags.append(d["tag"])
        self.history.append(f"{event.stream_position}:{event.event_type}")

    def save(self) -> dict[str, Any]:
        return {"name": self.name, "balance": self.balance, "tags": self.tags,
                "history": self.history}

    def restore(self, state: dict[str, Any]) -> None:
        self.name = state["name"]
        self.balance = state["balance"]
        self.tags = list(state["tags"])
        self.history = list(state["history"])


class AccountV2(Account):
    """The same aggregate after its state's shape changed: old snapshots must be ignored."""

    state_schema = 2

    def save(self) -> dict[str, Any]:
        return {**super().save(), "balance_cents": self.balance * 100}

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        assert "balance_cents" in state, "a v1 snapshot was given to v2 code"


def event(kind: str, n: int = 1) -> EventRecord:
    data: dict[str, Any] = {
        "Opened": {"name": f"acct-{n}"}, "Deposited": {"amount": n}, "Withdrew": {"amount": n},
        "Renamed": {"name": f"name-{n}"}, "Tagged": {"tag": f"t{n}"},
    }[kind]
    return EventRecord("", "Account", kind, data)


def append(store: Any, aggregate_id: str, kinds: list[tuple[str, int]]) -> None:
    events = [EventRecord(aggregate_id, "Account", k, event(k, n).event_data) for k, n in kinds]
    if events:
        store.append_events(f"Account-{aggregate_id}", events)


def deposits(store: Any, aggregate_id: str, count: int) -> None:
    append(store, aggregate_id, [("Deposited", i + 1) for i in range(count)])
