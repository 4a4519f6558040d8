"""The service against the pure-Python evaluator: random criteria trees over ~2,000 generated
events (a third of them stored compressed, whose data SQL cannot see), identical sets and order."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta
from typing import Any

from evstore.core.errors import QueryError
from evstore.core.query import And, EventQueryService, EventSearchCriteria, Leaf, Not, Or
from evstore.core.query.evaluate import matches
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import START

FIELDS = ["data.email", "data.n", "data.x", "data.flag", "data.tag", "data.nested.k",
          "data.nested.deep.v", "data.arr.0", "data.arr.-1", "data.missing", "data.tag.k",
          "metadata.user_id", "metadata.source", "metadata.score", "event_type", "aggregate_id",
          "stream_id", "event_version"]
OPS = ["eq", "ne", "lt", "le", "gt", "ge", "in", "prefix", "exists"]
VALUES = st.one_of(
    st.sampled_from(["ada@example.com", "grace@x.org", "a", "ab", "b", "u3", "web", "import", "T2",
                     "a7", "User-a7", "ada", "Zoë@x.org", "émile@example.com", "", "x;DROP@x.org"]),
    st.integers(-6, 31), st.sampled_from([0.5, 1.0, 2.25, -3.5, 1e-7, 3.0]),
    st.booleans(), st.none(), st.text(max_size=4).filter(lambda s: "\x00" not in s))


@st.composite
def leaves(draw: Any) -> Leaf:
    field = draw(st.sampled_from(FIELDS))
    op = draw(st.sampled_from(OPS))
    value: Any = tuple(draw(st.lists(VALUES, min_size=1, max_size=3))) if op == "in" else draw(VALUES)
    try:
        return Leaf(op, field, None if op == "exists" else value)
    except QueryError:  # a leaf the rules refuse (e.g. a number for a text column)
        return Leaf("exists", draw(st.sampled_from(FIELDS[:11])))


trees = st.recursive(
    leaves(),
    lambda kids: st.one_of(
        st.lists(kids, min_size=1, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(kids, min_size=1, max_size=3).map(lambda xs: Or(tuple(xs))),
        kids.map(Not)),
    max_leaves=8)


@st.composite
def criteria(draw: Any, limit: int = 100_000) -> EventSearchCriteria:
    kw: dict[str, Any] = {"where": draw(trees), "order": draw(st.sampled_from(["asc", "desc"])),
                          "limit": limit}
    if draw(st.booleans()):
        kw["event_types"] = draw(st.lists(st.sampled_from([f"T{i}" for i in range(5)]),
                                          min_size=1, max_size=3))
    if draw(st.integers(0, 4)) == 0:
        kw["user_id"] = draw(st.sampled_from(["u1", "u2", "nobody"]))
    if draw(st.integers(0, 9)):  # mostly a time window (each returned event costs a decode)
        low = draw(st.integers(0, 118))
        kw["from_timestamp"] = START + timedelta(days=low, hours=draw(st.integers(0, 23)))
        kw["to_timestamp"] = kw["from_timestamp"] + timedelta(days=draw(st.integers(1, 6)))
    return EventSearchCriteria(**kw)


def expected(everything: list[Any], c: EventSearchCriteria) -> list[str]:
    ids = [str(e.event_id) for e in everything if matches(c, e)]
    return ids if c.order == "asc" else ids[::-1]


def test_the_store_holds_compressed_events(query_store: Any) -> None:
    _store, everything = query_store
    packed = sum(e.compression != "none" for e in everything)
    assert len(everything) == 2000 and 300 < packed < 1000


# EVSTORE_QUERY_EXAMPLES raises the counts (docs/query.md: the larger runs made).
EXAMPLES = int(os.environ.get("EVSTORE_QUERY_EXAMPLES", "500"))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(c=criteria())
def test_random_trees_match_the_python_evaluator(query_store: Any, c: EventSearchCriteria) -> None:
    store, everything = query_store
    service = EventQueryService(store)
    result, metrics = service.query_events(c, plan=False, use_cache=False)
    assert [str(e.event_id) for e in result.events] == expected(everything, c)
    assert metrics.rows_returned == len(result.events)


@settings(max_examples=max(20, EXAMPLES // 25), deadline=None, suppress_health_check=list(HealthCheck))
@given(c=criteria(limit=1), limit=st.integers(25, 400))
def test_pages_concatenate_to_the_whole_answer(query_store: Any, c: EventSearchCriteria,
                                               limit: int) -> None:
    store, everything = query_store
    service = EventQueryService(store)
    got = [str(e.event_id) for e in service.iter_events(replace(c, limit=limit))]
    assert got == expected(everything, c)
