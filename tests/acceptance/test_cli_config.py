"""evstore.toml: named by --config or EVSTORE_CONFIG (or kept in $EVSTORE_HOME),
never picked up from the current folder; the demo reads no configuration at all."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .helpers import evstore

POLICIES = """
[archive.policies.good]
strategy = "time_based"
retention_days = 30
target = "file:///tmp/evstore-test-good"

[archive.policies.broken]   # no retention_days
strategy = "time_based"
target = "file:///tmp/evstore-test-broken"
"""


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A folder holding a stray, unparseable evstore.toml."""
    (tmp_path / "evstore.toml").write_text("this is [not TOML\n")
    return tmp_path


def test_a_stray_file_in_the_current_folder_is_ignored(env: dict[str, str], elsewhere: Path) -> None:
    e = {k: v for k, v in env.items() if k != "EVSTORE_CONFIG"}
    e["EVSTORE_HOME"] = str(elsewhere / "home")
    out = evstore(["archive", "policies", "--json"], e, cwd=elsewhere)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_config_option_and_evstore_home_name_the_file(env: dict[str, str], tmp_path: Path) -> None:
    named = tmp_path / "ops.toml"
    named.write_text(POLICIES.replace("[archive.policies.broken]", "[archive.policies.other]")
                     .replace("# no retention_days", "\nretention_days = 1"))
    e = {k: v for k, v in env.items() if k != "EVSTORE_CONFIG"}
    e["EVSTORE_HOME"] = str(tmp_path / "home")
    out = evstore(["--config", str(named), "archive", "policies", "--json"], e)
    assert out.returncode == 0, out.stderr
    assert sorted(p["name"] for p in json.loads(out.stdout)) == ["good", "other"]
    (tmp_path / "home").mkdir()
    named.rename(tmp_path / "home" / "evstore.toml")
    out = evstore(["archive", "policies", "--json"], e)
    assert sorted(p["name"] for p in json.loads(out.stdout)) == ["good", "other"]
    missing = evstore(["--config", str(tmp_path / "nothing.toml"), "archive", "policies"], e)
    assert missing.returncode == 2 and "nothing.toml" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.slow
def test_the_demo_runs_whatever_the_configuration_file_holds(database_url: str, tmp_path: Path) -> None:
    # Given a configuration file with a broken policy, and a stray file where the demo runs
    config = tmp_path / "evstore.toml"
    config.write_text(POLICIES)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)}
    env.update(DATABASE_URL=database_url, EVSTORE_CONFIG=str(config),
               EVSTORE_HOME=str(tmp_path / "home"))
    # When the demo runs (with its archive step)
    out = evstore(["demo", "--users", "60", "--seed", "3", "--power-users", "1",
                   "--power-logins", "50", "--no-replay"], env, timeout=300, cwd=tmp_path)
    # Then it succeeds: it never reads the operator's policies
    assert out.returncode == 0, out.stdout + out.stderr
    assert "archived" in out.stdout
