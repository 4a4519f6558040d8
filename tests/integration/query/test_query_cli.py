"""`evstore query` end to end: criteria options, --where, --json, search, explain, anomalies, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

from evstore.core.store.persistence import EventMetadata, EventRecord


def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "evstore.cli", "query", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_query_command(store: Any, pg_url: str) -> None:
    at = datetime(2026, 2, 10, tzinfo=UTC)
    for i, (email, source) in enumerate([("ada@example.com", "web"), ("ada@example.com", "import"),
                                         ("bob@example.com", "web")]):
        store.append_events(f"User-{i}", [EventRecord(
            aggregate_id=str(i), aggregate_type="User", event_type="EmailChanged",
            event_data={"email": email}, metadata=EventMetadata(user_id=f"u{i}", source=source),
            created_at=at)])
    out = run(pg_url, "--type", "EmailChanged", "--from", "2026-02-01", "--to", "2026-03-01", "--json",
              "--where", 'data.email == "ada@example.com" and not metadata.source == "import"')
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert [e["aggregate_id"] for e in doc["events"]] == ["0"]
    assert doc["metrics"]["partitions_scanned"] == ["events_y2026m02"]
    table = run(pg_url, "--user", "u2")
    assert table.returncode == 0 and "bob@example.com" in table.stdout and "month partition" in table.stdout
    bad = run(pg_url, "--where", '__import__("os").system("touch /tmp/owned")')
    assert bad.returncode == 2 and "not allowed" in bad.stderr and "Traceback" not in bad.stderr
    assert run(pg_url, "--where", "body.x == 1").returncode == 2
    typo = run(pg_url, "--type", "UserRegistred")
    assert typo.returncode == 2 and "unknown event type(s): UserRegistred" in typo.stderr
    found = run(pg_url, "search", "bob@example.com", "--json")  # an address is one token
    assert found.returncode == 0 and [e["aggregate_id"] for e in json.loads(found.stdout)] == ["2"]
    plan = run(pg_url, "explain", "--where", 'metadata.source == "web"')
    assert plan.returncode == 0 and "CREATE INDEX" in plan.stdout
    quiet = run(pg_url, "anomalies", "--window", "1d", "--bucket", "1h", "--json")
    assert quiet.returncode == 0 and json.loads(quiet.stdout) == []
    assert run(pg_url, "anomalies", "--bucket", "5 parsecs").returncode == 2
