"""A realistic identity-service workload: users register, update their profile,
change e-mail, log in (a lot), change passwords and are deleted.

Used by the demo and the benchmarks. Deterministic for a given seed; event
times are spread over the last ``months`` months so several monthly
partitions fill up.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from evstore.core.store.persistence import EventMetadata, EventRecord

DOMAINS = ["example.com", "mail.test", "corp.example", "inbox.test", "users.example"]
FIRST = ["ada", "alan", "grace", "linus", "margaret", "ken", "barbara", "edsger", "donald", "frances"]
COUNTRIES = ["FR", "DE", "GB", "US", "JP", "BR", "IN", "NG", "CA", "SE"]


@dataclass
class UserScript:
    """The events of one user, in order; appended in a few calls."""

    user_id: str
    stream_id: str
    events: list[EventRecord]


def _email(rng: random.Random, name: str) -> str:
    return f"{name}.{rng.randrange(10_000)}@{rng.choice(DOMAINS)}"


def user_script(rng: random.Random, now: datetime, months: int = 4, run_id: str = "") -> UserScript:
    user_id = str(uuid.UUID(int=rng.getrandbits(128)))
    stream_id = f"User-{user_id}"
    name = rng.choice(FIRST)
    t = now - timedelta(days=rng.uniform(1, months * 30))
    correlation = str(uuid.UUID(int=rng.getrandbits(128)))
    events: list[EventRecord] = []

    def add(event_type: str, data: dict[str, object]) -> None:
        nonlocal t
        events.append(
            EventRecord(
                aggregate_id=user_id,
                aggregate_type="User",
                event_type=event_type,
                event_data=data,
                aggregate_version=len(events) + 1,
                event_id=uuid.UUID(int=rng.getrandbits(128)),
                created_at=t,
                metadata=EventMetadata(
                    user_id=user_id, correlation_id=correlation, source="identity-service",
                    extra={"demo_run": run_id} if run_id else {},
                ),
            )
        )
        t = min(now, t + timedelta(minutes=rng.uniform(1, 60 * 24 * 3)))

    email = _email(rng, name)
    add("UserRegistered", {"email": email, "name": name.title(), "country": rng.choice(COUNTRIES),
                           "marketing_opt_in": rng.random() < 0.3})
    for _ in range(rng.randint(1, 12)):
        roll = rng.random()
        if roll < 0.70:
            add("UserLoggedIn", {"ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
                                 "method": rng.choice(["password", "passkey", "sso"]),
                                 "success": rng.random() < 0.95})
        elif roll < 0.82:
            add("ProfileUpdated", {"field": rng.choice(["name", "country", "avatar", "locale"]),
                                   "value": rng.choice(FIRST).title()})
        elif roll < 0.92:
            old, email = email, _email(rng, name)
            add("EmailChanged", {"old_email": old, "new_email": email})
        else:
            add("PasswordChanged", {"strength": rng.choice(["weak", "medium", "strong"])})
    if rng.random() < 0.05:
        add("UserDeleted", {"reason": rng.choice(["user_request", "gdpr", "fraud"])})
    return UserScript(user_id, stream_id, events)


def generate(users: int, seed: int | None = None, months: int = 4, run_id: str = "") -> list[UserScript]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    return [user_script(rng, now, months, run_id) for _ in range(users)]


def power_user_script(rng: random.Random, now: datetime, logins: int, run_id: str = "") -> UserScript:
    """A service account that logs in all the time: one long stream."""
    script = user_script(rng, now, months=1, run_id=run_id)
    script.events[:] = script.events[:1]
    t = script.events[0].created_at
    step = (now - t) / max(1, logins)
    for i in range(logins):
        script.events.append(EventRecord(
            aggregate_id=script.user_id, aggregate_type="User", event_type="UserLoggedIn",
            event_data={"ip": f"10.0.{i % 256}.{rng.randrange(256)}", "method": "api-key",
                        "success": True},
            aggregate_version=i + 2, event_id=uuid.UUID(int=rng.getrandbits(128)),
            created_at=t + step * (i + 1),
            metadata=EventMetadata(user_id=script.user_id, source="identity-service",
                                   extra={"demo_run": run_id} if run_id else {}),
        ))
    return script


class UserAccount:
    """The demo's User aggregate (evstore.core.snapshots.aggregate protocol): what a login
    screen needs to know, rebuilt from the user's events."""

    aggregate_type = "User"
    state_schema = 1

    def __init__(self, aggregate_id: str) -> None:
        self.id = aggregate_id
        self.version = 0
        self.email = ""
        self.deleted = False
        self.logins = 0
        self.failed_logins = 0
        self.methods: dict[str, int] = {}

    def apply(self, event: EventRecord) -> None:
        data = event.event_data
        if event.event_type == "UserRegistered":
            self.email = str(data["email"])
        elif event.event_type == "EmailChanged":
            self.email = str(data["new_email"])
        elif event.event_type == "UserDeleted":
            self.deleted = True
        elif event.event_type == "UserLoggedIn":
            if data.get("success", True):
                self.logins += 1
            else:
                self.failed_logins += 1
            method = str(data.get("method", "?"))
            self.methods[method] = self.methods.get(method, 0) + 1

    def save(self) -> dict[str, object]:
        return {"email": self.email, "deleted": self.deleted, "logins": self.logins,
                "failed_logins": self.failed_logins, "methods": self.methods}

    def restore(self, state: dict[str, object]) -> None:
        self.email = str(state["email"])
        self.deleted = bool(state["deleted"])
        self.logins = int(state["logins"])  # type: ignore[call-overload]
        self.failed_logins = int(state["failed_logins"])  # type: ignore[call-overload]
        self.methods = dict(state["methods"])  # type: ignore[call-overload]


def email_domains(scripts: list[UserScript]) -> dict[str, int]:
    """Users per e-mail domain after all the scripts' events (deleted users left out)."""
    final: dict[str, str | None] = {}
    for script in scripts:
        for e in script.events:
            if e.event_type == "UserRegistered":
                final[script.user_id] = str(e.event_data["email"]).rsplit("@", 1)[1]
            elif e.event_type == "EmailChanged":
                final[script.user_id] = str(e.event_data["new_email"]).rsplit("@", 1)[1]
            elif e.event_type == "UserDeleted":
                final[script.user_id] = None
    counts: dict[str, int] = {}
    for domain in final.values():
        if domain is not None:
            counts[domain] = counts.get(domain, 0) + 1
    return counts
