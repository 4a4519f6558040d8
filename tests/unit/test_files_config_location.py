"""Where evstore.toml comes from: EVSTORE_CONFIG, or $EVSTORE_HOME — never the current folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from evstore.core.config_file import config_path, config_source, load_config, policy_table

BROKEN = """
[archive.policies.good]
strategy = "time_based"
retention_days = 30
target = "file:///tmp/good"

[archive.policies.broken]
strategy = "time_based"
target = "file:///tmp/broken"
"""


@pytest.fixture
def elsewhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A current folder holding a stray evstore.toml, and an empty EVSTORE_HOME."""
    monkeypatch.delenv("EVSTORE_CONFIG", raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "evstore.toml").write_text('[schedules.stray]\ntask = "partitions"\n')
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("EVSTORE_HOME", str(tmp_path / "home"))
    return tmp_path


def test_a_stray_file_in_the_current_folder_is_not_read(elsewhere: Path) -> None:
    assert config_path() is None and load_config() == {}
    assert config_source() == "no configuration file"


def test_the_file_under_evstore_home_is_read(elsewhere: Path) -> None:
    (elsewhere / "home").mkdir()
    (elsewhere / "home" / "evstore.toml").write_text(BROKEN)
    assert config_path() == elsewhere / "home" / "evstore.toml"
    assert set(load_config()["archive"]["policies"]) == {"good", "broken"}


def test_evstore_config_names_the_file(elsewhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    named = elsewhere / "ops.toml"
    named.write_text(BROKEN)
    monkeypatch.setenv("EVSTORE_CONFIG", str(named))
    assert config_path() == named and config_source() == str(named)
    # one policy is read alone: the broken one does not stop the good one
    assert policy_table("good") == {"strategy": "time_based", "retention_days": 30,
                                    "target": "file:///tmp/good"}
    assert policy_table("missing") is None
