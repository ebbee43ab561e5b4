"""Byte-exact text helpers shared by the export builder and its verifier: CSV, canonical JSON, integers.

Everything an export contains is ASCII or UTF-8 text with LF line endings and integers written in plain
decimal (no plus sign, no leading zeros, no thousands separators), so that two nodes write the same bytes and a
verifier can insist on exactly those bytes.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any, Iterable, Sequence

_INT = re.compile(r"0|-?[1-9][0-9]*")
_HEX = re.compile(r"(?:[0-9a-f]{2})*")


class FormatError(ValueError):
    """Text that is not in the export's exact format. The message says what is wrong; callers add where."""


# -- many lines into one file ----------------------------------------------------------------------------------


CHUNK = 4096  # lines formatted, joined and encoded at a time by the export's fast paths


# -- CSV ---------------------------------------------------------------------------------------------------


def csv_bytes(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """A header line and one line per row; values are str or int; LF line endings, minimal quoting."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in rows:
        w.writerow(row)
    return buf.getvalue().encode("utf-8")


def csv_lines(data: bytes, columns: Sequence[str]) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every data line, after checking the header. Raises FormatError naming the
    line for anything that is not strict UTF-8 CSV with the expected columns."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"not UTF-8 (byte {e.start})") from None
    if "\r" in text:
        raise FormatError(f"line {text[:text.index(chr(13))].count(chr(10)) + 1}: CR character (lines end in LF)")
    if text and not text.endswith("\n"):
        raise FormatError("the last line does not end in LF")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    out = []
    try:
        header = next(reader, None)
        if header != list(columns):
            raise FormatError(f"line 1: the header must be {','.join(columns)}")
        for cells in reader:
            if len(cells) != len(columns):
                raise FormatError(f"line {reader.line_num}: {len(cells)} columns, expected {len(columns)}")
            out.append((reader.line_num, cells))
    except csv.Error as e:
        raise FormatError(f"line {reader.line_num}: {e}") from None
    return out


def parse_int(text: str, what: str, lo: int | None = 0, hi: int | None = 2**64 - 1) -> int:
    if not _INT.fullmatch(text):
        raise FormatError(f"{what}: {text!r} is not an integer in plain decimal")
    value = int(text)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise FormatError(f"{what}: {value} is out of range")
    return value


def parse_hex(text: str, what: str, length: int | None = None) -> bytes:
    if not _HEX.fullmatch(text) or (length is not None and len(text) != 2 * length):
        size = f"{2 * length} " if length is not None else ""
        raise FormatError(f"{what}: {text[:20]!r} is not {size}lowercase hex")
    return bytes.fromhex(text)


# -- JSON --------------------------------------------------------------------------------------------------


def json_line(obj: Any) -> str:
    """Compact canonical JSON: sorted keys, no spaces, UTF-8 (not \\u escapes)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def json_document(obj: Any) -> bytes:
    """Canonical JSON for people to read too: sorted keys, two-space indent, fixed separators, final LF."""
    text = json.dumps(obj, sort_keys=True, indent=2, separators=(",", ": "), ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise FormatError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _no_constant(name: str) -> Any:
    raise FormatError(f"{name} is not allowed")


def parse_json(text: str) -> Any:
    """Strict JSON: duplicate keys, NaN and Infinity are refused; floats are refused too (integers only)."""
    def no_float(s: str) -> Any:
        raise FormatError(f"{s} is not an integer")

    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant, parse_float=no_float)
    except json.JSONDecodeError as e:
        raise FormatError(f"not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None


# -- energy ------------------------------------------------------------------------------------------------


def kwh(wh: int) -> str:
    """Whole Wh as kWh with exactly three decimals, by integer arithmetic: 1234 -> '1.234', 5 -> '0.005'."""
    if type(wh) is not int or wh < 0:
        raise ValueError(f"kWh are written for non-negative integer Wh, got {wh!r}")
    return f"{wh // 1000}.{wh % 1000:03d}"


def parse_kwh(text: str) -> int:
    """The inverse of `kwh`: '1.234' -> 1234 Wh. Only the exact form kwh() writes is accepted."""
    m = re.fullmatch(r"(0|[1-9][0-9]*)\.([0-9]{3})", text)
    if not m:
        raise FormatError(f"{text!r} is not kWh with exactly three decimals")
    return int(m.group(1)) * 1000 + int(m.group(2))
