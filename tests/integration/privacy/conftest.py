"""Fixtures of the privacy tests: declarations in a configuration file, stores with encryption on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from evstore.core.config import load_settings

from evstore import PostgreSQLEventStore

MASTER = "11" * 32
DECLARATIONS = """
[privacy.UserRegistered]
fields = ["data.email", "data.name", "data.addresses[].street"]
subject = "aggregate_id"
aggregate_type = "User"

[privacy.PageViewed]
fields = ["metadata.ip_address", "data.referrer"]
"""


@pytest.fixture
def privacy_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "evstore.toml"
    path.write_text(DECLARATIONS)
    monkeypatch.setenv("EVSTORE_CONFIG", str(path))
    return path


def open_store(url: str, encryption: str = "on", **extra: object) -> PostgreSQLEventStore:
    settings = load_settings(**{"database_url": url, "encryption": encryption, "master_key": MASTER,
                                "key_cache_seconds": 0, **extra})
    return PostgreSQLEventStore(url, settings=settings)


@pytest.fixture
def encrypted_store(database_url: str, privacy_config: Path) -> Iterator[PostgreSQLEventStore]:
    with open_store(database_url) as store:
        yield store


# The archive tests' emulators (S3, GCS, Azure) and allowed targets, shared.
from tests.integration.archive.conftest import (  # noqa: E402, F401
    Emulators,
    allowed_targets,
    emulators,
    target_url_for,
)
