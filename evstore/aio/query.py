"""The spec's EventSearchCriteria with its argument shapes: ``aggregate_ids=[user_id]`` with UUIDs.

A subclass of the core's criteria (``evstore.core.query``) that turns
``uuid.UUID`` values of the id lists into their text before the core's checks;
everything else is the core's.
"""

from __future__ import annotations

import uuid
from typing import Any

from evstore.core.query import EventSearchCriteria as CoreCriteria

_ID_LISTS = ("aggregate_ids", "stream_ids")


# CoreCriteria comes from evstore.core, which mypy does not follow (an editable-install mapping): Any.
class EventSearchCriteria(CoreCriteria):  # type: ignore[misc]
    def __post_init__(self, *args: Any) -> None:
        for name in _ID_LISTS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str | bytes):
                object.__setattr__(self, name, [str(v) if isinstance(v, uuid.UUID) else v
                                                 for v in value])
        super().__post_init__(*args)
