from __future__ import annotations

import random
import struct

import pytest
import trio

from stromledger.net.errors import FrameTooLarge, TruncatedFrame
from stromledger.net.framing import HEADER_SIZE, MAX_FRAME, FrameReader, encode_frame, encode_frames


class ChoppyStream:
    """Returns random partial chunks (1..n bytes) like a libp2p stream, b"" at EOF."""

    def __init__(self, data: bytes, rng: random.Random) -> None:
        self.data = data
        self.pos = 0
        self.rng = rng
        self.reads = 0

    async def read(self, n: int) -> bytes:
        await trio.lowlevel.checkpoint()
        self.reads += 1
        if self.pos >= len(self.data):
            return b""
        size = self.rng.randint(1, min(n, len(self.data) - self.pos))
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk


async def read_all(reader: FrameReader) -> list[bytes]:
    return [frame async for frame in reader]


def random_payloads(rng: random.Random) -> list[bytes]:
    sizes = [rng.choice([0, 1, 2, 3, 4, 5, 100, 1000, 70_000]) for _ in range(rng.randint(0, 12))]
    return [rng.randbytes(s) for s in sizes]


def test_encode_frame_prefixes_big_endian_length() -> None:
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_frame(b"") == b"\x00\x00\x00\x00"


def test_encode_frame_refuses_oversize() -> None:
    with pytest.raises(FrameTooLarge) as err:
        encode_frame(b"x" * 11, max_size=10)
    assert err.value.reason == "frame_too_large"
    assert (err.value.size, err.value.limit) == (11, 10)


@pytest.mark.trio
async def test_random_partial_reads_yield_exact_frames() -> None:
    rng = random.Random(20240601)
    with trio.fail_after(10):
        for _ in range(300):
            payloads = random_payloads(rng)
            stream = ChoppyStream(encode_frames(payloads), rng)
            reader = FrameReader(stream, chunk=rng.choice([1, 3, 7, 64, 4096]))
            assert await read_all(reader) == payloads
            assert reader.buffered == 0


@pytest.mark.trio
async def test_clean_eof_returns_none_repeatedly() -> None:
    reader = FrameReader(ChoppyStream(encode_frame(b"one"), random.Random(1)))
    assert await reader.read_frame() == b"one"
    assert await reader.read_frame() is None
    assert await reader.read_frame() is None


@pytest.mark.trio
@pytest.mark.parametrize("cut", [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 2])
async def test_eof_inside_a_frame_is_truncation(cut: int) -> None:
    data = encode_frame(b"hello") + encode_frame(b"world")[:cut]
    reader = FrameReader(ChoppyStream(data, random.Random(cut)))
    assert await reader.read_frame() == b"hello"
    with pytest.raises(TruncatedFrame):
        await reader.read_frame()


@pytest.mark.trio
async def test_oversize_header_rejected_before_reading_body() -> None:
    # Header claims 5 MiB, and the body never comes: the reader must not wait for it.
    data = encode_frame(b"ok") + struct.pack(">I", 5 * 1024 * 1024) + b"xx"
    stream = ChoppyStream(data, random.Random(7))
    reader = FrameReader(stream)
    assert await reader.read_frame() == b"ok"
    with pytest.raises(FrameTooLarge) as err:
        await reader.read_frame()
    assert err.value.limit == MAX_FRAME


@pytest.mark.trio
async def test_frame_at_the_limit_passes() -> None:
    payload = bytes(range(256)) * 4
    reader = FrameReader(ChoppyStream(encode_frame(payload), random.Random(3)), max_size=1024)
    assert await reader.read_frame() == payload
    small = FrameReader(ChoppyStream(encode_frame(payload + b"!"), random.Random(3)), max_size=1024)
    with pytest.raises(FrameTooLarge):
        await small.read_frame()
