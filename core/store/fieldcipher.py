"""Where per-subject field encryption plugs into the store (EVENT_STORE_ENCRYPTION).

The store cannot import a feature package, so core/privacy registers a
*factory* here (``install``); the store builds its cipher on first use and

- seals each event of an append before its JSON and checksum are made
  (``seal(events) -> (events, index)``: declared fields replaced by
  ciphertext), so the checksum covers what is stored and keeps verifying
  after a key is destroyed; ``index`` (None, or the blind-index rows as
  arrays: ``fields``, ``digests``, ``subject_refs``, ``event_ids``) is written
  by the append in its own transaction and round trip (core/store/append.py);
- opens each decoded record whose stored text holds a sealed value
  (``open(record) -> record``), after its checksum was checked. A value whose
  key is gone opens as a typed marker, never an exception.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

# The prefix of every sealed (or forgotten) value in stored JSON text.
MARK = "evenc:"
_MARK_BYTES = MARK.encode()


# Blind-index rows of an append, as arrays (keys: fields, digests, subject_refs, event_ids).
BlindRows = dict[str, list[Any]]


class FieldCipher(Protocol):
    def seal(self, events: Sequence[Any]) -> tuple[list[Any], BlindRows | None]: ...

    def open(self, record: Any, in_data: bool = True, in_metadata: bool = True) -> Any: ...


CipherFactory = Callable[[Any], "FieldCipher | None"]
_factory: list[CipherFactory] = []
_lock = threading.Lock()
_NONE = object()


def install(factory: CipherFactory) -> None:
    with _lock:
        _factory[:] = [factory]


def cipher_of(store: Any) -> FieldCipher | None:
    found = store.__dict__.get("_evstore_field_cipher", _NONE)
    if found is _NONE:
        with _lock:
            found = store.__dict__.get("_evstore_field_cipher", _NONE)
            if found is _NONE:
                found = _factory[0](store) if _factory else None
                store.__dict__["_evstore_field_cipher"] = found
    return cast("FieldCipher | None", found)


def seal(store: Any, events: Sequence[Any]) -> tuple[Sequence[Any], BlindRows | None]:
    """The events with their declared fields sealed (as they are when encryption is off),
    and the blind-index rows the append must write with them (None: none)."""
    if store.settings.encryption == "none":
        return events, None
    cipher = cipher_of(store)
    return (events, None) if cipher is None else cipher.seal(events)


def _holds(text: str | bytes | None) -> bool:
    if text is None:
        return False
    if isinstance(text, bytes):
        return _MARK_BYTES in text
    return MARK in text


def open_record(store: Any, record: Any, data_text: str | bytes | None,
                metadata_text: str | None) -> Any:
    """``record`` (just decoded) with its sealed values opened, when its stored text holds any."""
    in_data, in_metadata = _holds(data_text), _holds(metadata_text)
    if not (in_data or in_metadata):
        return record
    cipher = cipher_of(store)
    return record if cipher is None else cipher.open(record, in_data, in_metadata)
