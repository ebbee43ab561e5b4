"""The rows of one period result as bytes, for a node to keep in its store's `period_results` table.

    data = [PERIOD_ROWS_FORMAT, period, version, [leaf, leaf, ...]]     (msgpack)

where each leaf is the SettledReading encoding (the Merkle leaf bytes) of one meter point, in MaLo-ID order.
With these bytes stored (`store.put_period_result(period, version, height, data)`), exporting any committed
period and version needs no replay of the chain.
"""

from __future__ import annotations

import sys
from array import array
from itertools import repeat
from operator import add, attrgetter, itemgetter
from typing import Iterable, Iterator

import msgpack

from stromledger.cascade.messages import SettledReading
from stromledger.cascade.rows import MeterRow, leaf_bytes
from stromledger.codec import CodecError
from stromledger.registry import Registry

from .build import ExportError
from .text import CHUNK

PERIOD_ROWS_FORMAT = "stromledger/period-rows/1"
MAX_DATA_BYTES = 1 << 31
new = tuple.__new__
_AFTER_PERIOD, _MALO, _KIND_SOURCE = itemgetter(slice(2, None)), itemgetter(2), attrgetter("kind", "source")


def encode_period_rows(period: int, version: int, rows: Iterable[MeterRow]) -> bytes:
    return encode_period_rows_indexed(period, version, rows)[0]


def encode_period_rows_indexed(period: int, version: int, rows: Iterable[MeterRow]) -> tuple[bytes, bytes]:
    """The period rows and their leaf index: where each leaf item (msgpack bin) starts, as little-endian u32,
    then where the last one ends, so one meter point's leaf is data[index[i]:index[i + 1]]."""
    pack = msgpack.Packer(use_bin_type=True).pack
    leaves = [pack(leaf_bytes(period, r)) for r in rows]
    head = b"".join((b"\x94", pack(PERIOD_ROWS_FORMAT), pack(period), pack(version), _array_header(len(leaves))))
    offsets = array("I", [0]) * (len(leaves) + 1)
    at = len(head)
    for i, item in enumerate(leaves):
        offsets[i] = at
        at += len(item)
    offsets[len(leaves)] = at
    if sys.byteorder != "little":  # pragma: no cover
        offsets.byteswap()
    return head + b"".join(leaves), offsets.tobytes()


def _array_header(n: int) -> bytes:
    packer = msgpack.Packer(use_bin_type=True)
    return packer.pack_array_header(n)


def decode_leaf_item(item: bytes) -> tuple:
    """The settled entry (rows.VER .. rows.RSIG) in one stored leaf item (see encode_period_rows_indexed)."""
    obj = msgpack.unpackb(msgpack.unpackb(item), raw=False, use_list=False)
    return (*obj[5:10], bool(obj[10]), *obj[11:14])


def decode_period_leaves(data: bytes) -> tuple[int, int, tuple[bytes, ...]]:
    """(period, version, leaf bytes) of the node's own stored period rows, the leaves undecoded (see
    `period_entries`); ExportError for bytes that are not this format."""
    try:
        fmt, period, version, leaves = msgpack.unpackb(data, raw=False, use_list=False, max_bin_len=MAX_DATA_BYTES,
                                                       max_map_len=0, max_ext_len=0)
        if fmt != PERIOD_ROWS_FORMAT:
            raise ValueError("not period rows")
    except (ValueError, TypeError, msgpack.ExtraData) as e:
        raise ExportError(f"stored period rows are malformed: {e}") from None
    return period, version, leaves


def period_entries(leaves: Iterable[bytes], order: Iterable[str]) -> Iterator[tuple]:
    """The settled entry (rows.VER .. rows.RSIG) of each stored leaf, checked to be the meter point `order`
    names at its place: the settled history a seal reads, one entry at a time."""
    unpack = msgpack.unpackb
    try:
        for leaf, malo in zip(leaves, order, strict=True):
            obj = unpack(leaf, raw=False, use_list=False)
            if obj[2] != malo:
                raise ValueError(f"a leaf of {obj[2]!r} where the registry has {malo!r}")
            yield (*obj[5:10], bool(obj[10]), *obj[11:14])
    except (ValueError, TypeError, IndexError, msgpack.ExtraData) as e:
        raise ExportError(f"stored period rows are malformed: {e}") from None


def is_period_rows(data: bytes) -> bool:
    """Whether `data` is in this format (a store may hold other derived bytes in the same table)."""
    head = msgpack.packb(PERIOD_ROWS_FORMAT, use_bin_type=True)
    return len(data) > 1 + len(head) and data[1:1 + len(head)] == head


class PeriodRows(list):
    """The MeterRows of a node's own stored period rows, with the stored leaf bytes they were decoded from
    (`leaves`, the sealed Merkle leaves if the rows are what was sealed): `build_export` hashes these for the
    Merkle root instead of re-encoding every row, and refuses them if the root differs from the sealed one."""

    __slots__ = ("leaves",)

    def __init__(self, rows: Iterable[MeterRow], leaves: list[bytes]):
        super().__init__(rows)
        self.leaves = leaves


