"""nodes/export_drain.py: an export's pieces written by a second thread, in order, errors raised in the caller."""

from __future__ import annotations

import threading

import pytest

from nodes.export_drain import drain_in_thread
from stromledger.export.writer import drain_in_line


def _files(calls):
    out: dict[str, bytes] = {}
    for name, data in calls:
        out[name] = out.get(name, b"") + data
    return out


@pytest.mark.parametrize("block", [1, 7, 1 << 20])
def test_each_file_gets_its_pieces_in_order(block):
    pieces = [(f"f{i % 3}", bytes([i]) * i) for i in range(50)] + [("empty", b"")]
    got = []
    drain_in_thread(iter(pieces), lambda name, data: got.append((name, data)), block=block)
    assert _files(got) == _files(pieces)  # the empty file too: it exists
    # every block but a file's last is at least `block` bytes, so the writer takes the GIL rarely
    for name in _files(pieces):
        sizes = [len(d) for n, d in got if n == name]
        assert all(size >= block for size in sizes[:-1])
    if block == 1 << 20:
        assert len(got) == 4  # each file in one go


def test_in_line_writes_each_piece_as_made():
    pieces = [(f"f{i % 3}", bytes([i]) * i) for i in range(50)]
    got = []
    drain_in_line(iter(pieces), lambda name, data: got.append((name, data)))
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
        drain_in_thread(pieces(), sink, depth=2, block=1)
    assert len(made) < 100  # the export stopped making pieces
    assert not [t for t in threading.enumerate() if t.name == "export-writer"]


def test_a_failing_piece_is_raised_after_the_writer_is_done():
    written = []

    def pieces():
        yield "f", b"a"
        raise ValueError("a value kWh cannot write")

    with pytest.raises(ValueError, match="kWh"):
        drain_in_thread(pieces(), lambda name, data: written.append(data), block=1)
    assert written == [b"a"]
    assert not [t for t in threading.enumerate() if t.name == "export-writer"]


def test_many_files_gathering_hand_over_the_largest_early():
    """Beyond `gathering` bytes waiting, the largest file's pieces go to the writer before its block is full
    (many MSCONS files must not each hold a block in memory); every file still gets its bytes in order."""
    pieces = [(f"group-{i % 10}", bytes([i % 256]) * (100 + i)) for i in range(400)]
    got = []
    drain_in_thread(iter(pieces), lambda name, data: got.append((name, data)), block=1 << 20, gathering=5_000)
    assert _files(got) == _files(pieces)
    assert len(got) > 10  # with a 1 MB block alone, each file would go in one piece at the end
