"""The rows of one period result as bytes, for a node to keep in its store's `period_results` table.

    data = [PERIOD_ROWS_FORMAT, period, version, [leaf, leaf, ...]]     (msgpack)

where each leaf is the SettledReading encoding (the Merkle leaf bytes) of one meter point, in MaLo-ID order.
With these bytes stored (`store.put_period_result(period, version, height, data)`), exporting any committed
period and version needs no replay of the chain.
"""

from __future__ import annotations

from typing import Iterable

import msgpack

from stromledger.cascade.messages import SettledReading
from stromledger.cascade.rows import MeterRow, leaf_bytes
from stromledger.codec import CodecError
from stromledger.registry import Registry

from .build import ExportError, as_meter_rows

PERIOD_ROWS_FORMAT = "stromledger/period-rows/1"
MAX_DATA_BYTES = 1 << 31


def encode_period_rows(period: int, version: int, rows: Iterable[MeterRow]) -> bytes:
    return msgpack.packb([PERIOD_ROWS_FORMAT, period, version, [leaf_bytes(period, r) for r in rows]],
                         use_bin_type=True)


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
