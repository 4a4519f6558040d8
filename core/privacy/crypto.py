"""Per-subject encryption of declared fields (crypto-shredding), and the blind index.

With ``EVENT_STORE_ENCRYPTION=on`` every declared personal field
(:mod:`.declarations`) of an event with a subject is replaced, before the
event's JSON and checksum are made, by a *sealed value*::

    "evenc:1:<key ref>:<base64url(nonce | AES-256-GCM ciphertext of the value's JSON)>"

The key is the subject's 32-byte data key; the associated data is the event id
and the field path (a value cannot be moved to another event or field). The
key ref is a keyed HMAC of the subject id (the secret key of core/keys.py,
purpose ``privacy-subject``), so neither the events nor the key table hold the
id in clear. Data keys are wrapped by the master key (:mod:`.keyprovider`) and
live in ``subject_keys`` (or the database of ``EVENT_STORE_KEYS_URL``).

Reads open sealed values transparently. A value whose key was destroyed (the
subject was forgotten), and a value anonymized by a forget, reads as
:data:`FORGOTTEN`: a :class:`Forgotten` (a ``str`` subclass equal to
``"[forgotten]"``), never an exception.

Equality lookups (:func:`find_events`) go through ``blind_index``: an HMAC
(purpose ``privacy-blind-index``) of the event type, field path and value.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..db import Database
from ..errors import ConfigurationError
from ..keys import HmacSha256, KeyRing, key_id, keyring
from ..serialization import dumps
from ..store import fieldcipher
from ..store.persistence import EventMetadata, EventRecord
from ..store.reads import COLUMNS
from .declarations import PrivacyRegistry, parse_path, registry_for, transform_at, values_at
from .keyprovider import KeyProvider, key_provider

if TYPE_CHECKING:
    from ..store.persistence import EventStore

SUBJECT = "privacy-subject"
BLIND_INDEX = "privacy-blind-index"
PREFIX = fieldcipher.MARK + "1:"
# What a forget writes in place of a plain-text personal value.
ANONYMIZED = fieldcipher.MARK + "forgotten"


class Forgotten(str):
    """The value of a personal field whose subject was forgotten (key destroyed or anonymized)."""

    __slots__ = ()


FORGOTTEN = Forgotten("[forgotten]")


def is_forgotten(value: Any) -> bool:
    return isinstance(value, Forgotten)


def subject_ref(ring: KeyRing, subject: str, kid: str | None = None) -> str:
    """The keyed pseudonym of a subject id (the current secret, or the one with ``kid``)."""
    return ring.hmac(SUBJECT, kid).hexdigest(str(subject).encode())[:32]


def subject_refs(ring: KeyRing, subject: str) -> list[str]:
    """The subject's pseudonym under every secret this process holds (current first)."""
    return [subject_ref(ring, subject, key_id(s)) for s in (ring.current, *ring.previous)]


def blind_digest(ring: KeyRing, field: str, value: Any) -> str:
    return ring.hmac(BLIND_INDEX).hexdigest(field.encode() + b"\0" + dumps(value).encode())


def _ad(event_id: Any, path: str) -> bytes:
    return str(event_id).encode() + b"\0" + path.encode()


class DataKey:
    """One subject's data key: AES-256-GCM, and the key of its synthetic nonces.

    The nonce is an HMAC (under a key derived from the data key) of the
    associated data and the plaintext: the same event sealed twice (an append
    retried) gives the same bytes, so the store still recognises the retry,
    and two different values never share a nonce.
    """

    __slots__ = ("aes", "nonces")

    def __init__(self, key: bytes) -> None:
        self.aes = AESGCM(key)
        self.nonces = HmacSha256(hmac.digest(key, b"evstore-privacy-nonce", "sha256"))

    def seal(self, ref: str, event_id: Any, path: str, value: Any) -> str:
        plain, ad = dumps(value).encode(), _ad(event_id, path)
        nonce = bytes.fromhex(self.nonces.hexdigest(ad + b"\0" + plain))[:12]
        body = base64.urlsafe_b64encode(nonce + self.aes.encrypt(nonce, plain, ad)).decode()
        return f"{PREFIX}{ref}:{body}"

    def open(self, body: str, ad: bytes) -> Any:
        """The value sealed with associated data ``ad`` (``_ad(event_id, path)``)."""
        raw = base64.urlsafe_b64decode(body)
        return json.loads(self.aes.decrypt(raw[:12], raw[12:], ad).decode())


