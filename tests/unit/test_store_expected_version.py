"""The expected-version logic of an append, before any database: what version the
stream must be at (an int, or ANY), and the refusals of what disagrees."""

from __future__ import annotations

from typing import Any

import pytest
from evstore.core.store.versions import expected_version

from evstore import ANY, NO_STREAM, EventRecord, EventValidationError


def _batch(*versions: int) -> list[EventRecord]:
    return [EventRecord("a", "User", "E", {}, aggregate_version=v) for v in versions]


def test_no_expected_version_follows_the_events() -> None:
    assert expected_version(_batch(0, 0), None) is ANY
    assert expected_version(_batch(1, 2), None) == 0
    assert expected_version(_batch(5, 6, 7), None) == 4


def test_any_with_unset_aggregate_versions_is_any() -> None:
    assert expected_version(_batch(0), ANY) is ANY


def test_any_with_a_set_aggregate_version_is_refused() -> None:
    with pytest.raises(EventValidationError, match="expected_version ANY with aggregate_version 7"):
        expected_version(_batch(7), ANY)


@pytest.mark.parametrize("first", [0, 1])
def test_no_stream_is_version_zero(first: int) -> None:
    assert expected_version(_batch(first), NO_STREAM) == 0


def test_no_stream_with_a_later_aggregate_version_is_refused() -> None:
    with pytest.raises(EventValidationError,
                       match="expected no stream, but the first event has aggregate_version 3"):
        expected_version(_batch(3), NO_STREAM)


@pytest.mark.parametrize("expected", [0, 1, 41, 2**62 - 1])
def test_an_exact_version_is_itself(expected: int) -> None:
    assert expected_version(_batch(0), expected) == expected


def test_an_exact_version_agreeing_with_aggregate_version() -> None:
    assert expected_version(_batch(4, 5), 3) == 3


def test_an_exact_version_disagreeing_with_aggregate_version_is_refused() -> None:
    with pytest.raises(EventValidationError) as info:
        expected_version(_batch(4), 5)
    assert str(info.value) == (
        "expected_version 5 disagrees with the first event's aggregate_version 4 (should be 6)"
    )


@pytest.mark.parametrize("expected", [-1, 2**62, 2**63, True, False, 1.0, "3"])
def test_out_of_range_or_mistyped_versions_are_refused(expected: Any) -> None:
    with pytest.raises(EventValidationError) as info:
        expected_version(_batch(0), expected)
    assert str(info.value) == (
        "expected_version must be an integer from 0 to 2**62-1, ANY or NO_STREAM "
        f"(got {expected!r})"
    )
