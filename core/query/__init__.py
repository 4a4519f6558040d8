"""The event query service (the spec's sixth component): see docs/query.md."""
from __future__ import annotations

from .criteria import (
    And,
    EventSearchCriteria,
    FieldPath,
    Leaf,
    Not,
    Or,
    all_of,
    any_of,
    f,
    text,
)
from .service import EventQueryService, QueryMetrics, QueryResult

__all__ = [
    "And", "EventQueryService", "EventSearchCriteria", "FieldPath", "Leaf", "Not", "Or",
    "QueryMetrics", "QueryResult", "all_of", "any_of", "f", "text",
]
