"""Workers run only code their operator configured (issue 17, finding 1).

A row in ``jobs`` (written by whoever holds a database credential, and sent
to Redis) only *names* a job kind, replay handlers or an aggregate class. A
worker looks the name up in what its own configuration registered
(EVSTORE_HANDLER_MODULES, EVSTORE_AGGREGATE_CLASSES, evstore's built-in kinds);
an unknown name fails the batch with an error naming it, and nothing is
imported: the marker modules below write a file when imported, and are
importable by the worker twice over (its current folder and its PYTHONPATH).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from evstore.core.errors import InvalidJobError
from evstore.core.jobs.model import BatchPlan
from evstore.core.snapshots.policy import SnapshotConfig, SnapshotStrategy
from evstore.workers.pool import WorkerPool

from tests.integration.snapshots.domain import deposits

from .conftest import ROOT, seed

pytestmark = pytest.mark.slow

MARKER_MODULE = '''
import pathlib
pathlib.Path({path!r}).write_text("imported")

class Agg:
    aggregate_type = "User"
'''


@pytest.fixture
def planted(tmp_path: Path) -> dict[str, Any]:
    """Two folders, each with a module that leaves a marker file when imported."""
    cwd, extra = tmp_path / "cwd", tmp_path / "pythonpath"
    markers = {}
    for folder, name in ((cwd, "evil_in_cwd"), (extra, "evil_on_path")):
        folder.mkdir()
        markers[name] = tmp_path / f"{name}.imported"
        (folder / f"{name}.py").write_text(MARKER_MODULE.format(path=str(markers[name])))
    return {"cwd": cwd, "pythonpath": extra, "markers": markers, "log": tmp_path / "workers.log"}


def _workers(job_env: dict[str, str], planted: dict[str, Any], **env: str) -> WorkerPool:
    path = os.pathsep.join([str(ROOT), str(planted["pythonpath"])])
    return WorkerPool(job_env["DATABASE_URL"], job_env["REDIS_URL"], processes=1, threads=2,
                      env={"PYTHONPATH": path, **env}, log_path=planted["log"],
                      cwd=planted["cwd"])


def _insert_and_send(engine: Any, kind: str, params: dict[str, Any], batch: dict[str, Any]) -> int:
    """What an attacker with the database and Redis can do: a jobs row, its message."""
    job_id = engine.repo.create(kind, params, [BatchPlan(batch, 1, "planted")], "attacker")
    engine.repo.queue(job_id, ["pending"], engine._send)
    return int(job_id)


def test_a_job_row_naming_a_module_or_class_imports_nothing(
    job_env: dict[str, str], jobs_store: Any, broker: Any, planted: dict[str, Any],
) -> None:
    from evstore.workers.engine import JobEngine

    seed(jobs_store, 2, 2)
    engine = JobEngine(jobs_store, broker)
    # Given rows naming modules the worker could import (its folder, its PYTHONPATH)
    jobs = {
        "kind": _insert_and_send(engine, "zen", {"_kind_module": "evil_in_cwd"}, {}),
        "kind2": _insert_and_send(engine, "zen2", {"_kind_module": "evil_on_path"}, {}),
        "handler": _insert_and_send(engine, "replay", {
            "handlers": ["ghost"], "handler_modules": ["evil_in_cwd", "evil_on_path"],
            "snapshot": None}, {"streams": ["User-0"]}),
        "class": _insert_and_send(engine, "snapshot_build", {
            "aggregate_class": "evil_on_path:Agg", "config": {}}, {"first": "0", "last": "9",
                                                                   "count": 1}),
        "popen": _insert_and_send(engine, "snapshot_build", {
            "aggregate_class": "subprocess:Popen", "config": {}}, {"first": "0", "last": "9",
                                                                   "count": 1}),
    }
    # When a worker runs them
    with _workers(job_env, planted):
        finished = {name: engine.wait(job_id, timeout=90) for name, job_id in jobs.items()}
    log = planted["log"].read_text()
    # Then every batch failed, naming what is not configured, and nothing was imported
    assert {name: job.status for name, job in finished.items()} == dict.fromkeys(jobs, "failed"), log
    errors = {name: engine.repo.batches(job_id)[0].last_error for name, job_id in jobs.items()}
    assert "unknown job kind 'zen'" in errors["kind"]
    assert "unknown job kind 'zen2'" in errors["kind2"]
    assert "unknown replay handler(s): ghost" in errors["handler"]
    assert "aggregate class 'evil_on_path:Agg' is not configured" in errors["class"]
    assert "aggregate class 'subprocess:Popen' is not configured" in errors["popen"]
    assert [m for m in planted["markers"].values() if m.exists()] == [], log


def test_a_producer_refuses_unknown_names_before_creating_anything(
    job_env: dict[str, str], jobs_store: Any, broker: Any, planted: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from evstore.workers.engine import JobEngine
    from evstore.workers.snapshot_jobs import start_snapshot_build

    monkeypatch.chdir(planted["cwd"])
    monkeypatch.syspath_prepend(str(planted["pythonpath"]))
    engine = JobEngine(jobs_store, broker)
    with pytest.raises(InvalidJobError, match="unknown job kind 'evil_on_path'"):
        engine.start("evil_on_path", {})
    for path in ("subprocess:Popen", "evil_on_path:Agg", "evil_in_cwd:Agg"):
        with pytest.raises(InvalidJobError, match=f"aggregate class '{path}' is not configured"):
            start_snapshot_build(engine, path)
    assert engine.list_jobs() == []
    assert [m for m in planted["markers"].values() if m.exists()] == []


def test_configured_aggregate_classes_and_handlers_still_run(
    job_env: dict[str, str], jobs_store: Any, broker: Any, service: Any, planted: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from evstore.workers.engine import JobEngine
    from evstore.workers.replay import ReplayConfig
    from evstore.workers.snapshot_jobs import start_snapshot_build

    account = "tests.integration.snapshots.domain:Account"
    monkeypatch.setenv("EVSTORE_AGGREGATE_CLASSES", account)
    for i in range(3):
        deposits(jobs_store, f"acct-{i}", 12)
    engine = JobEngine(jobs_store, broker)
    config = SnapshotConfig(SnapshotStrategy.EVENT_COUNT, every_n_events=10, min_events=1)
    snapshot_job = start_snapshot_build(engine, account, config, batch_size=2)
    replay_job = service.start(ReplayConfig(handler_names=["record"]))
    with _workers(job_env, planted, EVSTORE_AGGREGATE_CLASSES=account):
        assert engine.wait(snapshot_job, timeout=90).status == "succeeded", \
            planted["log"].read_text()
        assert engine.wait(replay_job, timeout=90).status == "succeeded"
    assert engine.get(snapshot_job).items_done == 3


def test_configured_modules_are_never_imported_from_the_current_folder(
    planted: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    from evstore.core.errors import ConfigurationError
    from evstore.workers.registry import load_configured

    # Given a module only in the current folder, which is on sys.path (as `dramatiq --path .` does)
    monkeypatch.chdir(planted["cwd"])
    monkeypatch.syspath_prepend(str(planted["cwd"]))
    monkeypatch.syspath_prepend("")
    # Then naming it as a handler module does not import it
    with pytest.raises(ConfigurationError, match="cannot import replay handler module 'evil_in_cwd'"):
        load_configured(extra=["evil_in_cwd"])
    assert not planted["markers"]["evil_in_cwd"].exists()
    # unless the operator named the folder in PYTHONPATH
    monkeypatch.setenv("PYTHONPATH", str(planted["cwd"]))
    assert load_configured(extra=["evil_in_cwd"]) == ["evil_in_cwd"]
    assert planted["markers"]["evil_in_cwd"].exists()


@pytest.mark.parametrize("variable, value", [
    ("EVSTORE_HANDLER_MODULES", "myapp.handlers, ../etc/x"),
    ("EVSTORE_HANDLER_MODULES", "myapp handlers"),
    ("EVSTORE_AGGREGATE_CLASSES", "myapp.domain.User"),
    ("EVSTORE_AGGREGATE_CLASSES", "myapp.domain:User:x"),
])
def test_bad_configured_names_are_refused(variable: str, value: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from evstore.core.errors import ConfigurationError
    from evstore.workers.settings import load_job_settings

    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable):
        load_job_settings()
