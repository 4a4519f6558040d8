"""The one way the acceptance tests run the `evstore` command: a real subprocess.

``evstore(args, env)`` runs it to the end and returns the CompletedProcess
(text stdout and stderr); ``start_evstore(args, env)`` starts a long-running
one (``worker``, ``scheduler``) and returns the Popen. Both run
``python -m evstore.cli`` of this interpreter from the repository root (so
handler and aggregate modules of tests/ import; ``cwd`` runs it elsewhere),
200 columns wide so tables do not wrap.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EVSTORE = [sys.executable, "-m", "evstore.cli"]


def _env(env: dict[str, str]) -> dict[str, str]:
    return {**env, "COLUMNS": "200"}


def evstore(
    args: list[str], env: dict[str, str], stdin: str | None = None, timeout: float = 180,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EVSTORE, *args], env=_env(env), cwd=cwd or ROOT, input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def start_evstore(args: list[str], env: dict[str, str], **popen: Any) -> subprocess.Popen[Any]:
    return subprocess.Popen([*EVSTORE, *args], env=_env(env), cwd=ROOT, **popen)
