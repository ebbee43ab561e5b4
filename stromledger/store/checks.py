"""Argument checks shared by the store's tables: a wrong type here is a caller's bug, so it raises at once."""

from __future__ import annotations

from typing import Any

MAX_INT = 2**63 - 1  # SQLite's INTEGER is a signed 64-bit number


def uint(name: str, value: Any) -> int:
    """A non-negative int (IntEnum members welcome, bools not), returned as a plain int."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_INT:
        raise ValueError(f"{name} must be an int in 0..2**63-1, got {value!r}")
    return int(value)


def blob(name: str, value: Any) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes, got {type(value).__name__}")
    return bytes(value)


def hash32(name: str, value: Any) -> bytes:
    value = blob(name, value)
    if len(value) != 32:
        raise ValueError(f"{name} must be 32 bytes (a sha256 hash), got {len(value)}")
    return value


def kind(name: str, value: Any) -> str | int:
    """A caller-chosen label (str or int), stored and returned as given (enum members as their value)."""
    if isinstance(value, str):
        return str.__str__(value)  # the plain string, also for a str-valued enum member
    return uint(name, value)


def key(name: str, value: Any) -> bytes | str:
    if isinstance(value, str):
        return str.__str__(value)
    return blob(name, value)
