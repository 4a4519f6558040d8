"""Fixtures of the acceptance tests: the environment a command runs in, and the
fixtures they share with the integration tests (imported from there)."""

from __future__ import annotations

import os

import pytest

from tests.integration.reader.conftest import pstore  # noqa: F401  (fixture)


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    """The test's environment on a fresh database, without EVENT_STORE_* settings."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("EVENT_STORE_")}
    e["DATABASE_URL"] = database_url
    return e  # helpers.evstore adds COLUMNS=200