class SubjectKeys:
    """The data keys of subjects: created on first use, cached briefly, destroyed on forget."""

    def __init__(self, db: Database, provider: KeyProvider, ttl: float) -> None:
        self.db = db
        self.provider = provider
        self.ttl = ttl
        self._cache: dict[str, tuple[DataKey | None, float]] = {}
        self._lock = threading.Lock()

    def get(self, refs: set[str], create: bool) -> dict[str, DataKey | None]:
        """The data keys of ``refs`` (None: destroyed), made where missing with ``create``."""
        now = time.monotonic()
        out: dict[str, DataKey | None] = {}
        with self._lock:
            for ref in refs:
                hit = self._cache.get(ref)
                if hit is not None and now - hit[1] < self.ttl and (hit[0] is not None or not create):
                    out[ref] = hit[0]
        missing = refs - set(out)
        if missing:
            found = self._create(missing) if create else self._fetch(missing)
            if create and (absent := missing - set(found)):
                found.update(self._fetch(absent))  # committed by a concurrent writer meanwhile
            with self._lock:
                for ref in missing:
                    out[ref] = found.get(ref)
                    self._cache[ref] = (out[ref], now)
        return out

    def _create(self, refs: set[str]) -> dict[str, DataKey]:
        """The keys of ``refs``, made (with fresh random keys) where missing: one round trip."""
        order = sorted(refs)
        plain = {ref: os.urandom(32) for ref in order}
        wraps = [self.provider.wrap(ref, plain[ref]) for ref in order]
        params: dict[str, Any] = {"refs": order, "kids": [k for k, _ in wraps],
                                  "wrapped": [w for _, w in wraps]}
        with self.db.connection() as conn:
            rows = conn.execute(self.db.sql("privacy", "keys_get_or_create"), params).fetchall()
        ours = {ref: wrapped for ref, (_, wrapped) in zip(order, wraps, strict=True)}
        # A key we made and stored is used as made; one a concurrent writer stored is unwrapped.
        return {ref: DataKey(plain[ref] if bytes(wrapped) == ours.get(ref)
                             else self.provider.unwrap(kid, ref, bytes(wrapped)))
                for ref, kid, wrapped in rows}

    def _fetch(self, refs: set[str]) -> dict[str, DataKey]:
        with self.db.connection() as conn:
            rows = conn.execute(self.db.sql("privacy", "keys_get"), {"refs": sorted(refs)}).fetchall()
        return {ref: DataKey(self.provider.unwrap(kid, ref, bytes(wrapped))) for ref, kid, wrapped in rows}

    def destroy(self, refs: list[str]) -> int:
        with self.db.connection() as conn:
            count = conn.execute(self.db.sql("privacy", "keys_destroy"), {"refs": refs}).rowcount
        self.forget_cached(refs)
        return count

    def forget_cached(self, refs: list[str]) -> None:
        with self._lock:
            for ref in refs:
                self._cache.pop(ref, None)


def _keys_db(store: EventStore) -> Database:
    url = store.settings.keys_url
    if not url:
        return store.db
    db = Database.open(url, store.db.schema, pool_size=4)
    with db.connection() as conn:
        conn.execute(db.sql("privacy", "keys_table"))
    return db


