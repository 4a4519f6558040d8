"""Fixtures of the console's browser tests: a real `evstore serve` process, real worker
processes (the job tests' fixtures), and headless Chromium driven through Selenium and
Debian's chromedriver (installed by .ci/run)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.workers.conftest import (  # noqa: F401  (fixtures used by these tests)
    ROOT,
    broker,
    job_env,
    jobs_store,
    pytest_runtest_makereport,
    service,
    start_workers,
)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PASSWORD = "correct horse battery staple"
# The screenshots of docs/console.md are refreshed only when asked
# (EVSTORE_CONSOLE_SCREENSHOTS=1); an ordinary run writes them to a scratch folder,
# so running the suite never modifies the repository.
SHOTS = (
    ROOT / "docs" / "console"
    if os.environ.get("EVSTORE_CONSOLE_SCREENSHOTS") == "1"
    else Path(os.environ.get("TMPDIR", "/tmp")) / f"evstore-console-shots-{os.getpid()}"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def console_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The configuration file of the test and its `evstore serve`: a personal field declared
    (ProfileUpdated's data.email) and an archive policy to a local folder."""
    config = tmp_path / "evstore.toml"
    config.write_text(f"""
[privacy.ProfileUpdated]
fields = ["data.email"]
subject = "aggregate_id"

[archive.policies.old-months]
strategy = "time_based"
retention_days = 0
target = "file://{tmp_path}/archive"
segment_size = 7
schedule = "cron: 0 3 * * *"
""")
    monkeypatch.setenv("EVSTORE_CONFIG", str(config))
    return config


@pytest.fixture
def console_url(job_env: dict[str, str], console_config: Path, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    """`evstore serve` (O's command: /livez and the console at /) on this test's database."""
    env = {**job_env, "EVSTORE_CONSOLE_PASSWORD": PASSWORD, "EVSTORE_CONFIG": str(console_config)}
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "evstore.cli", "serve", "--port", str(port)],
                            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/livez", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError("evstore serve did not start:\n" + (tmp_path / "serve.log").read_text())
        time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:  # pragma: no cover
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def _driver() -> Iterator[Any]:
    if not (os.access(CHROMIUM, os.X_OK) and shutil.which(CHROMEDRIVER)):
        why = (f"{CHROMIUM} and {CHROMEDRIVER} are needed: apt-get install chromium chromium-driver "
               "(./run test installs them when run as root)")
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def browser(_driver: Any) -> Iterator[Any]:
    """The session's Chromium with no cookies (a new, anonymous visitor)."""
    _driver.delete_all_cookies()
    yield _driver
    _driver.delete_all_cookies()


def screenshot(driver: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
