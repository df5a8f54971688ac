"""Kubernetes resource quantities ("500m", "4", "16Gi", "1e3") as exact numbers."""

from __future__ import annotations

from fractions import Fraction

_SUFFIXES = {
    "m": Fraction(1, 1000), "k": 1000, "K": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4, "P": 1000**5,
    "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "Pi": 1024**5,
}


def parse_quantity(text: str | int | float) -> Fraction:
    """The quantity as a number of base units (cores, bytes, devices)."""
    value = str(text).strip()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if value.endswith(suffix) and value[: -len(suffix)]:
            return Fraction(value[: -len(suffix)]) * _SUFFIXES[suffix]
    try:
        return Fraction(value)
    except ValueError:
        return Fraction(float(value))
