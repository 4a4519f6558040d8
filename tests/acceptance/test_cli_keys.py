"""evstore keys: a new secret, and the key id of the configured one (never the secret)."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from evstore.core.keys import key_id

from .helpers import evstore

SECRET = "5f" * 32


@pytest.fixture
def keys_env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("EVSTORE_")}
    e["EVSTORE_HOME"] = str(tmp_path / "home")
    return e


def test_generate_prints_a_new_secret_and_the_hint(keys_env: dict[str, str]) -> None:
    first, second = evstore(["keys", "generate"], keys_env), evstore(["keys", "generate"], keys_env)
    assert first.returncode == 0, first.stderr
    assert re.fullmatch(r"[0-9a-f]{64}\n", first.stdout) and first.stdout != second.stdout
    assert "EVSTORE_SECRET_KEY" in first.stderr and len(first.stderr.strip().splitlines()) == 1


def test_show_names_the_key_id_and_source_never_the_secret(keys_env: dict[str, str]) -> None:
    env = {**keys_env, "EVSTORE_SECRET_KEY": SECRET, "EVSTORE_PREVIOUS_SECRET_KEYS": "6a" * 32}
    out = evstore(["keys", "show", "--json"], env)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown == {"kid": key_id(bytes.fromhex(SECRET)), "source": "EVSTORE_SECRET_KEY",
                     "file": None, "created": False, "previous_kids": [key_id(bytes.fromhex("6a" * 32))]}
    text = evstore(["keys", "show"], env)
    assert text.returncode == 0 and shown["kid"] in text.stdout and "EVSTORE_SECRET_KEY" in text.stdout
    for output in (out, text):
        assert SECRET not in output.stdout + output.stderr and "6a" * 32 not in output.stdout


def test_show_from_a_file_and_from_evstore_home(keys_env: dict[str, str], tmp_path: Path) -> None:
    key_file = tmp_path / "secret"
    key_file.write_text(SECRET + "\n")
    out = json.loads(evstore(["keys", "show", "--json"],
                             {**keys_env, "EVSTORE_SECRET_KEY_FILE": str(key_file)}).stdout)
    assert out["source"] == "EVSTORE_SECRET_KEY_FILE" and out["file"] == str(key_file)
    assert out["kid"] == key_id(bytes.fromhex(SECRET))
    home = json.loads(evstore(["keys", "show", "--json"], keys_env).stdout)
    made = Path(keys_env["EVSTORE_HOME"]) / "secret.key"
    assert home["source"] == "EVSTORE_HOME" and home["file"] == str(made) and home["created"] is True
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    again = json.loads(evstore(["keys", "show", "--json"], keys_env).stdout)
    assert again["kid"] == home["kid"] and again["created"] is False


@pytest.mark.parametrize("bad", ["tooshort", "not-hex-or-base64!!" * 4])
def test_a_bad_secret_is_refused_and_never_echoed(keys_env: dict[str, str], bad: str) -> None:
    out = evstore(["keys", "show"], {**keys_env, "EVSTORE_SECRET_KEY": bad})
    assert out.returncode == 2 and "EVSTORE_SECRET_KEY" in out.stderr
    assert bad not in out.stderr + out.stdout and "Traceback" not in out.stderr
