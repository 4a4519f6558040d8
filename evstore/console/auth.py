"""Who may act in the console: operator login, signed session cookies, CSRF tokens.

Reading needs no login. Acting (requeue, cancel, reset, restore) needs an
operator who logged in with the secret of ``EVSTORE_CONSOLE_PASSWORD`` or
``EVSTORE_CONSOLE_TOKEN`` (either works; with neither set, nobody can act).
The secret is kept only as its SHA-256 digest and compared in constant time.

Every visitor gets a session cookie (anonymous ones too, so that every form
carries a CSRF token): a JSON body signed with HMAC-SHA256 under
``EVSTORE_CONSOLE_SESSION_KEY`` (a random key per process when unset:
sessions then end with the process). The cookie is HttpOnly, SameSite=Strict,
and Secure when the console is served over https.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

COOKIE = "evstore_console"
SESSION_SECONDS = 8 * 3600
PASSWORD_VARIABLES = ("EVSTORE_CONSOLE_PASSWORD", "EVSTORE_CONSOLE_TOKEN")
SESSION_KEY_VARIABLE = "EVSTORE_CONSOLE_SESSION_KEY"
MAX_NAME = 64


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@dataclass
class Session:
    """One visitor's session: a CSRF token, and the operator once logged in."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    operator: str | None = None
    expires: float = field(default_factory=lambda: time.time() + SESSION_SECONDS)
    new: bool = True  # to be (re)sent as a cookie


class Authenticator:
    """Checks operator secrets and signs, reads and checks sessions."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._secrets = [_digest(v) for k in PASSWORD_VARIABLES if (v := env.get(k, ""))]
        key = env.get(SESSION_KEY_VARIABLE, "")
        self._key = key.encode() if key else secrets.token_bytes(32)

    @property
    def enabled(self) -> bool:
        """Whether any operator secret is configured (else the console is read-only)."""
        return bool(self._secrets)

    def check_secret(self, given: str) -> bool:
        """Whether ``given`` is a configured secret (constant time over its digest)."""
        digest = _digest(given or "")
        ok = False
        for expected in self._secrets:
            ok |= hmac.compare_digest(digest, expected)
        return ok and bool(given)

    # -- cookies --------------------------------------------------------------

    def _sign(self, body: bytes) -> str:
        return hmac.new(self._key, body, hashlib.sha256).hexdigest()

    def dump(self, session: Session) -> str:
        body = json.dumps({"c": session.csrf, "o": session.operator, "e": int(session.expires)},
                          separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(body).decode().rstrip("=") + "." + self._sign(body)

    def load(self, cookie: str | None) -> Session:
        """The session of a cookie; a new anonymous one when missing, forged or expired."""
        if cookie and "." in cookie:
            encoded, _, signature = cookie.rpartition(".")
            try:
                body = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            except ValueError:
                return Session()
            if hmac.compare_digest(self._sign(body), signature):
                try:
                    data: dict[str, Any] = json.loads(body)
                    if float(data["e"]) > time.time():
                        return Session(csrf=str(data["c"]), operator=data.get("o"),
                                       expires=float(data["e"]), new=False)
                except (ValueError, KeyError, TypeError):
                    pass
        return Session()

    @staticmethod
    def csrf_ok(session: Session, given: str | None) -> bool:
        return bool(given) and not session.new and hmac.compare_digest(
            session.csrf.encode(), str(given).encode())


def clean_name(name: str) -> str:
    """An operator's name as given at login: printable, trimmed, at most MAX_NAME characters."""
    text = "".join(ch for ch in (name or "") if ch.isprintable()).strip()[:MAX_NAME]
    return text or "operator"
