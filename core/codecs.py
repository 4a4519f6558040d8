"""One registry of compression codecs: none, gzip, lz4 and zstd.

Snapshots, archive segments and (when EVENT_STORE_COMPRESSION is on) large
event payloads all go through :func:`get_codec`, so a byte string written with
one codec name is always read back with the same one.
"""

from __future__ import annotations

import gzip
import importlib
import io
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import CodecError


@dataclass(frozen=True)
class Codec:
    name: str
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes]


def _identity(data: bytes) -> bytes:
    return data


def _gzip() -> Codec:
    return Codec("gzip", lambda b: gzip.compress(b, compresslevel=6, mtime=0), gzip.decompress)


def _lz4() -> Codec:
    frame = _import("lz4.frame", "lz4")
    return Codec("lz4", frame.compress, frame.decompress)


def _zstd() -> Codec:
    zstandard = _import("zstandard", "zstandard")
    # zstandard's compressor and decompressor objects are not thread-safe
    # (concurrent use corrupts data or crashes): one of each per thread.
    local = threading.local()

    def compress(data: bytes) -> bytes:
        compressor = getattr(local, "compressor", None)
        if compressor is None:
            compressor = local.compressor = zstandard.ZstdCompressor(level=3)
        out: bytes = compressor.compress(data)
        return out

    def decompress(data: bytes) -> bytes:
        decompressor = getattr(local, "decompressor", None)
        if decompressor is None:
            decompressor = local.decompressor = zstandard.ZstdDecompressor()
        # Frames written by compress() carry their size; streamed frames may not.
        out: bytes = decompressor.decompressobj().decompress(data)
        return out

    return Codec("zstd", compress, decompress)


def _import(module: str, package: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise CodecError(
            f"codec needs the '{package}' package: pip install {package}"
        ) from exc


_FACTORIES: dict[str, Callable[[], Codec]] = {
    "none": lambda: Codec("none", _identity, _identity),
    "gzip": _gzip,
    "lz4": _lz4,
    "zstd": _zstd,
}
_CACHE: dict[str, Codec] = {}


def available_codecs() -> list[str]:
    return sorted(_FACTORIES)


def register_codec(name: str, factory: Callable[[], Codec]) -> None:
    """Add a codec under ``name`` (a later registration replaces an earlier one)."""
    _FACTORIES[name] = factory
    _CACHE.pop(name, None)


def get_codec(name: str) -> Codec:
    codec = _CACHE.get(name)
    if codec is None:
        factory = _FACTORIES.get(name)
        if factory is None:
            raise CodecError(
                f"unknown compression codec {name!r} (known: {', '.join(available_codecs())})"
            )
        codec = _CACHE[name] = factory()
    return codec


def compress(name: str, data: bytes) -> bytes:
    return get_codec(name).compress(data)


def decompress(name: str, data: bytes, limit: int | None = None) -> bytes:
    """``data`` decompressed; with ``limit``, refused (CodecError) past that many bytes.

    The bounded form never holds more than ``limit + 1`` bytes of output, so a
    small crafted input that would decompress to gigabytes costs nothing.
    """
    try:
        if limit is None:
            return get_codec(name).decompress(data)
        out = _bounded(name, data, limit)
    except CodecError:
        raise
    except Exception as exc:  # each library raises its own class for corrupt input
        raise CodecError(f"cannot decompress {name} data: {exc}") from exc
    if len(out) > limit:
        raise CodecError(f"{name} data decompresses to more than the {limit:,} bytes expected")
    return out


def _bounded(name: str, data: bytes, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of ``data`` decompressed (one more tells it is too big)."""
    if name == "none":
        return data
    if name == "gzip":
        return zlib.decompressobj(wbits=31).decompress(data, limit + 1)
    if name == "lz4":
        frame = _import("lz4.frame", "lz4")
        out: bytes = frame.LZ4FrameDecompressor().decompress(data, max_length=limit + 1)
        return out
    if name == "zstd":
        zstandard = _import("zstandard", "zstandard")
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
        chunks, size = [], 0
        while size <= limit:
            chunk = reader.read(min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    out = get_codec(name).decompress(data)  # a registered codec: no streaming form known
    return out