class PrivacyCipher:
    """The store's field cipher (core/store/fieldcipher.py) for the declared fields."""

    REGISTRY_SECONDS = 5.0

    def __init__(self, store: EventStore) -> None:
        self.store = store
        settings = store.settings
        self.ring = keyring(settings)
        self._keys: SubjectKeys | None = None
        self._keys_lock = threading.Lock()
        self._registry: tuple[PrivacyRegistry, float] | None = None

    @property
    def keys(self) -> SubjectKeys:
        if self._keys is None:
            with self._keys_lock:
                if self._keys is None:
                    settings = self.store.settings
                    self._keys = SubjectKeys(_keys_db(self.store), key_provider(settings),
                                             settings.key_cache_seconds)
        return self._keys

    def registry(self) -> PrivacyRegistry:
        now = time.monotonic()
        if self._registry is None or now - self._registry[1] > self.REGISTRY_SECONDS:
            self._registry = (registry_for(self.store.settings), now)
        return self._registry[0]

    # -- writing --------------------------------------------------------------

    def seal(self, events: Sequence[EventRecord]) -> tuple[list[EventRecord], dict[str, list[Any]] | None]:
        """The events with their declared fields sealed, and their blind-index rows (or None).

        The rows are not written here: the append writes them in its own
        transaction and statement (core/store/append.py), so an entry exists
        exactly when its event does.
        """
        registry = self.registry()
        todo = []
        refs: dict[str, str] = {}  # subject -> ref, once per append (a batch is mostly one subject)
        for i, event in enumerate(events):
            pd = registry.declaration_of(event)
            subject = _subject_of(registry, pd, event) if pd is not None else None
            if pd is not None and subject is not None:
                ref = refs.get(subject)
                if ref is None:
                    ref = refs[subject] = subject_ref(self.ring, subject)
                todo.append((i, pd, ref))
        if not todo:
            return list(events), None
        # Blind-index entries first (they need the plain values, not the keys).
        blind: dict[str, list[Any]] = {"fields": [], "digests": [], "subject_refs": [], "event_ids": []}
        docs = []
        for i, pd, ref in todo:
            event = events[i]
            data = json.loads(dumps(event.event_data))
            meta = event.metadata.to_dict() if isinstance(event.metadata, EventMetadata) else {}
            meta = json.loads(dumps(meta))
            docs.append((data, meta))
            if not self.store.settings.blind_index:
                continue
            for path in pd.fields:
                root, steps = parse_path(path)
                field = f"{event.event_type}:{path}"
                for v in values_at(data if root == "data" else meta, steps):
                    if isinstance(v, str | int | float | bool) and not _sealed(v):
                        blind["fields"].append(field)
                        blind["digests"].append(blind_digest(self.ring, field, v))
                        blind["subject_refs"].append(ref)
                        blind["event_ids"].append(event.event_id)
        keys = self.keys.get({ref for _, _, ref in todo}, create=True)
        out = list(events)
        for (i, pd, ref), (data, meta) in zip(todo, docs, strict=True):
            event = events[i]
            key = keys[ref]
            assert key is not None
            for path in pd.fields:
                root, steps = parse_path(path)
                transform_at(data if root == "data" else meta, steps,
                             _sealer(key, ref, event.event_id, path))
            out[i] = replace(event, event_data=data, metadata=EventMetadata.from_dict(meta))
        return out, (blind if blind["fields"] else None)

    # -- reading --------------------------------------------------------------

    def open(self, record: EventRecord, in_data: bool = True, in_metadata: bool = True) -> EventRecord:
        """The record (just decoded, owned by the caller) with its sealed values opened in place."""
        meta = record.metadata.extra if in_metadata else None
        keys: dict[str, DataKey | None] = {}
        ad_head = str(record.event_id).encode() + b"\0"

        def open_value(value: str, path: str) -> Any:
            if not value.startswith(PREFIX):
                return FORGOTTEN if value == ANONYMIZED else value
            ref, _, body = value[len(PREFIX):].partition(":")
            if ref in keys:
                key = keys[ref]
            else:
                key = keys[ref] = self.keys.get({ref}, create=False)[ref]
            if key is None:
                return FORGOTTEN
            try:
                return key.open(body, ad_head + path.encode())
            except (InvalidTag, ValueError):
                return FORGOTTEN  # a key made after the forget, or a damaged value

        if in_data:
            _open_in_place(record.event_data, "data", open_value)
        if meta:
            _open_in_place(meta, "metadata", open_value)
        if in_metadata:  # a declared standard field (metadata.source, ...)
            for name in ("user_id", "correlation_id", "causation_id", "source"):
                value = getattr(record.metadata, name)
                if isinstance(value, str) and value.startswith(fieldcipher.MARK):
                    object.__setattr__(record.metadata, name, open_value(value, f"metadata.{name}"))
        return record


