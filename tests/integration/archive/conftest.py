"""Archive targets for the contract tests: a local folder and real emulators over HTTP.

The emulators run as real processes for the whole session, each on a free
port, started the first time a test needs them: moto server (S3) and
gcp-storage-emulator (GCS) from the virtualenv ``.venv-emulators``, Azurite
(Azure Blob) from ``.emulators/node_modules``; ``scripts/install-emulators.sh``
installs them, and EVSTORE_MOTO_SERVER / EVSTORE_GCS_EMULATOR /
EVSTORE_AZURITE point elsewhere. A missing emulator fails the run under
CI=true and skips (naming the script) elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
BUCKET = "evstore-archive"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
TARGETS = ["file", "s3", "gs", "az"]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


class Emulator:
    """One emulator process on a fixed port; stop() and start() again keep the port."""

    def __init__(self, name: str, env_var: str, default: Path, argv: Callable[[str, int], list[str]],
                 log_dir: Path) -> None:
        self.name = name
        self.binary = Path(os.environ.get(env_var) or default)
        self.env_var = env_var
        self.argv = argv
        self.port = free_port()
        self.log = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def require(self) -> None:
        if self.binary.exists():
            return
        message = (
            f"{self.name} emulator not found at {self.binary}: run scripts/install-emulators.sh "
            f"(or set {self.env_var})"
        )
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        self.require()
        if self.running:
            return
        env = {**os.environ, "PATH": f"{Path(self.binary).parent}:{os.environ.get('PATH', '')}"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv(str(self.binary), self.port), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, env=env, cwd=self.log.parent,
            )
        try:
            wait_for(lambda: port_open(self.port) or not self.running, f"{self.name} to listen")
        except TimeoutError:
            self.stop()
            raise
        if not self.running:
            raise RuntimeError(f"{self.name} exited at start; see {self.log}")

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None
        wait_for(lambda: not port_open(self.port), f"{self.name} to close its port", 20)


class Emulators:
    def __init__(self, log_dir: Path) -> None:
        venv = ROOT / ".venv-emulators" / "bin"
        azurite = ROOT / ".emulators" / "node_modules" / ".bin" / "azurite-blob"
        self.by_target = {
            "s3": Emulator("moto", "EVSTORE_MOTO_SERVER", venv / "moto_server",
                           lambda b, p: [b, "-H", "127.0.0.1", "-p", str(p)], log_dir),
            "gs": Emulator("gcp-storage-emulator", "EVSTORE_GCS_EMULATOR",
                           venv / "gcp-storage-emulator",
                           lambda b, p: [b, "start", "--host=127.0.0.1", f"--port={p}",
                                         "--in-memory"], log_dir),
            "az": Emulator("azurite", "EVSTORE_AZURITE", azurite,
                           lambda b, p: [b, "--blobHost", "127.0.0.1", "--blobPort", str(p),
                                         "--inMemoryPersistence", "--skipApiVersionCheck",
                                         "--loose", "--disableTelemetry"], log_dir),
        }

    def storage_options(self) -> dict[str, dict[str, Any]]:
        s3, gs, az = (self.by_target[k].port for k in ("s3", "gs", "az"))
        return {
            "s3": {"key": "testing", "secret": "testing", "endpoint_url": f"http://127.0.0.1:{s3}",
                   "client_kwargs": {"region_name": "eu-west-1"}},
            "gs": {"endpoint_url": f"http://127.0.0.1:{gs}", "token": "anon", "project": "test"},
            "az": {"connection_string": (
                "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                f"AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{az}/devstoreaccount1;")},
        }

    def ensure(self, kind: str) -> Emulator:
        emulator = self.by_target[kind]
        if not emulator.running:
            emulator.start()
            make_bucket(kind)
        return emulator

    def stop_all(self) -> None:
        for emulator in self.by_target.values():
            emulator.stop()


def make_bucket(kind: str) -> None:
    from evstore.core.archive.targets import ArchiveTarget

    target = ArchiveTarget(f"{kind}://{BUCKET}")
    deadline = time.monotonic() + 30
    while True:
        try:
            if not target.fs.exists(target.root):
                target.fs.mkdir(target.root)
            return
        except FileExistsError:
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.fixture(scope="session", autouse=True)
def allowed_targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Archive targets must be allowed by configuration: the tests' temporary
    folders and the emulators' bucket (worker processes inherit it)."""
    name = "EVSTORE_ARCHIVE_TARGETS"
    previous = os.environ.get(name)
    allowed = ",".join([str(tmp_path_factory.getbasetemp()),
                        *(f"{kind}://{BUCKET}" for kind in ("s3", "gs", "az"))])
    os.environ[name] = allowed
    try:
        yield allowed
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


@pytest.fixture(scope="session")
def emulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulators]:
    from evstore.core.config_file import STORAGE_ENV

    found = Emulators(tmp_path_factory.mktemp("emulator-logs"))
    previous = os.environ.get(STORAGE_ENV)
    os.environ[STORAGE_ENV] = json.dumps(found.storage_options())
    try:
        yield found
    finally:
        found.stop_all()
        if previous is None:
            os.environ.pop(STORAGE_ENV, None)
        else:
            os.environ[STORAGE_ENV] = previous


def target_url_for(kind: str, emulators: Emulators, tmp_path: Path) -> str:
    if kind == "file":
        return f"file://{tmp_path}/archive"
    emulators.ensure(kind)
    return f"{kind}://{BUCKET}/{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=TARGETS)
def target_url(request: pytest.FixtureRequest, emulators: Emulators, tmp_path: Path) -> str:
    """A fresh, empty archive folder on each target (file, s3, gs, az)."""
    return target_url_for(request.param, emulators, tmp_path)


@pytest.fixture
def file_target(tmp_path: Path) -> str:
    return f"file://{tmp_path}/archive"
