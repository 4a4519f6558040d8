"""The configuration loader's URL helper and storage options (no database, no network)."""

from __future__ import annotations

import json

import pytest
from evstore.core.archive import targets
from evstore.core.archive.access import storage_options as storage_options_for
from evstore.core.config_file import STORAGE_ENV, protocol_of


@pytest.mark.parametrize(("url", "protocol"), [
    ("s3://bucket/events", "s3"),
    ("GS://bucket", "gs"),
    ("az://box/x", "az"),
    ("/var/archive", "file"),
    ("C:/archive", "file"),  # a Windows drive letter is a path, not a scheme
    ("file:///tmp/a", "file"),
])
def test_protocol_of(url: str, protocol: str) -> None:
    assert protocol_of(url) == protocol


def test_targets_use_the_config_loaders_helper() -> None:
    assert targets.protocol_of is protocol_of


def test_storage_options_protocol_then_longest_prefix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.delenv("EVSTORE_CONFIG", raising=False)
    monkeypatch.chdir(str(tmp_path))
    monkeypatch.setenv("EVSTORE_TEST_SECRET", "s3cr3t")
    monkeypatch.setenv(STORAGE_ENV, json.dumps({
        "s3": {"endpoint_url": "http://a", "secret": "${EVSTORE_TEST_SECRET}"},
        "s3://cold": {"endpoint_url": "http://b"},
        "s3://cold/events": {"key": "k"},
    }))
    assert storage_options_for("s3a://other/x") == {"endpoint_url": "http://a", "secret": "s3cr3t"}
    assert storage_options_for("s3://cold/events/2024") == {
        "endpoint_url": "http://b", "secret": "s3cr3t", "key": "k",
    }
    # options of s3://cold stop at its path boundary: s3://cold-evil is another bucket
    assert storage_options_for("s3://cold-evil/x") == {"endpoint_url": "http://a", "secret": "s3cr3t"}
