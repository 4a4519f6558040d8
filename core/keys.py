"""The store's secret: keyed checksums of events and signatures of archive manifests.

Tamper evidence needs a key that is *not* in the database: whoever can rewrite
a row (a leaked application credential, a careless ``UPDATE``) must not be
able to recompute its checksum. The secret is 32 or more random bytes given as
hex or base64, from the first of:

1. ``EVSTORE_SECRET_KEY`` (the value itself);
2. ``EVSTORE_SECRET_KEY_FILE`` (a file holding it);
3. ``$EVSTORE_HOME/secret.key``, created (0600) on first use with a fresh
   random secret. Fine for one machine and the embedded demo; every process
   that shares a database must be given the same secret, or it cannot verify
   the others' events (it says so: each checksum names its key).

Each use gets its own key derived from the secret (HKDF-SHA256 with the
purpose as info), so a checksum key never signs a manifest. A secret is known
by its *key id*, the first 8 hex digits of a hash of it; a checksum or a
signature carries the id of the key that made it, so rotation works: the new
secret signs, the old ones (``EVSTORE_PREVIOUS_SECRET_KEYS``, comma-separated)
still verify.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .config import Settings
from .errors import ConfigurationError

MIN_SECRET_BYTES = 32
# The purposes keys are derived for (the HKDF info is "evstore:" + purpose).
CHECKSUM = "event-checksum"
MANIFEST = "archive-manifest"


class UnknownKeyError(ConfigurationError):
    """A checksum or signature made with a key this process was not given."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        super().__init__(
            f"made with secret key {kid}, which this process does not have: give every process "
            "that shares the database the same EVSTORE_SECRET_KEY (or list old secrets in "
            "EVSTORE_PREVIOUS_SECRET_KEYS)"
        )


def parse_secret(text: str, where: str) -> bytes:
    """The bytes of a secret written as hex or base64; a clear error naming ``where``."""
    value = text.strip()
    raw: bytes | None = None
    if value and all(c in "0123456789abcdefABCDEF" for c in value) and len(value) % 2 == 0:
        raw = bytes.fromhex(value)
    else:
        try:
            raw = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None:
        raise ConfigurationError(f"{where}: the secret key must be hex or base64 (value not shown)")
    if len(raw) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"{where}: the secret key is {len(raw)} bytes; it must be at least {MIN_SECRET_BYTES} "
            "random bytes (make one with 'evstore keys generate')"
        )
    return raw


def generate_secret() -> str:
    """A new secret, as hex."""
    return secrets.token_hex(MIN_SECRET_BYTES)


class HmacSha256:
    """HMAC-SHA256 with one key, its padded inner and outer hashes made once.

    ``hmac.digest`` sets the key up on every call; a read verifies one
    checksum per event, so this saves most of the cost (same result).
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        block = key.ljust(64, b"\0") if len(key) <= 64 else hashlib.sha256(key).digest().ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(x ^ 0x36 for x in block))
        self._outer = hashlib.sha256(bytes(x ^ 0x5C for x in block))

    def hexdigest(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def key_id(secret: bytes) -> str:
    return hashlib.sha256(b"evstore-key-id\x00" + secret).hexdigest()[:8]


@dataclass(frozen=True)
class KeyRing:
    """The current secret (signs) and earlier ones (verify only), each known by its id."""

    current: bytes
    previous: tuple[bytes, ...] = ()
    # Derived keys and ready HMACs, by (purpose, key id): made once each.
    _keys: dict[tuple[str, str], bytes] = field(default_factory=dict, compare=False, repr=False)
    _macs: dict[tuple[str, str], HmacSha256] = field(default_factory=dict, compare=False,
                                                     repr=False)

    @cached_property
    def kid(self) -> str:
        """The id of the current secret."""
        return key_id(self.current)

    def key(self, purpose: str, kid: str | None = None) -> bytes:
        """The key for ``purpose`` derived from the current secret (or the one with ``kid``)."""
        kid = kid or self.kid
        cached = self._keys.get((purpose, kid))
        if cached is not None:
            return cached
        for secret in (self.current, *self.previous):
            if key_id(secret) == kid:
                derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                               info=b"evstore:" + purpose.encode()).derive(secret)
                self._keys[(purpose, kid)] = derived
                return derived
        raise UnknownKeyError(kid)

    def hmac(self, purpose: str, kid: str | None = None) -> HmacSha256:
        """A ready HMAC-SHA256 with the key for ``purpose`` (of the current secret, or ``kid``)."""
        kid = kid or self.kid
        found = self._macs.get((purpose, kid))
        if found is None:
            found = self._macs[(purpose, kid)] = HmacSha256(self.key(purpose, kid))
        return found

    def knows(self, kid: str) -> bool:
        return any(key_id(s) == kid for s in (self.current, *self.previous))

    def sign(self, purpose: str, data: bytes) -> str:
        """``<kid>:<hex HMAC-SHA256>`` of ``data`` with the current key for ``purpose``."""
        return f"{self.kid}:{hmac.digest(self.key(purpose), data, 'sha256').hex()}"

    def verify(self, purpose: str, data: bytes, signature: str) -> bool:
        """Whether ``signature`` (from :meth:`sign`) is right; UnknownKeyError for a key not held."""
        kid, _, mac = signature.partition(":")
        expected = hmac.digest(self.key(purpose, kid), data, "sha256").hex()
        return hmac.compare_digest(expected, mac)


_lock = threading.Lock()
_rings: dict[tuple[str, ...], KeyRing] = {}


def keyring(settings: Settings) -> KeyRing:
    """The key ring these settings name (cached per configuration)."""
    previous_text = settings.previous_secret_keys.get_secret_value() if settings.previous_secret_keys else ""
    if settings.secret_key is not None:
        source = ("env", settings.secret_key.get_secret_value(), previous_text)
    elif settings.secret_key_file is not None:
        source = ("file", str(settings.secret_key_file), previous_text)
    else:
        source = ("home", str(Path(settings.home) / "secret.key"), previous_text)
    with _lock:
        ring = _rings.get(source)
        if ring is None:
            ring = _rings[source] = _load(source)
        return ring


def _load(source: tuple[str, ...]) -> KeyRing:
    kind, value, previous_text = source
    if kind == "env":
        current = parse_secret(value, "EVSTORE_SECRET_KEY")
    elif kind == "file":
        where = f"EVSTORE_SECRET_KEY_FILE {value}"
        current = parse_secret(_read(Path(value), "EVSTORE_SECRET_KEY_FILE"), where)
    else:
        current = parse_secret(_read_or_create(Path(value)), str(value))
    previous = tuple(
        parse_secret(part, "EVSTORE_PREVIOUS_SECRET_KEYS")
        for part in previous_text.split(",") if part.strip()
    )
    return KeyRing(current, previous)


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigurationError(f"{what}: cannot read {path}: {exc.strerror}") from None


def _read_or_create(path: Path) -> str:
    """The default secret file under EVSTORE_HOME, made (0600, folder 0700) when missing."""
    if path.exists():
        return _read(path, "the secret key file")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        secret = generate_secret()
        # Written whole under a temporary name, then linked in: a process that
        # races us sees no file or the whole secret, never half of it.
        temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")
        try:
            os.link(temp, path)
        except FileExistsError:  # another process made it first: use theirs
            return _read(path, "the secret key file")
        finally:
            temp.unlink()
    except OSError as exc:
        raise ConfigurationError(
            f"no EVSTORE_SECRET_KEY and cannot create {path}: {exc.strerror}"
        ) from None
    return secret
