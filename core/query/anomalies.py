"""Anomalies in event rates: each bucket's count against a robust, seasonal baseline.

Counts are per bucket (``bucket``, e.g. 5 minutes) and per key (``by``: the
event type, the aggregate, or ``metadata.<field>`` — e.g. the user — with the
event type). A bucket's baseline is the median of the same key's counts at the
same time of day on the other days of the window (and the ``spread`` buckets
either side of it). The score is taken on the square-root scale, where a
steady (Poisson) rate has a spread of 0.5 whatever its size:
``(sqrt(count) - median(sqrt(peers)))`` over ``max(1.4826 * MAD(sqrt(peers)), 0.5)``.
A burst is a score above ``threshold`` with at
least ``min_count`` events; a drop is a score below ``-threshold`` from a
baseline of at least ``min_baseline``. The same bucket a week earlier is shown
beside it when the window holds it.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import QueryError

DAY = timedelta(days=1)
WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Anomaly:
    key: str
    bucket_start: datetime
    count: int
    baseline: float
    scale: float
    score: float
    kind: str  # "burst" or "drop"
    last_week: int | None
    bucket: timedelta

    @property
    def explanation(self) -> str:
        minutes = int(self.bucket.total_seconds() // 60)
        text = (f"{self.key}: {self.count} in {minutes} min at {self.bucket_start:%Y-%m-%d %H:%M}, "
                f"baseline {self.baseline:g} (score {self.score:+.1f}, {self.kind})")
        if self.last_week is not None:
            text += f"; same time last week {self.last_week}"
        return text


def score_counts(counts: Mapping[tuple[datetime, str], int], start: datetime, end: datetime,
                 bucket: timedelta, *, threshold: float = 5.0, min_count: int = 10,
                 min_baseline: float = 8.0, spread: int = 1) -> list[Anomaly]:
    """Anomalies of counts[(bucket start, key)] over [start, end) (missing buckets count 0)."""
    n = int((end - start) / bucket)
    per_day = int(DAY / bucket) if DAY >= bucket and DAY % bucket == timedelta(0) else 0
    series: dict[str, list[int]] = defaultdict(lambda: [0] * n)
    for (at, key), count in counts.items():
        i = int((at - start) / bucket)
        if 0 <= i < n:
            series[key][i] = count
    week = int(WEEK / bucket)
    found: list[Anomaly] = []
    for key, values in series.items():
        for i, count in enumerate(values):
            peers = _peers(values, i, per_day, spread)
            if len(peers) < 3:
                continue
            median = statistics.median(peers)
            # On the square-root scale counts of a steady rate spread evenly
            # (Poisson: sd 0.5 there), so one threshold suits busy and quiet keys.
            roots = [math.sqrt(v) for v in peers]
            centre = statistics.median(roots)
            mad = statistics.median(abs(r - centre) for r in roots)
            scale = max(1.4826 * mad, 0.5)
            score = (math.sqrt(count) - centre) / scale
            if score >= threshold and count >= min_count:
                kind = "burst"
            elif score <= -threshold and median >= min_baseline:
                kind = "drop"
            else:
                continue
            last = values[i - week] if i - week >= 0 else None
            found.append(Anomaly(key, start + i * bucket, count, float(median), scale, score,
                                 kind, last, bucket))
    found.sort(key=lambda a: (a.bucket_start, -abs(a.score)))
    return found


def _peers(values: list[int], i: int, per_day: int, spread: int) -> list[int]:
    """The counts at the same time of day on the other days (±spread buckets)."""
    if not per_day:  # buckets that do not divide a day: the whole series
        return values[:i] + values[i + 1:]
    out = []
    for day_start in range(i % per_day, len(values), per_day):
        if day_start == i:
            continue
        for j in range(day_start - spread, day_start + spread + 1):
            if 0 <= j < len(values):
                out.append(values[j])
    return out


def detect_anomalies(service: Any, window: timedelta = WEEK, bucket: timedelta = timedelta(minutes=5),
                     by: str = "event_type", now: datetime | None = None,
                     registry: Any = None, **options: Any) -> list[Anomaly]:
    """Anomalies of the last ``window`` (see the module docstring); gauges into ``registry``."""
    if bucket <= timedelta(0) or window < 2 * bucket:
        raise QueryError("bucket must be positive and the window at least two buckets")
    field = None
    if by.startswith("metadata."):
        field = by.partition(".")[2]
        if not field:
            raise QueryError("by=metadata.<field> needs a field name")
        by_kind = "field"
    elif by in ("event_type", "aggregate"):
        by_kind = by
    else:
        raise QueryError(f"by must be event_type, aggregate or metadata.<field> (got {by!r})")
    seconds = int(bucket.total_seconds())
    end = (now or datetime.now(UTC))
    end = datetime.fromtimestamp(math.floor(end.timestamp() / seconds) * seconds, UTC)
    start = end - window
    db = service.db
    with db.connection() as conn:
        rows = conn.execute(db.sql("query", "rate_buckets"),
                            {"bucket": seconds, "by": by_kind, "field": field,
                             "from": start, "to": end}).fetchall()
    counts = {(at, key): int(count) for at, key, count in rows}
    found = score_counts(counts, start, end, bucket, **options)
    if registry is not None:
        export_gauges(found, registry)
    return found


def export_gauges(found: list[Anomaly], registry: Any) -> None:
    """evstore_query_anomaly_score{key,kind} (the latest bucket's score of each key) and a count."""
    from prometheus_client import Gauge

    score = Gauge("evstore_query_anomaly_score", "Score of the latest anomalous bucket of a key",
                  ["key", "kind"], registry=registry)
    count = Gauge("evstore_query_anomalies", "Anomalous buckets in the window", registry=registry)
    count.set(len(found))
    for a in found:
        score.labels(a.key, a.kind).set(a.score)
