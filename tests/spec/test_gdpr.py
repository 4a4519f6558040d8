"""The spec's "GDPR Compliance" example, as written (Usage Examples).

``cleanup_gdpr_data`` runs the forget job in this process (issue 10); what is
personal in the example's events is declared in a configuration file of the
test's own (``[privacy.<EventType>]``), so no declaration outlives the test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from evstore.core.archive import unregister_policy

from evstore.aio import (
    ArchivalPolicy,
    ArchivalStrategy,
    EventArchiver,
    EventMetadata,
    EventRecord,
    PostgreSQLEventStore,
)

from .conftest import run

DECLARATIONS = """
[privacy.UserCreated]
fields = ["data.email", "data.name"]
subject = "metadata.user_id"

[privacy.UserUpdated]
fields = ["data.email", "data.name"]
subject = "metadata.user_id"
"""


def test_gdpr_compliance(event_store: PostgreSQLEventStore, user_id: UUID, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "evstore.toml"
    config.write_text(DECLARATIONS)
    monkeypatch.setenv("EVSTORE_CONFIG", str(config))
    other = uuid4()

    def events_of(uid: UUID, email: str) -> list[EventRecord]:
        meta = EventMetadata(user_id=uid, gdpr_compliant=True)
        return [
            EventRecord(uid, "User", "UserCreated", {"email": email, "name": "John Doe"},
                        aggregate_version=1, metadata=meta),
            EventRecord(uid, "User", "UserUpdated", {"email": f"new-{email}"},
                        aggregate_version=2, metadata=meta),
            EventRecord(uid, "User", "UserLoggedIn", {"method": "password"},
                        aggregate_version=3, metadata=meta),
        ]

    async def example() -> Any:
        await event_store.append_events(f"User-{user_id}", events_of(user_id, "user@example.com"))
        await event_store.append_events(f"User-{other}", events_of(other, "other@example.com"))
        # --- the spec's example ---------------------------------------------------------
        # Initialize archiver with GDPR policy
        archiver = EventArchiver(event_store)

        gdpr_policy = ArchivalPolicy(
            policy_name="gdpr_compliance",
            strategy=ArchivalStrategy.GDPR_BASED,
            gdpr_retention_days=2555,  # 7 years
            anonymize_before_archive=True
        )

        archiver.register_policy(gdpr_policy)

        # Clean up user data for GDPR
        result = await archiver.cleanup_gdpr_data(user_id, anonymize=True)
        print(f"Anonymized {result.events_anonymized} events")
        # --- end of the example ---------------------------------------------------------
        return result, archiver

    try:
        result, archiver = run(example())
        assert archiver.sync.policies()["gdpr_compliance"].retention_days == 2555
    finally:
        unregister_policy("gdpr_compliance")  # policies are registered process-wide
    assert "Anonymized 2 events" in capsys.readouterr().out.splitlines()
    assert result.events_anonymized == 2
    forgotten = event_store.sync.read_stream(f"User-{user_id}")
    assert [e.event_type for e in forgotten] == ["UserCreated", "UserUpdated", "UserLoggedIn"]
    text = json.dumps([e.event_data for e in forgotten])
    assert "user@example.com" not in text and "John Doe" not in text
    assert forgotten[2].event_data == {"method": "password"}
    kept = event_store.sync.read_stream(f"User-{other}")
    assert kept[0].event_data == {"email": "other@example.com", "name": "John Doe"}
    assert event_store.sync.verify().ok
