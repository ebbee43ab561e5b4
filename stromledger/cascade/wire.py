"""A fast decoder for the hot shape of a submitted batch: readings only, every field in its common form.

`Batch.decode` (stromledger/codec.py) is the reference: schema-guided, field by field, then a full
re-encode to prove the bytes canonical. On a batch of readings that is about 4 µs of GIL-held Python per
reading. This module proves the same thing with one compiled regular expression instead: the pattern
below matches exactly the canonical encodings of a Reading whose fields take their common form
(MaLo-ID a fixstr of at most 11 bytes, each integer in msgpack's smallest encoding, the bool, a bin8 key
of 32 and a bin8 signature of 64 bytes). The batch's readings must tile the readings region exactly,
match after match, so every byte is accounted for; only then is the region handed to msgpack's C
unpacker, which by then can build nothing but `n` arrays of 9 scalars (no crafted headers can turn into
millions of objects).

The fast path never decides a refusal: any batch it does not recognise (schedules, registry changes, an
empty batch, a long string, a non-canonical integer, bad UTF-8, ...) returns None, and the caller decodes
it with the strict codec, which gives the reference verdict and error. Whatever the fast path accepts
decodes to the same Batch as `Batch.decode`, and encodes back to the same bytes (tests/cascade/test_wire.py
checks both on valid and mutated batches).

It also returns each reading's canonical bytes inside the batch (a nested message: its 8 fields without
the tag). A reading's signed body is `[TAG, fields without sig]`: the same array header (8 elements), the
tag, then those bytes without the header and the trailing signature, so no reading is encoded again.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Optional

import msgpack

from .messages import MAX_BATCH_READINGS, Batch, Reading

# Canonical unsigned integers (msgpack-python's packb picks the smallest form, so a wider form of a value
# that fits a narrower one is non-canonical): positive fixint, uint8 >= 0x80, uint16 >= 0x100,
# uint32 >= 0x10000, uint64 >= 0x100000000.
_U16 = rb"(?:[\x00-\x7f]|\xcc[\x80-\xff]|\xcd[\x01-\xff].)"
_U64 = rb"(?:[\x00-\x7f]|\xcc[\x80-\xff]|\xcd[\x01-\xff].|\xce(?!\x00\x00)....|\xcf(?!\x00\x00\x00\x00)........)"
# Str(11) as a fixstr of 0..11 bytes (so at most 11 characters; UTF-8 validity is checked by the unpacker)
_MALO = rb"(?:" + b"|".join(bytes([0xA0 + k]) + b"." * k for k in range(12)) + rb")"
_READING = re.compile(
    rb"\x98" + _MALO + _U64 + _U16 + rb"[\xc2\xc3]" + _U64 + _U64 + rb"\xc4\x20.{32}\xc4\x40.{64}", re.S)
_TAIL = b"\x90\x90\x90\xc4\x40"  # no schedules, changes or approved changes, then the signature (bin8 of 64)
_SIG_FIELD = 66  # 0xc4 0x40 + 64 bytes, the last field of a Reading and of a Batch


def _builder(cls: type) -> tuple[Callable[[list], list], Callable[[list], Any]]:
    """`lambda rows: [cls(*row) for row in rows]` and `lambda row: cls(*row)` for a frozen slots dataclass,
    without its `__init__` (which sets each field through `object.__setattr__`): each slot is set by its own
    descriptor, about half the cost. Only for values already checked; the objects are equal to those
    `cls(*row)` builds."""
    names = list(cls.__slots__)
    assert names == [f.name for f in dataclasses.fields(cls)] and not hasattr(cls, "__post_init__")
    args = ", ".join(f"a{i}" for i in range(len(names)))
    sets = "".join(f"\n        s{i}(o, a{i})" for i in range(len(names)))
    src = (f"def build(rows, new=object.__new__, cls=cls, {', '.join(f's{i}=s[{i}]' for i in range(len(names)))}):"
           f"\n    out = []\n    add = out.append\n    for {args} in rows:\n        o = new(cls){sets}"
           f"\n        add(o)\n    return out\n")
    src += (f"def one(row, new=object.__new__, cls=cls, {', '.join(f's{i}=s[{i}]' for i in range(len(names)))}):"
            f"\n    {args}, = row\n    o = new(cls){sets.replace(chr(10) + '    ', chr(10))}\n    return o\n")
    scope = {"cls": cls, "s": [getattr(cls, n).__set__ for n in names]}
    exec(src, scope)
    return scope["build"], scope["one"]


_readings, build_reading = _builder(Reading)


def _header(data: bytes) -> Optional[tuple[int, int]]:
    """(number of readings, offset of the first) of a canonical readings-only batch, or None."""
    if len(data) < 4 + 34 + 1 + len(_TAIL) + 64 or data[0] != 0x98 or data[1] != 0x03:
        return None
    h = data[2]
    if 0xA0 <= h <= 0xBF:  # chain id: fixstr, or str8 when 32 bytes or more (at most 64 characters,
        at = 3 + (h - 0xA0)  # so at most 256 bytes of UTF-8: str8 covers it)
    elif h == 0xD9 and data[3] >= 32:
        at = 4 + data[3]
    else:
        return None
    if data[at:at + 2] != b"\xc4\x20":  # submitter
        return None
    at += 34
    if at + 5 > len(data):
        return None
    h = data[at]
    if 0x91 <= h <= 0x9F:
        return h - 0x90, at + 1
    if h == 0xDC:
        n = int.from_bytes(data[at + 1:at + 3], "big")
        return (n, at + 3) if n >= 16 else None
    if h == 0xDD:
        n = int.from_bytes(data[at + 1:at + 5], "big")
        return (n, at + 5) if 0x10000 <= n <= MAX_BATCH_READINGS else None
    return None


def fast_decode_rows(data: bytes) -> Optional[tuple[str, bytes, list[list], bytes, list[bytes]]]:
    """`fast_decode_batch` without building the readings: (chain id, submitter, each reading's 8 checked
    values, batch signature, each reading's canonical bytes), or None. `build_reading(row)` makes the
    Reading (`check_batch` does that on its worker threads, next to each signature check)."""
    head = _header(data)
    if head is None:
        return None
    n, start = head
    end = len(data) - len(_TAIL) - 64
    if end < start or data[end:end + len(_TAIL)] != _TAIL:
        return None
    raws = _READING.findall(data, start, end)
    # disjoint matches inside [start, end) whose lengths add up to end - start leave no byte unmatched
    if len(raws) != n or sum(map(len, raws)) != end - start:
        return None
    try:
        wire = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True, max_map_len=0,
                               max_ext_len=0)
    except (ValueError, msgpack.UnpackException):  # e.g. a string that is no UTF-8: the strict codec says so
        return None
    chain_id, submitter, items, _, _, _, sig = wire[1:]
    if type(chain_id) is not str or len(chain_id) > 64:
        return None
    return chain_id, submitter, items, sig, raws


def fast_decode_batch(data: bytes) -> Optional[tuple[Batch, list[bytes]]]:
    """(batch, each reading's canonical bytes) if `data` is a canonical readings-only batch of the common
    shape, else None: then `Batch.decode` decides. Never accepts what `Batch.decode` refuses."""
    got = fast_decode_rows(data)
    if got is None:
        return None
    chain_id, submitter, rows, sig, raws = got
    return Batch(chain_id, submitter, tuple(_readings(rows)), (), (), (), sig), raws


def reading_body(raw: bytes) -> bytes:
    """The signed body of a reading from its canonical bytes (`Reading.body()` without encoding again)."""
    return b"\x98\x01" + raw[1:-_SIG_FIELD]
