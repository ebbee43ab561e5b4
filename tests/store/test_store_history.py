"""The store's settled-history tables: point reads of one meter point's leaf through the period index,
batch progress, and the operator's pruning."""

from __future__ import annotations

import msgpack
import pytest

from stromledger.cascade.history import Columns, Layout
from stromledger.crypto import sha256
from stromledger.export.period_data import encode_period_rows_indexed
from stromledger.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "ledger.sqlite3")
    yield s
    s.close()


def _rows(n: int, seed: int):
    """Fake rows: MeterRow-shaped tuples (the first 12 fields are packed into the leaf)."""
    return [(f"m{i:04d}", "area", "group", 1, 1, seed * 1000 + i, 2**40 + i, 1, False, i, i, bytes([i % 256]) * 64,
             "consumer", "grid") for i in range(n)]


def _commit(store, height: int) -> None:
    store.put_commit(height, 0, b"v%d" % height, sha256(b"v%d" % height), b"cert", 0)


def test_one_leaf_is_read_without_the_period(store):
    _commit(store, 10)
    data, index = encode_period_rows_indexed(7, 2, _rows(300, 7))
    store.put_period_result(7, 2, 10, data)
    store.put_period_index(7, 2, index)
    for position in (0, 1, 150, 299):
        leaf = msgpack.unpackb(msgpack.unpackb(store.period_leaf(7, 2, position)))
        assert leaf[2] == f"m{position:04d}" and leaf[7] == 7000 + position
    assert store.period_leaf(7, 2, 300) is None  # past the last meter point
    assert store.period_leaf(7, 2, -1) is None
    assert store.period_leaf(7, 1, 0) is None  # a version without rows
    assert store.latest_versions(0, 100) == {7: 2}


def test_batch_progress_and_pruning(store):
    for h in (1, 5, 9):
        _commit(store, h)
        store.put_period_result(h, 1, h, b"rows %d" % h)
        store.put_period_index(h, 1, b"\x00" * 8)
    for tag, periods, settled in ((b"old", [1], True), (b"spans", [1, 9], True), (b"open", [1], False)):
        data = b"batch " + tag
        store.put_batch(sha256(data), data, 0, periods)
        if settled:
            store.mark_settled([sha256(data)], 9)
    store.put_batch_progress([(sha256(b"batch old"), 1, 1), (sha256(b"batch spans"), 9, 9)])
    assert store.batch_progress(sha256(b"batch old")) == (1, 1) and store.batch_progress(bytes(32)) is None
    deleted = store.prune_history(5)
    assert deleted == {"period_results": 1, "period_index": 1, "batch_progress": 1, "batches": 1}
    assert store.latest_version(1) is None and store.latest_version(5) == 1
    assert store.get_batch(sha256(b"batch old")) is None  # settled, and nothing of it at period 5 or later
    assert store.get_batch(sha256(b"batch spans")) is not None and store.get_batch(sha256(b"batch open"))
    assert store.prune_history(5) == {"period_results": 0, "period_index": 0, "batch_progress": 0, "batches": 0}


def test_columns_hold_every_entry_field():
    order = ("a", "b", "c")
    entries = {"a": (1, 1, 5, 0, 1, False, 5, 0, b"\x01" * 64), "b": (3, 4, 0, 0, 0, True, 0, 0, b""),
               "c": (2, 3, 2**63 + 1, 7, 2, True, 2**64 - 1, 9, b"\x02" * 64)}
    layout = Layout(order)
    for columns in (Columns(layout, entries), Columns.of_rows(layout, (entries[m] for m in order))):
        assert dict(columns) == entries and list(columns) == list(order) and "b" in columns and "d" not in columns
        assert columns.get("d") is None
    with pytest.raises(ValueError, match="2 entries for 3 meter points"):
        Columns.of_rows(layout, [entries["a"], entries["b"]])
