# ruff: noqa: E501  (PromQL expressions are kept on one line each)
"""Generates evstore-dashboard.json:

    python3 deploy/grafana/make_dashboard.py > deploy/grafana/evstore-dashboard.json

Every expression uses the metrics contract of docs/operations.md; tests/integration/ops/test_deploy.py
checks that each metric named here is one evstore exposes."""

from __future__ import annotations

import json

panels = []


def panel(title, exprs, unit="short", kind="timeseries", w=12, h=8, desc=""):
    n = len(panels)
    panels.append({
        "id": n + 1, "type": kind, "title": title, "description": desc,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": (n % 2) * 12 if w == 12 else 0, "y": (n // 2) * h, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [{"refId": chr(65 + i), "expr": e, "legendFormat": legend}
                    for i, (e, legend) in enumerate(exprs)],
    })
panel("Append latency (p50, p99)", [
    ('histogram_quantile(0.5, sum by (le) (rate(evstore_append_seconds_bucket{outcome="ok"}[5m])))', "p50"),
    ('histogram_quantile(0.99, sum by (le) (rate(evstore_append_seconds_bucket{outcome="ok"}[5m])))', "p99")],
    "s", desc="evstore_append_seconds: one append_events transaction")
panel("Appends and conflicts per second", [
    ("sum(rate(evstore_appended_events_total[5m]))", "events/s"),
    ("sum(rate(evstore_append_conflicts_total[5m]))", "conflicts/s")])
panel("Global-order horizon", [
    ("max(evstore_horizon_oldest_append_seconds)", "oldest appending transaction (s)"),
    ("max(evstore_horizon_transactions_behind)", "transactions in flight")],
    desc="A growing age means a wedged writer holds every reader back")
panel("Consumer lag (events)", [("max by (checkpoint, group) (evstore_consumer_lag_events)", "{{checkpoint}} / {{group}}")])
panel("Consumer lag (seconds)", [("max by (checkpoint, group) (evstore_consumer_lag_seconds)", "{{checkpoint}} / {{group}}")], "s")
panel("Read replica lag", [
    ("max(evstore_replica_lag_bytes)", "WAL bytes behind"),
    ("max(evstore_replica_replay_age_seconds)", "since last replay (s)")], "bytes")
panel("Job batches by state", [("max by (kind, status) (evstore_job_batches)", "{{kind}} {{status}}")])
panel("Mean batch duration by kind", [
    ('max by (kind) (evstore_job_batch_duration_seconds_sum{status="succeeded"}) / max by (kind) (evstore_job_batch_duration_seconds_count{status="succeeded"})', "{{kind}}")], "s")
panel("Queue depth and worker saturation", [
    ("sum by (kind) (max without (instance, pod) (evstore_job_queue_depth))", "waiting {{kind}}"),
    ("sum(max without (instance, pod) (evstore_job_batches_running)) / sum(evstore_worker_threads)", "busy threads / threads")])
panel("Failed batches (15 min)", [("max by (kind) (delta(evstore_job_batches{status=\"failed\"}[15m]))", "{{kind}}")])
panel("Archive runs", [("max by (status) (evstore_archive_runs)", "{{status}}"),
                       ("max(evstore_archive_bytes_total{form=\"stored\"})", "stored bytes")])
panel("Month partitions", [("max by (when) (evstore_partitions)", "{{when}}"),
                           ("max(evstore_partitions_ahead)", "ahead")])
panel("Partition bytes", [("max by (when) (evstore_partition_bytes)", "{{when}}")], "bytes")
panel("Query latency and cache hit rate", [
    ('histogram_quantile(0.99, sum by (le, kind) (rate(evstore_query_seconds_bucket[5m])))', "p99 {{kind}}"),
    ('sum(rate(evstore_query_cache_lookups_total{result="hit"}[5m])) / sum(rate(evstore_query_cache_lookups_total[5m]))', "cache hit rate")], "s")
panel("Process memory", [("process_resident_memory_bytes{job=~\"evstore.*\"}", "{{instance}} {{role}}")], "bytes")
panel("Database pool connections", [("sum by (instance, pool, state) (evstore_db_pool_connections)", "{{instance}} {{pool}} {{state}}")])
dash = {
    "uid": "evstore-ops", "title": "evstore: operations", "tags": ["evstore"], "timezone": "utc",
    "schemaVersion": 39, "version": 1, "refresh": "30s", "editable": True,
    "time": {"from": "now-6h", "to": "now"},
    "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                             "label": "Prometheus", "current": {}}]},
    "annotations": {"list": []},
    "panels": panels,
}
print(json.dumps(dash, indent=2))
