"""deploy/: alert rules (promtool), the Grafana dashboard, the Kubernetes files.

What this machine can check without Docker or Kubernetes: promtool's syntax
check and unit tests of the rules (when promtool is installed: Debian's
``prometheus`` package), that every metric the rules and the dashboard use is
in the metrics contract, and that the k8s manifests parse, probe /livez and
/readyz on a port they open, and run evstore commands whose options evstore
accepts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
METRIC = re.compile(r"\b(evstore_[a-z0-9_]+)")
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def _contract() -> set[str]:
    text = (ROOT / "docs" / "operations.md").read_text()
    return {m for m in METRIC.findall(text)}


def _base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _used(text: str) -> set[str]:
    return {_base(m) for m in METRIC.findall(text)}


def test_alert_rules_and_dashboard_use_only_contract_metrics() -> None:
    contract = {_base(m) for m in _contract()}
    rules = yaml.safe_load((DEPLOY / "prometheus" / "evstore-alerts.yml").read_text())
    exprs = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    dashboard = json.loads((DEPLOY / "grafana" / "evstore-dashboard.json").read_text())
    panel_exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for where, used in (("alert rules", _used(exprs)), ("dashboard", _used(panel_exprs))):
        unknown = used - contract
        assert not unknown, f"the {where} use metrics not in docs/operations.md: {sorted(unknown)}"
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert {"EvstoreHorizonStalled", "EvstoreConsumerLagGrowing", "EvstoreBatchesFailing",
            "EvstorePartitionsNotAhead", "EvstoreArchiveFailing", "EvstoreForgetFailing",
            "EvstoreAppendP99Rising"} <= names
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        why = "promtool is not installed (apt-get install prometheus; ./run test installs it as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    folder = DEPLOY / "prometheus"
    for args in (["check", "rules", "evstore-alerts.yml"], ["test", "rules", "evstore-alerts.test.yml"],
                 ["check", "config", "prometheus.yml"]):
        done = subprocess.run([promtool, *args], cwd=folder, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


def _k8s_docs() -> list[dict]:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((DEPLOY / "k8s" / name).read_text()) if d]
    return docs


def _check_args(args: list[str]) -> None:
    """Parse the container's evstore command line as evstore would, without running it."""
    import typer

    from evstore.cli.app import app

    group = typer.main.get_command(app)
    ctx = group.make_context("evstore", list(args), resilient_parsing=False)
    command = group.get_command(ctx, args[0])  # type: ignore[attr-defined]
    assert command is not None, f"evstore has no command {args[0]!r}"
    command.make_context(args[0], list(args[1:]))


def test_k8s_manifests_probe_the_endpoints_and_run_valid_commands() -> None:
    docs = _k8s_docs()
    kinds = [d["kind"] for d in docs]
    assert kinds.count("Deployment") == 3 and "Job" in kinds and "HorizontalPodAutoscaler" in kinds
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    for doc in docs:
        assert doc["apiVersion"] and doc["metadata"]["name"]
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        spec = doc["spec"]["template"]["spec"]
        volumes = {v["name"] for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            _check_args(container["args"])
            assert {m["name"] for m in container.get("volumeMounts", [])} <= volumes
            if doc["kind"] == "Job":
                assert container["args"] == ["init"]
                continue
            assert doc["spec"]["selector"]["matchLabels"].items() <= \
                doc["spec"]["template"]["metadata"]["labels"].items()
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            # the port the process serves: its --port flag, else EVSTORE_HTTP_PORT of the ConfigMap
            args = container["args"]
            served = int(args[args.index("--port") + 1]) if "--port" in args else int(
                config["EVSTORE_HTTP_PORT"])
            assert ports["http"] == served
            assert str(served) == doc["spec"]["template"]["metadata"]["annotations"][
                "prometheus.io/port"]
            assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
            assert container["startupProbe"]["httpGet"]["path"] == "/livez"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "evstore-worker"
    assert hpa["spec"]["metrics"][0]["external"]["metric"]["name"] in _contract()
    assert config["EVSTORE_HTTP_HOST"] == "0.0.0.0"
