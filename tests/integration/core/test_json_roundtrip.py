"""Property: any JSON-able payload survives append + read with a valid checksum.

PostgreSQL's jsonb rewrites numbers (1e20 becomes 100000000000000000000, 1e-7
becomes 0.0000001) and reorders keys; the canonical form behind the checksum
must give the same bytes before and after.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from evstore import EventMetadata

from .helpers import ev

_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=20,
)
_counter = itertools.count()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.dictionaries(_text, _json, max_size=6), extra=st.dictionaries(_text, _json, max_size=3))
@example(data={"big": 1e20, "small": 1e-7, "neg": -2.5e-12, "huge": 1.5e300}, extra={})
@example(data={"zero": 0.0, "negzero": -0.0, "int": 10**20, "f": 0.1 + 0.2}, extra={})
@example(data={"unicode": "Zoë 🎉 日本語 \u2028 \"quoted\" \\ back", "é": ["ß", {"ü": None}]}, extra={})
@example(data={"escaped": "C:\\u0000 \\\\u0000", "\\u0000": 1}, extra={"\\u0000": None})
@example(data={"nested": [[[[{"a": [1, 2.0, True, None]}]]]], "": ""}, extra={"": 1e16})
def test_any_payload_round_trips_with_a_valid_checksum(store: Any, data: Any, extra: Any) -> None:
    stream = f"User-{next(_counter)}"
    event = ev(stream, "UserUpdated", data, metadata=EventMetadata(user_id="u", extra=extra))
    store.append_events(stream, [event])
    # read_stream verifies the checksum: it raises if the canonical forms differ
    (back,) = store.read_stream(stream)
    assert back.event_data == data
    assert back.metadata.to_dict() == event.metadata.to_dict()
