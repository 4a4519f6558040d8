"""Store metrics in the Prometheus text format, from a collector registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from .postgres import PostgreSQLEventStore


def render_store_metrics(
    store: PostgreSQLEventStore, registry: CollectorRegistry | None = None, exact: bool = False
) -> str:
    """Gauges of the store's size and compression, as Prometheus exposition text.

    From the catalog's estimates (no scan of the events: a scrape costs the
    same at any size); the payload byte totals and compression ratio only
    appear when counted (``exact``).
    """
    registry = registry or CollectorRegistry()
    m = store.metrics(exact=exact)
    labels = ["schema"]
    schema = store.schema
    Gauge("evstore_events", "Events stored", labels, registry=registry).labels(schema).set(m.events)
    Gauge("evstore_streams", "Streams", labels, registry=registry).labels(schema).set(m.streams)
    for name, text, value in (
        ("evstore_partitions", "Monthly partitions", m.partitions),
        ("evstore_bytes", "Bytes on disk (events table)", m.total_bytes),
    ):
        Gauge(name, text, labels, registry=registry).labels(schema).set(value)
    if m.original_payload_bytes is not None and m.stored_payload_bytes is not None:
        payload = Gauge("evstore_payload_bytes", "Payload bytes", [*labels, "form"], registry=registry)
        payload.labels(schema, "original").set(m.original_payload_bytes)
        payload.labels(schema, "stored").set(m.stored_payload_bytes)
        Gauge("evstore_compression_ratio", "Original over stored payload bytes", labels,
              registry=registry).labels(schema).set(m.compression_ratio)
    by_type = Gauge("evstore_events_by_type", "Events by type (estimated unless exact)",
                    [*labels, "event_type"], registry=registry)
    for name, count in m.events_by_type.items():
        by_type.labels(schema, name).set(count)
    return generate_latest(registry).decode()
