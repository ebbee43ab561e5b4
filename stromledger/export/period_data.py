"""The rows of one period result as bytes, for a node to keep in its store's `period_results` table.

    data = [PERIOD_ROWS_FORMAT, period, version, [leaf, leaf, ...]]     (msgpack)

where each leaf is the SettledReading encoding (the Merkle leaf bytes) of one meter point, in MaLo-ID order.
With these bytes stored (`store.put_period_result(period, version, height, data)`), exporting any committed
period and version needs no replay of the chain.
"""

from __future__ import annotations

import sys
from array import array
from typing import Iterable, Iterator

import msgpack

from stromledger.cascade.messages import SettledReading
from stromledger.cascade.rows import MeterRow, leaf_bytes
from stromledger.codec import CodecError
from stromledger.registry import Registry

from .build import ExportError, as_meter_rows

PERIOD_ROWS_FORMAT = "stromledger/period-rows/1"
MAX_DATA_BYTES = 1 << 31


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


def decode_period_rows(registry: Registry, data: bytes) -> tuple[int, int, list[MeterRow]]:
    """(period, version, rows). Raises ExportError for bytes that are not this format."""
    try:
        obj = msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=True, max_bin_len=MAX_DATA_BYTES,
                              max_map_len=0, max_ext_len=0)
        fmt, period, version, leaves = obj
        if fmt != PERIOD_ROWS_FORMAT or type(period) is not int or type(version) is not int:
            raise ValueError("not period rows")
        decoded = [_leaf(leaf) for leaf in leaves]
    except (ValueError, TypeError, CodecError, msgpack.ExtraData) as e:
        raise ExportError(f"stored period rows are malformed: {e}") from None
    return period, version, as_meter_rows(registry, period, decoded)


def _leaf(data: bytes) -> SettledReading:
    """A stored leaf, type-checked field by field. The canonical re-encode check of the strict decoder is
    left out: these rows are the node's own, and build_export refuses rows that do not recompute the sealed
    Merkle root, which re-encodes every leaf anyway."""
    obj = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True, max_map_len=0, max_ext_len=0)
    if type(obj) is not list or not obj or obj[0] != SettledReading.TAG:
        raise ValueError("a stored leaf is not a SettledReading")
    return SettledReading.from_wire(obj[1:])
