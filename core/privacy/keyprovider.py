"""Master keys: what wraps each subject's data key (envelope encryption).

A :class:`KeyProvider` wraps and unwraps 32-byte data keys. The default,
:class:`LocalKeyProvider`, holds the master key in the process:
``EVENT_STORE_MASTER_KEY`` (hex or base64, 32+ bytes), else the file
``EVENT_STORE_MASTER_KEY_FILE``, else ``$EVSTORE_HOME/master.key`` (made 0600 on
first use, like the secret key). Earlier master keys
(``EVENT_STORE_PREVIOUS_MASTER_KEYS``, comma-separated) still unwrap, so
``evstore privacy rotate-master-key`` can rewrap every data key under the
current one.

A KMS or Vault plugs in as ``EVENT_STORE_KEY_PROVIDER=package.module:factory``:
``factory(settings)`` returns any object with ``current_kid``, ``wrap`` and
``unwrap`` (the master key then never enters this process). The provider's
``wrap(key_ref, data_key) -> (kid, wrapped)`` must authenticate ``key_ref``
(a wrapped key moved to another subject's row does not unwrap).
"""

from __future__ import annotations

import importlib
import os
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import ConfigurationError
from ..keys import _read, _read_or_create, key_id, parse_secret

if TYPE_CHECKING:
    from ..config import Settings


class KeyProvider(ABC):
    """Wraps data keys with a master key it holds (or a service holds for it)."""

    @property
    @abstractmethod
    def current_kid(self) -> str:
        """The id of the master key new wraps use."""

    @abstractmethod
    def wrap(self, key_ref: str, data_key: bytes) -> tuple[str, bytes]:
        """(master key id, wrapped key) of ``data_key``, bound to ``key_ref``."""

    @abstractmethod
    def unwrap(self, kid: str, key_ref: str, wrapped: bytes) -> bytes:
        """The data key; ConfigurationError when master key ``kid`` is not held."""


def _kek(secret: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"evstore:privacy-master-key").derive(secret)
    return AESGCM(key)


class LocalKeyProvider(KeyProvider):
    """The master key (and earlier ones) in this process's memory."""

    def __init__(self, current: bytes, previous: tuple[bytes, ...] = ()) -> None:
        self._keys = {key_id(s): _kek(s) for s in (*previous, current)}
        self._kid = key_id(current)

    @property
    def current_kid(self) -> str:
        return self._kid

    def wrap(self, key_ref: str, data_key: bytes) -> tuple[str, bytes]:
        nonce = os.urandom(12)
        return self._kid, nonce + self._keys[self._kid].encrypt(nonce, data_key, key_ref.encode())

    def unwrap(self, kid: str, key_ref: str, wrapped: bytes) -> bytes:
        kek = self._keys.get(kid)
        if kek is None:
            raise ConfigurationError(
                f"a data key is wrapped by master key {kid}, which this process does not have: "
                "give it as EVENT_STORE_MASTER_KEY or in EVENT_STORE_PREVIOUS_MASTER_KEYS")
        try:
            return kek.decrypt(wrapped[:12], wrapped[12:], key_ref.encode())
        except InvalidTag:
            raise ConfigurationError(
                f"the data key {key_ref[:8]}… does not unwrap with master key {kid} "
                "(damaged, or moved from another row)") from None


_lock = threading.Lock()
_providers: dict[tuple[str, ...], KeyProvider] = {}


def key_provider(settings: Settings) -> KeyProvider:
    """The provider these settings name (cached per configuration)."""
    previous = settings.previous_master_keys.get_secret_value() if settings.previous_master_keys else ""
    if settings.key_provider:
        source: tuple[str, ...] = ("plugin", settings.key_provider)
    elif settings.master_key is not None:
        source = ("env", settings.master_key.get_secret_value(), previous)
    elif settings.master_key_file is not None:
        source = ("file", str(settings.master_key_file), previous)
    else:
        source = ("home", str(Path(settings.home) / "master.key"), previous)
    with _lock:
        found = _providers.get(source)
        if found is None:
            found = _providers[source] = _load(source, settings)
        return found


def _load(source: tuple[str, ...], settings: Settings) -> KeyProvider:
    kind = source[0]
    if kind == "plugin":
        module, _, attr = source[1].partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr or "key_provider")
        except (ImportError, AttributeError) as exc:
            raise ConfigurationError(
                f"EVENT_STORE_KEY_PROVIDER {source[1]!r}: cannot load it ({exc}); expected "
                "'package.module:factory'") from None
        provider = factory(settings)
        if not all(hasattr(provider, name) for name in ("current_kid", "wrap", "unwrap")):
            raise ConfigurationError(f"EVENT_STORE_KEY_PROVIDER {source[1]!r}: its factory did "
                                     "not return a key provider (current_kid, wrap, unwrap)")
        return provider  # type: ignore[no-any-return]
    _, value, previous_text = source
    if kind == "env":
        current = parse_secret(value, "EVENT_STORE_MASTER_KEY")
    elif kind == "file":
        current = parse_secret(_read(Path(value), "EVENT_STORE_MASTER_KEY_FILE"),
                               f"EVENT_STORE_MASTER_KEY_FILE {value}")
    else:
        current = parse_secret(_read_or_create(Path(value)), value)
    previous = tuple(parse_secret(part, "EVENT_STORE_PREVIOUS_MASTER_KEYS")
                     for part in previous_text.split(",") if part.strip())
    return LocalKeyProvider(current, previous)
