"""Errors carry ids, not data: the text of an exception as the job engine stores and logs it.

An exception raised while handling an event often quotes the event:
``ValueError: invalid literal for int() with base 10: 'ada@example.com'``.
What the engine keeps of it (``job_errors``, ``job_batches.last_error``, the
worker's log, Dramatiq's retry and dead-letter copies) outlives any erasure
of the event, so it keeps only:

- the exception's type;
- its message with every quoted literal (``'...'``, ``"..."``), every value of
  the event being handled (when the caller knows it), e-mail addresses, and
  URLs reduced to ``scheme://host:port`` (no credentials, path or query)
  replaced by ``<redacted>``;
- the ids the engine adds itself (job, batch, event id, stream, position,
  handler name), which are not scrubbed.

A traceback keeps its frames (file, line, function, source line: code, not
data) and the scrubbed ``Type: message`` of each exception in its chain.
Over-scrubbing (an unquoted word that happens to equal a value) is the
accepted cost.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from evstore.core.db import redact
from evstore.core.errors import ConfigurationError, InvalidJobError

REDACTED = "<redacted>"
TRACEBACK_LIMIT = 4000
MIN_VALUE_LENGTH = 3  # shorter values ("a", "1") would blank out ordinary words
_NAMES_ONLY = (InvalidJobError, ConfigurationError)

_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")
_EMAIL = re.compile(r"[^\s@'\"<>()\[\],;:]+@[^\s@'\"<>()\[\],;:/]+\.[A-Za-z]{2,}")
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def _host_only(match: re.Match[str]) -> str:
    url = match.group(0)
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return REDACTED
    return f"{parts.scheme}://{host}{port}" if host else f"{parts.scheme}://{REDACTED}"


def without_urls(text: str) -> str:
    """Every URL in ``text`` reduced to ``scheme://host:port`` (then redacted once more)."""
    return str(redact(_URL.sub(_host_only, text)))


def leaf_values(*documents: Any) -> Iterator[str]:
    """The scalar values (as text) of JSON-like documents: an event's data and metadata."""
    stack = list(documents)
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, str) or (isinstance(item, (int, float)) and not isinstance(item, bool)):
            text = str(item)
            if len(text) >= MIN_VALUE_LENGTH:
                yield text


def scrub(text: str, values: Iterable[Any] = (), *, quoted: bool = True) -> str:
    """``text`` without quoted literals (unless ``quoted`` is False), ``values``,
    e-mail addresses or URL secrets."""
    text = without_urls(text)
    if quoted:
        text = _QUOTED.sub(REDACTED, text)
    for value in sorted({str(v) for v in values if len(str(v)) >= MIN_VALUE_LENGTH},
                        key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return _EMAIL.sub(REDACTED, text)


def safe_error(exc: BaseException, values: Iterable[Any] = ()) -> str:
    """``Type: scrubbed first line of the message`` (or the type alone).

    An exception marked ``evstore_safe_message`` (composed by evstore from
    already-scrubbed parts and ids) keeps its message as it is. evstore's
    job and configuration errors quote names from job parameters and settings
    (a kind, a handler, a class), never event data: their quotes are kept.
    """
    kept = getattr(exc, "evstore_error", None)
    if isinstance(kept, str):
        return kept
    lines = str(exc).strip().splitlines()
    message = lines[0] if lines else ""
    if message and not getattr(exc, "evstore_safe_message", False):
        message = scrub(message, values, quoted=not isinstance(exc, _NAMES_ONLY))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def safe_traceback(exc: BaseException, values: Iterable[Any] = ()) -> str:
    """The frames of ``exc`` and its causes, each exception's line scrubbed."""
    values = list(values)
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    parts: list[str] = []
    for link in reversed(chain):
        if parts:
            parts.append("\nThe above exception led to:\n\n")
        frames = traceback.extract_tb(link.__traceback__, limit=12)
        if frames:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_list(frames))
        parts.append(safe_error(link, values) + "\n")
    return "".join(parts)[-TRACEBACK_LIMIT:]
