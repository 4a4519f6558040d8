"""The soak test's short version (benchmarks/soak.py): mixed load for 30 s, then nothing lost.

Appends from two writer processes, a consumer group of two member processes, a
replay and an archive run on a real worker pool, together; then the counts,
the global order, the group's deliveries, verify and both jobs are checked by
the soak run itself (exit 1 on any failure) and its figures are read here.
The longer runs and their figures: docs/operations.md, "Soak".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_short_soak_loses_nothing(database_url: str, redis_url: str, tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--seconds", "30", "--writers", "2", "--readers", "2",
         "--interval", "5", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    result = json.loads(out.read_text())
    checks = result["checks"]
    assert result["ok"] and checks["counts_match"] and checks["global_order_ok"]
    assert checks["group_every_event"] and checks["verify_ok"]
    assert checks["replay_job"] == "succeeded" and checks["archive_job"] == "succeeded"
    assert result["acknowledged_events"] > 100
    assert len(result["samples"]) >= 5
    assert any(s["p99_ms"] > 0 for s in result["samples"])
    assert all(s["rss_mb"]["writer0"] > 0 for s in result["samples"])
