"""The command makes EVSTORE_HOME, redis/ and the key file its user's alone."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .helpers import evstore


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_embedded_redis_and_keys_are_private(env: dict[str, str], tmp_path: Path) -> None:
    home = tmp_path / "home"
    e = {k: v for k, v in env.items() if k not in ("REDIS_URL", "EVSTORE_SECRET_KEY")}
    e["EVSTORE_HOME"] = str(home)
    # When commands run on the embedded Redis and the default secret
    out = evstore(["jobs", "requeue", "999999"], e)
    assert "using the embedded Redis" in out.stderr, out.stderr
    assert evstore(["keys", "show"], e).returncode == 0
    # Then every folder they made is 0700 and every file 0600
    paths = [home, *home.rglob("*")]
    assert home / "redis" in paths and home / "secret.key" in paths
    assert any(p.parent == home / "redis" and p.is_file() for p in paths)  # the saved data
    for path in paths:
        assert mode(path) == (0o700 if path.is_dir() else 0o600), (path, oct(mode(path)))
