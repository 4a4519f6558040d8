"""The soak test's replay handler (benchmarks/soak.py), imported by its worker processes."""

from __future__ import annotations

from evstore.workers import register_event_handler


def soak_noop(event, ctx) -> None:  # type: ignore[no-untyped-def]
    """Touches nothing: the replay's cost is the engine's and the reads'."""


register_event_handler("*", soak_noop)
