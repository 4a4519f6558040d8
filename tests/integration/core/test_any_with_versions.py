"""append_events(expected_version=ANY) with events whose aggregate_version is set
must not silently store other versions than the caller's: it is refused."""

from __future__ import annotations

from typing import Any

import pytest
from evstore.core.errors import EventValidationError

from evstore import ANY

from .helpers import ev


def test_any_with_a_set_aggregate_version_is_refused_and_writes_nothing(store: Any) -> None:
    # Given a stream at version 2
    store.append_events("User-1", [ev("1"), ev("1", "UserUpdated")])
    # When an event claiming version 7 is appended with ANY
    with pytest.raises(EventValidationError, match="expected_version ANY with aggregate_version 7"):
        store.append_events("User-1", [ev("1", "UserUpdated", aggregate_version=7)],
                            expected_version=ANY)
    # Then nothing was written, and no version was rewritten
    assert [e.aggregate_version for e in store.read_stream("User-1")] == [1, 2]
    assert store.get_stream_version("User-1") == 2
