"""The codec registry: none, gzip, lz4, zstd."""

from __future__ import annotations

import os

import pytest
from evstore.core import codecs

from evstore import CodecError

PAYLOADS = [b"", b"x", b'{"email":"a@example.com"}' * 400, os.urandom(5000)]


@pytest.mark.parametrize("name", ["none", "gzip", "lz4", "zstd"])
def test_round_trip(name: str) -> None:
    for data in PAYLOADS:
        packed = codecs.compress(name, data)
        assert codecs.decompress(name, packed) == data
    repetitive = PAYLOADS[2]
    packed = codecs.compress(name, repetitive)
    assert (len(packed) < len(repetitive) / 10) == (name != "none")


def test_registry_lists_the_codecs() -> None:
    assert {"none", "gzip", "lz4", "zstd"} <= set(codecs.available_codecs())


def test_compression_is_deterministic() -> None:
    # Same bytes in, same bytes out: archive checksums depend on it
    for name in ("gzip", "lz4", "zstd"):
        assert codecs.compress(name, PAYLOADS[2]) == codecs.compress(name, PAYLOADS[2])


def test_unknown_codec() -> None:
    with pytest.raises(CodecError, match=r"unknown compression codec 'brotli' \(known: gzip, lz4"):
        codecs.get_codec("brotli")


@pytest.mark.parametrize("name", ["gzip", "lz4", "zstd"])
def test_corrupt_data_raises_codec_error(name: str) -> None:
    with pytest.raises(CodecError, match=f"cannot decompress {name} data"):
        codecs.decompress(name, b"definitely not " + name.encode())


def test_register_a_codec() -> None:
    def factory() -> codecs.Codec:
        return codecs.Codec("rev", lambda b: b[::-1], lambda b: b[::-1])

    codecs.register_codec("test-reverse", factory)
    try:
        assert codecs.compress("test-reverse", b"abc") == b"cba"
        assert codecs.decompress("test-reverse", b"cba") == b"abc"
    finally:
        codecs._FACTORIES.pop("test-reverse", None)
        codecs._CACHE.pop("test-reverse", None)
