"""Personal-data declarations: code and file, nested paths and lists, versions, exact subjects."""

from __future__ import annotations

import pytest
from evstore.core.errors import ConfigurationError
from evstore.core.privacy.declarations import PersonalData, PrivacyRegistry, registry_for
from evstore.core.store.persistence import EventMetadata, EventRecord


def _registry() -> PrivacyRegistry:
    return PrivacyRegistry([
        PersonalData("UserRegistered", ("data.email", "data.addresses[].street"),
                     subject="aggregate_id", aggregate_type="User"),
        PersonalData("PageViewed", ("metadata.ip_address",)),
        PersonalData("PageViewed", ("metadata.ip_address", "data.referrer"), version=3),
    ])


def test_subject_is_exact_and_typed() -> None:
    reg = _registry()
    user = EventRecord("42", "User", "UserRegistered", {"email": "a@x", "addresses": [{"street": "s"}]})
    order = EventRecord("42", "Order", "UserRegistered", {"email": "a@x"})
    assert reg.subject_of(user) == "42"
    assert reg.subject_of(order) is None  # another aggregate type: not the subject
    assert reg.has_personal_data(user) and not reg.has_personal_data(order)
    meta = EventMetadata(user_id="7", extra={"ip_address": "1.2.3.4"})
    view = EventRecord("p1", "Page", "PageViewed", {}, metadata=meta)
    assert reg.subject_of(view) == "7" and reg.has_personal_data(view)
    assert reg.subject_of({"event_type": "PageViewed", "metadata": {}, "event_data": {}}) is None


def test_versions_carry_forward() -> None:
    reg = _registry()
    assert reg.for_event_type("PageViewed", 1).fields == ("metadata.ip_address",)
    assert reg.for_event_type("PageViewed", 2).version == 1
    assert reg.for_event_type("PageViewed", 5).version == 3
    assert reg.for_event_type("PageViewed").version == 3
    assert reg.for_event_type("Nope") is None


def test_bad_declarations_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        PersonalData("X", ("email",))
    with pytest.raises(ConfigurationError):
        PersonalData("X", ("metadata.user_id",))
    with pytest.raises(ConfigurationError):
        PersonalData("X", ("data.a",), subject="data.people[].id")


def test_file_declarations(tmp_path, monkeypatch) -> None:
    cfg = tmp_path / "evstore.toml"
    cfg.write_text(
        '[privacy.UserRegistered]\nfields = ["data.email"]\nsubject = "aggregate_id"\n'
        'aggregate_type = "User"\n'
        '[privacy.Renamed.versions.2]\nfields = ["data.new_name"]\n'
    )
    monkeypatch.setenv("EVSTORE_CONFIG", str(cfg))
    reg = registry_for(None)
    assert reg.for_event_type("UserRegistered").subject == "aggregate_id"
    assert reg.for_event_type("Renamed", 1) is None
    assert reg.for_event_type("Renamed", 2).fields == ("data.new_name",)
    cfg.write_text('[privacy.Bad]\nfields = "data.email"\n')
    with pytest.raises(ConfigurationError):
        registry_for(None)
