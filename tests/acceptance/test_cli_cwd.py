"""A file lying in the folder where the command runs is never imported as code."""

from __future__ import annotations

from pathlib import Path

from .helpers import evstore


def test_snapshots_build_does_not_import_from_the_current_folder(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Given a folder holding a module that leaves a marker when imported
    marker = tmp_path / "marker"
    (tmp_path / "planted.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\nclass Thing:\n    aggregate_type = 'T'\n")
    # When the command is run there, naming that module
    out = evstore(["snapshots", "build", "planted:Thing", "--in-process"], env, cwd=tmp_path)
    # Then it was not imported: a clear error, no marker
    assert out.returncode == 2, out.stdout + out.stderr
    assert "planted" in out.stderr and "Traceback" not in out.stderr
    assert not marker.exists()
