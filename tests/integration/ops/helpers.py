"""Real processes and real HTTP for the operations tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[3]
EVSTORE = [sys.executable, "-m", "evstore.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str, timeout: float = 10.0) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=timeout)


def wait_http(port: int, path: str, status: int | None = 200, deadline: float = 60.0,
              proc: subprocess.Popen[bytes] | None = None) -> httpx.Response:
    """Poll until ``path`` answers (with ``status`` when given); fail when the process died."""
    end = time.monotonic() + deadline
    last: Any = None
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            log = getattr(proc, "log_path", None)
            out = Path(log).read_text(errors="replace") if log else ""
            raise AssertionError(f"the process exited with {proc.returncode} before {path} "
                                 f"answered:\n{out[-3000:]}")
        try:
            r = get(port, path, timeout=5)
            last = r
            if status is None or r.status_code == status:
                return r
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{path} on port {port} never answered {status}: last {last!r}"
                         + (f" {last.text}" if isinstance(last, httpx.Response) else ""))


@contextmanager
def process(args: list[str], env: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process (own session, output to ``log``) stopped with SIGTERM, then SIGKILL."""
    out = open(log, "ab")
    proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                            cwd=ROOT, start_new_session=True)
    proc.log_path = log  # type: ignore[attr-defined]
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        out.close()


def metric_value(text: str, name: str, labels: Mapping[str, str] | None = None) -> float | None:
    """The value of one sample of the Prometheus text (None when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                return float(sample.value)
    return None
