"""Anomaly scoring on synthetic weeks of identity events with injected bursts and drops."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

from evstore.core.query.anomalies import score_counts

START = datetime(2026, 3, 2, tzinfo=UTC)
BUCKET = timedelta(minutes=15)
DAYS = 7
PER_DAY = 96
KEYS = {"UserLoggedIn": 40.0, "UserCreated": 6.0, "PasswordChanged": 12.0}


def poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method is slow for large lambda: a normal approximation above 30.
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    k, p, limit = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def synthetic_week(seed: int) -> tuple[dict[tuple[datetime, str], int], set[tuple[datetime, str]]]:
    rng = random.Random(seed)
    counts: dict[tuple[datetime, str], int] = {}
    injected: set[tuple[datetime, str]] = set()
    for key, peak in KEYS.items():
        for i in range(DAYS * PER_DAY):
            hour = (i % PER_DAY) / 4
            rate = peak * (0.25 + 0.75 * max(0.0, math.sin(math.pi * (hour - 6) / 14)))  # a working day
            at = START + i * BUCKET
            count = poisson(rng, rate)
            if rng.random() < 0.01:  # a burst: several times the rate, at least +40
                count = poisson(rng, rate * 6 + 40)
                injected.add((at, key))
            elif rate >= 15 and rng.random() < 0.01:  # a drop: an outage
                count = poisson(rng, rate * 0.05)
                injected.add((at, key))
            if count:
                counts[(at, key)] = count
    return counts, injected


def test_bursts_and_drops_are_found_with_few_false_alerts() -> None:
    found_total = missed = false = weeks = 0
    for seed in range(6):
        counts, injected = synthetic_week(seed)
        alerts = score_counts(counts, START, START + DAYS * timedelta(days=1), BUCKET)
        flagged = {(a.bucket_start, a.key) for a in alerts}
        found_total += len(injected & flagged)
        missed += len(injected - flagged)
        false += len(flagged - injected)
        weeks += 1
    recall = found_total / (found_total + missed)
    assert recall >= 0.9, (recall, missed)
    assert false <= weeks * DAYS, f"{false} false alerts in {weeks * DAYS} simulated days"


def test_an_alert_explains_itself() -> None:
    counts = {(START + i * BUCKET, "UserLoggedIn for User-42"): 3 for i in range(DAYS * PER_DAY)}
    burst_at = START + 300 * BUCKET
    counts[(burst_at, "UserLoggedIn for User-42")] = 480
    [alert] = score_counts(counts, START, START + DAYS * timedelta(days=1), BUCKET)
    assert alert.kind == "burst" and alert.count == 480 and alert.baseline == 3
    assert alert.explanation.startswith("UserLoggedIn for User-42: 480 in 15 min")
    assert "baseline 3" in alert.explanation and "same time last week" not in alert.explanation
