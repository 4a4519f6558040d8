"""The console's sessions and secrets (no browser: the signing and checks themselves)."""

from __future__ import annotations

import base64
import json
import time

from evstore.console.auth import Authenticator, Session, clean_name


def test_a_session_cookie_round_trips_and_a_forged_or_expired_one_is_a_new_anonymous_session() -> None:
    auth = Authenticator({"EVSTORE_CONSOLE_PASSWORD": "pw", "EVSTORE_CONSOLE_SESSION_KEY": "k" * 32})
    cookie = auth.dump(Session(operator="ada"))
    loaded = auth.load(cookie)
    assert (loaded.operator, loaded.new) == ("ada", False)
    assert auth.csrf_ok(loaded, loaded.csrf) and not auth.csrf_ok(loaded, "guess")
    # The body changed to another operator, signature kept: refused
    body, _, signature = cookie.rpartition(".")
    raw = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw["o"] = "mallory"
    forged = base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=") + "." + signature
    assert auth.load(forged).operator is None and auth.load(forged).new
    # Signed by another key (another process without the shared key): refused
    assert Authenticator({"EVSTORE_CONSOLE_SESSION_KEY": "j" * 32}).load(cookie).operator is None
    # Expired: refused
    old = Session(operator="ada", expires=time.time() - 1)
    assert auth.load(auth.dump(old)).operator is None
    # A new session never passes the CSRF check (its token was never sent to a page)
    fresh = Session()
    assert not auth.csrf_ok(fresh, fresh.csrf)


def test_secrets_password_or_token_and_none_configured() -> None:
    both = Authenticator({"EVSTORE_CONSOLE_PASSWORD": "pw", "EVSTORE_CONSOLE_TOKEN": "tok"})
    assert both.enabled and both.check_secret("pw") and both.check_secret("tok")
    assert not both.check_secret("") and not both.check_secret("pw ") and not both.check_secret("nope")
    none = Authenticator({})
    assert not none.enabled and not none.check_secret("") and not none.check_secret("anything")
    assert clean_name("  ada\x00\n ") == "ada" and clean_name("") == "operator"
    assert len(clean_name("x" * 500)) == 64
