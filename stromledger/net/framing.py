"""u32 big-endian length-prefixed frames over a byte stream.

Wire format: ``len: u32 big-endian`` followed by ``len`` bytes of payload. An
empty payload is a valid frame.

py-libp2p streams return *partial* data from ``read(n)`` (whatever the muxer
has buffered, up to ``n``), so frames must be reassembled here. ``FrameReader``
wraps anything with ``async read(n) -> bytes`` that returns ``b""`` at end of
stream; it checks the declared length against ``max_size`` *before* buffering
the body, so a peer cannot make us allocate an arbitrary amount of memory.

Two optional bounds for a server reading untrusted peers (issue 19, finding 4):

- ``deadline``: once the first byte of a frame arrived, the whole frame must arrive within this many
  seconds (``FrameTimeout``). Waiting *between* frames is not bounded: a long-lived one-way stream may
  be idle.
- ``allowance``: the declared size is reserved from a byte budget before the body is buffered
  (``OverBudget`` if it does not fit) and released when the next frame is read or ``release()`` is called,
  so the frame stays counted while its handler runs.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Protocol

import trio

from .errors import FrameTimeout, FrameTooLarge, OverBudget, TruncatedFrame

HEADER = struct.Struct(">I")
HEADER_SIZE = HEADER.size
MAX_FRAME = 4 * 1024 * 1024
READ_CHUNK = 64 * 1024


class ByteSource(Protocol):
    async def read(self, n: int) -> bytes: ...


class Allowance(Protocol):
    """A share of a byte budget: ``reserve`` returns None or why the bytes do not fit."""

    def reserve(self, n: int) -> str | None: ...

    def release(self, n: int) -> None: ...


def encode_frame(payload: bytes, *, max_size: int = MAX_FRAME) -> bytes:
    """Return ``payload`` with its length prefix; refuse what a reader would reject."""
    if len(payload) > max_size:
        raise FrameTooLarge(len(payload), max_size)
    return HEADER.pack(len(payload)) + payload


def encode_frames(payloads: Iterable[bytes], *, max_size: int = MAX_FRAME) -> bytes:
    """Concatenate several frames, for one batched ``write``."""
    return b"".join(encode_frame(p, max_size=max_size) for p in payloads)


class FrameReader:
    """Yields whole frames from a stream that returns partial reads.

    ``read_frame()`` returns the next payload, or ``None`` at a clean end of
    stream (EOF on a frame boundary). EOF inside a frame raises
    ``TruncatedFrame``; a header above ``max_size`` raises ``FrameTooLarge``.
    Also usable as ``async for payload in reader``.
    """

    def __init__(
        self,
        source: ByteSource,
        *,
        max_size: int = MAX_FRAME,
        chunk: int = READ_CHUNK,
        deadline: float | None = None,
        allowance: Allowance | None = None,
    ) -> None:
        if max_size < 0 or max_size >= 1 << 32:
            raise ValueError("max_size must fit in a u32")
        self._source = source
        self._max_size = max_size
        self._chunk = chunk
        self._buf = bytearray()
        self._eof = False
        self._deadline = deadline
        self._allowance = allowance
        self._held = 0

    @property
    def buffered(self) -> int:
        """Bytes read from the source but not yet returned as a frame."""
        return len(self._buf)

    def release(self) -> None:
        """Give back the bytes reserved for the last frame (its handler is done with it)."""
        if self._allowance is not None and self._held:
            self._allowance.release(self._held)
        self._held = 0

    async def read_frame(self) -> bytes | None:
        self.release()
        if not await self._fill(1):  # idle between frames: no deadline
            return None
        if self._deadline is None:
            return await self._read_rest()
        try:
            with trio.fail_after(self._deadline):
                return await self._read_rest()
        except trio.TooSlowError:
            raise FrameTimeout(detail=f"a frame not complete after {self._deadline}s") from None

    async def _read_rest(self) -> bytes:
        if not await self._fill(HEADER_SIZE):
            raise TruncatedFrame(detail=f"{len(self._buf)} bytes of a header")
        (size,) = HEADER.unpack_from(self._buf)
        if size > self._max_size:
            raise FrameTooLarge(size, self._max_size)
        if self._allowance is not None:
            refused = self._allowance.reserve(size)
            if refused is not None:
                raise OverBudget(refused, f"a frame of {size} bytes")
            self._held = size
        end = HEADER_SIZE + size
        if not await self._fill(end):
            raise TruncatedFrame(detail=f"{len(self._buf) - HEADER_SIZE} of {size} bytes")
        payload = bytes(self._buf[HEADER_SIZE:end])
        del self._buf[:end]
        return payload

    def __aiter__(self) -> FrameReader:
        return self

    async def __anext__(self) -> bytes:
        payload = await self.read_frame()
        if payload is None:
            self.release()
            raise StopAsyncIteration
        return payload

    async def _fill(self, want: int) -> bool:
        """Read until ``want`` bytes are buffered; False if the stream ends first."""
        while len(self._buf) < want:
            if self._eof:
                return False
            # Ask for at least the missing part so a big frame needs few reads.
            data = await self._source.read(max(self._chunk, want - len(self._buf)))
            if not data:
                self._eof = True
                return False
            self._buf += data
        return True