def _subject_of(registry: PrivacyRegistry, pd: Any, event: EventRecord) -> str | None:
    """``registry.subject_of(event)`` for the declaration ``pd`` already found, without
    re-reading the event for the two usual paths (the aggregate id, metadata.user_id)."""
    if pd.subject == "aggregate_id":
        value: Any = event.aggregate_id
    elif (pd.subject == "metadata.user_id" and isinstance(event.metadata, EventMetadata)
          and event.metadata.user_id is not None):  # (None: it may be in extra, as to_dict has it)
        value = event.metadata.user_id
    else:
        return registry.subject_of(event)
    if value is None or isinstance(value, dict | list) or value == "":
        return None
    return str(value)


def _sealer(key: DataKey, ref: str, event_id: Any, path: str) -> Any:
    def seal_value(value: Any) -> Any:
        return value if _sealed(value) else key.seal(ref, event_id, path, value)
    return seal_value


def _sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(fieldcipher.MARK)


def _collect(doc: Any, found: list[str]) -> None:
    if isinstance(doc, dict):
        for v in doc.values():
            _collect(v, found)
    elif isinstance(doc, list):
        for v in doc:
            _collect(v, found)
    elif _sealed(doc):
        found.append(doc)


def _open_in_place(doc: Any, path: str, fn: Any) -> None:
    if isinstance(doc, dict):
        for k, v in doc.items():
            if isinstance(v, str):
                if v.startswith(fieldcipher.MARK):
                    doc[k] = fn(v, f"{path}.{k}")
            elif isinstance(v, dict | list):
                _open_in_place(v, f"{path}.{k}", fn)
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            if isinstance(v, str):
                if v.startswith(fieldcipher.MARK):
                    doc[i] = fn(v, f"{path}[]")
            elif isinstance(v, dict | list):
                _open_in_place(v, f"{path}[]", fn)


def cipher_for(store: EventStore) -> PrivacyCipher:
    found = fieldcipher.cipher_of(store)
    if not isinstance(found, PrivacyCipher):
        raise ConfigurationError("the store has no privacy cipher")
    return found


def find_events(store: EventStore, event_type: str, field: str, value: Any) -> list[EventRecord]:
    """The events of ``event_type`` whose declared ``field`` equals ``value`` (blind index)."""
    ring = keyring(store.settings)
    name = f"{event_type}:{field}"
    with store.db.connection() as conn:
        ids = [r[0] for r in conn.execute(store.db.sql("privacy", "blind_lookup"),
                                          {"field": name, "digest": blind_digest(ring, name, value)})]
    if not ids:
        return []
    with store.db.connection() as conn:
        rows = conn.execute(store.db.sql("privacy", "events_by_id", columns=COLUMNS), {"ids": ids})
        events = [store.decode_row(row) for row in rows]
    # (a digest collision, or a stale entry, is filtered out by the value itself)
    return [e for e in events if any(v == value for v in _field_values(e, field))]


def _field_values(event: EventRecord, field: str) -> list[Any]:
    root, steps = parse_path(field)
    doc = event.event_data if root == "data" else event.metadata.to_dict()
    return list(values_at(doc, steps))


fieldcipher.install(PrivacyCipher)
