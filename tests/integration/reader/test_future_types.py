"""A live reader may filter on event types that nobody has appended yet."""

from __future__ import annotations

from typing import Any

import pytest
from evstore.core.errors import UnknownEventTypeError
from evstore.core.reader.reader import EventStreamReader
from evstore.core.reader.streams import StreamConfig, StreamReadMode

from .helpers import Collector, append, wait_for


def test_catch_up_reader_waits_for_a_type_not_stored_yet(pstore: Any) -> None:
    # Given a store where "UserDeleted" was never appended
    append(pstore, "User-a", 3, event_type="UserRegistered")
    with pytest.raises(UnknownEventTypeError):
        pstore.read_all(event_types=["UserDeleted"])  # a one-off query: a typo is an error
    # When a live reader subscribes to it
    got = Collector()
    reader = EventStreamReader(
        pstore, StreamConfig("deletions", mode=StreamReadMode.CATCH_UP, event_types=["UserDeleted"])
    )
    reader.start(got)
    try:
        wait_for(lambda: reader.metrics().reads >= 2, "the reader to have read (and found nothing)")
        append(pstore, "User-b", 2, event_type="UserDeleted")
        # Then it starts without error and receives the new type's events only
        wait_for(lambda: len(got.events) == 2, "the two UserDeleted events")
    finally:
        reader.stop()
        reader.join()
    assert {e.event_type for e in got.events} == {"UserDeleted"}
