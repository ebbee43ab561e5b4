"""Saying precisely where a recomputed PeriodResult differs from the sealed one."""

from __future__ import annotations

from stromledger.cascade.messages import PeriodResult

COUNTS = ("meter_points", "measured", "substituted", "corrected", "missing")
# Tables of a result and the fields that identify one line of each.
KEYED = {"cells": ("area", "group"), "areas": ("area",), "groups": ("group",), "mix": ("group",)}


def _fields(msg) -> str:
    return " ".join(f"{k}={getattr(msg, k)}" for k in msg.__dataclass_fields__)


def _table_difference(name: str, sealed: tuple, got: tuple) -> str:
    keys = KEYED[name]
    a = {tuple(getattr(x, k) for k in keys): x for x in sealed}
    b = {tuple(getattr(x, k) for k in keys): x for x in got}
    for key in sorted(a.keys() | b.keys()):
        label = f"{name[:-1] if name != 'mix' else 'mix of'} {'/'.join(key)}"
        if key not in b:
            return f"{label} is sealed ({_fields(a[key])}) but the rows give none"
        if key not in a:
            return f"the rows give {label} ({_fields(b[key])}) but the seal has none"
        if a[key] != b[key]:
            return f"{label}: sealed {_fields(a[key])}; the rows give {_fields(b[key])}"
    return f"{name} are in another order"


def result_difference(sealed: PeriodResult, got: PeriodResult) -> str | None:
    """None when equal; else which parts differ and, for the first, the sealed and recomputed values."""
    names = [n for n in PeriodResult.__dataclass_fields__ if getattr(sealed, n) != getattr(got, n)]
    if not names:
        return None
    first = next((n for n in names if n in COUNTS or n in KEYED), names[0])
    if first in KEYED:
        detail = _table_difference(first, getattr(sealed, first), getattr(got, first))
    elif first == "merkle_root":
        detail = f"sealed Merkle root {sealed.merkle_root.hex()}, the rows give {got.merkle_root.hex()}"
    elif first == "checks":
        detail = f"sealed {_fields(sealed.checks)}; the rows give {_fields(got.checks)}"
    else:
        detail = f"sealed {first}={getattr(sealed, first)!r}, the rows give {getattr(got, first)!r}"
    return f"differs in {', '.join(names)}; {detail}"
