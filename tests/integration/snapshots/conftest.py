from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def pstore(database_url: str) -> Iterator[Any]:
    """A store on a fresh database of the primary server only."""
    from evstore import PostgreSQLEventStore

    with PostgreSQLEventStore(database_url) as s:
        yield s
