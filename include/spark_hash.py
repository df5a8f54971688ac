"""Spark's `xxhash64` for strings, so a job's hashed codes are the same on DuckDB as on Spark.

Spark hashes a string's UTF-8 bytes with XXH64 and seed 42 and returns the 64 bits signed.
DuckDB has no XXH64; this is the algorithm as its specification gives it, in plain Python,
with a cache: feature jobs hash categories (airports, carriers), a few distinct values.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

SPARK_SEED = 42
_MASK = (1 << 64) - 1
_P1, _P2, _P3 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9
_P4, _P5 = 0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (64 - bits))) & _MASK


def _round(acc: int, lane: int) -> int:
    return (_rotl((acc + lane * _P2) & _MASK, 31) * _P1) & _MASK


def _merge(acc: int, value: int) -> int:
    return ((acc ^ _round(0, value)) * _P1 + _P4) & _MASK


def xxh64(data: bytes, seed: int = SPARK_SEED) -> int:
    """XXH64 of `data` as an unsigned 64-bit integer."""
    length, offset = len(data), 0
    if length >= 32:
        accs = [(seed + _P1 + _P2) & _MASK, (seed + _P2) & _MASK, seed & _MASK, (seed - _P1) & _MASK]
        while offset + 32 <= length:
            for i in range(4):
                accs[i] = _round(accs[i], int.from_bytes(data[offset + 8 * i:offset + 8 * i + 8], "little"))
            offset += 32
        acc = (_rotl(accs[0], 1) + _rotl(accs[1], 7) + _rotl(accs[2], 12) + _rotl(accs[3], 18)) & _MASK
        for lane in accs:
            acc = _merge(acc, lane)
    else:
        acc = (seed + _P5) & _MASK
    acc = (acc + length) & _MASK
    while offset + 8 <= length:
        acc ^= _round(0, int.from_bytes(data[offset:offset + 8], "little"))
        acc = (_rotl(acc, 27) * _P1 + _P4) & _MASK
        offset += 8
    if offset + 4 <= length:
        acc ^= (int.from_bytes(data[offset:offset + 4], "little") * _P1) & _MASK
        acc = (_rotl(acc, 23) * _P2 + _P3) & _MASK
        offset += 4
    while offset < length:
        acc ^= (data[offset] * _P5) & _MASK
        acc = (_rotl(acc, 11) * _P1) & _MASK
        offset += 1
    acc ^= acc >> 33
    acc = (acc * _P2) & _MASK
    acc ^= acc >> 29
    acc = (acc * _P3) & _MASK
    return acc ^ (acc >> 32)


@lru_cache(maxsize=65_536)
def spark_xxhash64(text: str) -> int:
    """Spark's `xxhash64(<string>)`: XXH64 of the UTF-8 bytes, seed 42, as a signed 64-bit integer."""
    value = xxh64(text.encode("utf-8"))
    return value - (1 << 64) if value >= 1 << 63 else value


def xxhash64_strings(texts: Any) -> Any:
    """A DuckDB Arrow function: Spark's hash of each string; a null hashes to the seed, as in Spark."""
    import pyarrow as pa

    return pa.array([SPARK_SEED if t is None else spark_xxhash64(t) for t in texts.to_pylist()], pa.int64())
