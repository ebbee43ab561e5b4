"""nodes/export_drain.py: an export's pieces written by a second thread, in order, errors raised in the caller."""

from __future__ import annotations

import threading

import pytest

from nodes.export_drain import drain_in_thread
from stromledger.export.writer import drain_in_line


@pytest.mark.parametrize("drain", [drain_in_line, drain_in_thread])
def test_pieces_arrive_in_order(drain):
    pieces = [(f"f{i % 3}", bytes([i]) * i) for i in range(50)]
    got = []
    drain(iter(pieces), lambda name, data: got.append((name, data)))
    assert got == pieces


def test_a_failing_write_stops_the_export_and_is_raised():
    made = []

    def pieces():
        for i in range(100):
            made.append(i)
            yield "f", bytes([i])

    def sink(name, data):
        if data == b"\x03":
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        drain_in_thread(pieces(), sink, depth=2)
    assert len(made) < 100  # the export stopped making pieces
    assert not [t for t in threading.enumerate() if t.name == "export-writer"]


def test_a_failing_piece_is_raised_after_the_writer_is_done():
    written = []

    def pieces():
        yield "f", b"a"
        raise ValueError("a value kWh cannot write")

    with pytest.raises(ValueError, match="kWh"):
        drain_in_thread(pieces(), lambda name, data: written.append(data))
    assert written == [b"a"]
    assert not [t for t in threading.enumerate() if t.name == "export-writer"]