def kind_source(registry: Registry) -> list[tuple[str, str]]:
    """(kind, source) of every meter point in MaLo-ID order, made once per registry version and kept with it
    (one shared tuple per distinct pair: 8 bytes per meter point)."""
    cached = registry.__dict__.get("_kind_source")
    if cached is None:
        shared: dict[tuple[str, str], tuple[str, str]] = {}
        pairs = list(map(_KIND_SOURCE, map(registry.meter_points.__getitem__, registry.malo_order)))
        cached = list(map(shared.setdefault, pairs, pairs))
        registry.__dict__["_kind_source"] = cached
    return cached


def decode_period_rows(registry: Registry, data: bytes) -> tuple[int, int, PeriodRows]:
    """(period, version, rows). Raises ExportError for bytes that are not this format.

    The node's own rows: each leaf is decoded without the strict decoder's field-by-field checks and
    canonical re-encode. `build_export` refuses rows whose leaves do not give the sealed Merkle root, and
    sealed leaves are canonical SettledReadings (the seal builder encodes them), so rows that pass that check
    are exactly the sealed ones; rows that do not pass it are never exported."""
    period, version, rows = stored_period_rows(registry, data)
    return period, version, rows.decoded()


def stored_period_rows(registry: Registry, data: bytes) -> tuple[int, int, StoredRows]:
    """(period, version, rows) as `decode_period_rows`, the rows decoded only when they are read, a chunk at
    a time (StoredRows.chunks): an export formats, checks and writes each chunk in one pass."""
    try:
        obj = msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=True, max_bin_len=MAX_DATA_BYTES,
                              max_map_len=0, max_ext_len=0)
        fmt, period, version, leaves = obj
        if fmt != PERIOD_ROWS_FORMAT or type(period) is not int or type(version) is not int:
            raise ValueError("not period rows")
        leaves = list(leaves)
        if not set(map(type, leaves)) <= {bytes}:
            raise ValueError("a stored leaf is not bytes")
    except (ValueError, TypeError, CodecError, msgpack.ExtraData) as e:
        raise ExportError(f"stored period rows are malformed: {e}") from None
    return period, version, StoredRows(registry, period, leaves)


class StoredRows:
    """The rows of a node's own stored period result, kept as their leaf bytes (`leaves`, the sealed Merkle
    leaves if the rows are what was sealed) and decoded a chunk at a time when read (`chunks`), or whole
    (`decoded`). An export never holds a MeterRow per meter point: each chunk's rows are formatted, checked
    against the sealed result and dropped (at 1M meter points about a gigabyte of objects less, allocated
    and freed)."""

    __slots__ = ("registry", "period", "leaves")

    def __init__(self, registry: Registry, period: int, leaves: list[bytes]):
        self.registry, self.period, self.leaves = registry, period, leaves

    def __len__(self) -> int:
        return len(self.leaves)

    def chunks(self) -> Iterator[tuple[int, list[MeterRow]]]:
        """(index of the first, rows) of every CHUNK rows, in order."""
        for at in range(0, len(self.leaves), CHUNK):
            yield at, _decode_chunk(self.registry, self.period, self.leaves, at)

    def decoded(self) -> PeriodRows:
        rows: list[MeterRow] = []
        for _, part in self.chunks():
            rows += part
        return PeriodRows(rows, self.leaves)


def _decode_chunk(registry: Registry, period: int, leaves: list[bytes], at: int) -> list[MeterRow]:
    """The MeterRows of leaves[at:at + CHUNK]."""
    try:
        # A few thousand leaves in one call: an array header before them (each leaf is one msgpack item).
        part = leaves[at:at + CHUNK]
        items = msgpack.unpackb(_array_header(len(part)) + b"".join(part), raw=False, use_list=False,
                                strict_map_key=True, max_bin_len=MAX_DATA_BYTES, max_map_len=0, max_ext_len=0)
        if len(items) != len(part) or set(map(type, items)) - {tuple} or set(map(len, items)) - {14} or \
                set(map(itemgetter(0), items)) - {SettledReading.TAG}:
            raise ValueError("a stored leaf is not a SettledReading")
        periods = set(map(itemgetter(1), items)) - {period}
        if periods:
            raise ExportError(f"a leaf of period {min(periods)} among the rows of period {period}")
        # MeterRow(*item[2:], mp.kind, mp.source) for each item, in C loops (map) rather than bytecode; the
        # (kind, source) of the registry's meter points in MaLo-ID order are kept with the registry version
        if tuple(map(_MALO, items)) == registry.malo_order[at:at + len(part)]:
            kinds = kind_source(registry)[at:at + len(part)]
        else:  # not the registry's order (the export refuses it), or a meter point it does not have
            try:
                kinds = list(map(_KIND_SOURCE, map(registry.meter_points.__getitem__, map(_MALO, items))))
            except KeyError as e:
                raise ExportError(f"{e.args[0]} is not in the registry") from None
        return list(map(new, repeat(MeterRow), map(add, map(_AFTER_PERIOD, items), kinds)))
    except ExportError:
        raise
    except (ValueError, TypeError, CodecError, msgpack.ExtraData) as e:
        raise ExportError(f"stored period rows are malformed: {e}") from None
