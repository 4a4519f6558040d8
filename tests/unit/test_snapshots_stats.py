"""LoadTimings: the least-squares fit of load times the ADAPTIVE strategy uses (pure)."""

from __future__ import annotations

import pytest
from evstore.core.snapshots.stats import LoadTimings


def test_a_linear_cost_is_fitted_exactly() -> None:
    timings = LoadTimings()
    for events in (0, 10, 100, 1000):
        timings.add("User", events, 2.0 + 0.05 * events)
    ((atype, (loads, events, per_event, base)),) = timings.take().items()
    assert (atype, loads, events) == ("User", 4, 1110)
    assert per_event == pytest.approx(0.05) and base == pytest.approx(2.0)


def test_take_resets_and_types_are_fitted_apart() -> None:
    timings = LoadTimings()
    timings.add("User", 10, 5.0)
    timings.add("Order", 20, 8.0)
    fitted = timings.take()
    assert sorted(fitted) == ["Order", "User"]
    assert timings.take() == {}


def test_one_load_size_gives_the_mean_cost_per_event() -> None:
    timings = LoadTimings()
    timings.add("User", 10, 4.0)
    timings.add("User", 10, 6.0)
    (_loads, _events, per_event, base) = timings.take()["User"]
    assert per_event == pytest.approx(0.5) and base == 0.0


def test_the_slope_never_drops_to_zero_nor_the_base_below_zero() -> None:
    timings = LoadTimings()
    timings.add("User", 0, 3.0)
    timings.add("User", 0, 3.0)
    (_loads, _events, per_event, base) = timings.take()["User"]
    assert per_event == pytest.approx(1e-6) and base == pytest.approx(3.0)
