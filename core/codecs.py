"""One registry of compression codecs: none, gzip, lz4 and zstd.

Snapshots, archive segments and (when EVENT_STORE_COMPRESSION is on) large
event payloads all go through :func:`get_codec`, so a byte string written with
one codec name is always read back with the same one.
"""

from __future__ import annotations

import gzip
import importlib
import threading
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


def decompress(name: str, data: bytes) -> bytes:
    try:
        return get_codec(name).decompress(data)
    except CodecError:
        raise
    except Exception as exc:  # each library raises its own class for corrupt input
        raise CodecError(f"cannot decompress {name} data: {exc}") from exc
