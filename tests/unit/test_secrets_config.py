"""The secret key variables are never echoed, not even when they are wrong."""

from __future__ import annotations

import pytest
from evstore.core.keys import keyring

from evstore import ConfigurationError, load_settings


@pytest.mark.parametrize("variable", ["EVSTORE_SECRET_KEY", "EVSTORE_PREVIOUS_SECRET_KEYS"])
@pytest.mark.parametrize("value", ["not-hex-nor-base64-hunter2!!", "abcd", "hunter2hunter2"])
def test_a_bad_secret_is_named_but_never_shown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object, variable: str, value: str
) -> None:
    monkeypatch.setenv("EVSTORE_HOME", str(tmp_path))
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as info:
        keyring(load_settings())
    assert variable in str(info.value) or "secret key" in str(info.value)
    assert value not in str(info.value) and "hunter2" not in str(info.value)
    assert value not in repr(load_settings())


def test_a_secret_that_fails_settings_validation_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    # a list where a string is expected fails pydantic's own check
    with pytest.raises(ConfigurationError, match="EVSTORE_SECRET_KEY") as info:
        load_settings(secret_key=12345678901234567890)
    assert "12345678901234567890" not in str(info.value)
