"""The one-byte envelope inside each frame.

A frame payload is ``kind: u8`` followed by the body:

- ``MSG``  one-way message; the handler's return value is ignored.
- ``REQ``  request; the server answers with exactly one ``RESP`` or ``ERR``.
- ``RESP`` response body.
- ``ERR``  the request failed; the body is an ASCII reason code (see
  ``RemoteError``). No exception text crosses the wire.

One-way messages travel on a long-lived stream per (peer, protocol); each
request opens its own stream, so the server can tell nothing else apart.
"""

from __future__ import annotations

from .errors import MalformedMessage

MSG = 0x01
REQ = 0x02
RESP = 0x03
ERR = 0x04
KINDS = frozenset({MSG, REQ, RESP, ERR})
ENVELOPE_SIZE = 1
MAX_REASON = 64


def pack(kind: int, body: bytes) -> bytes:
    return bytes((kind,)) + body


def unpack(frame: bytes) -> tuple[int, bytes]:
    if not frame:
        raise MalformedMessage(detail="empty frame")
    kind = frame[0]
    if kind not in KINDS:
        raise MalformedMessage(detail=f"unknown kind {kind:#x}")
    return kind, frame[1:]


def pack_error(reason: str) -> bytes:
    return pack(ERR, reason.encode("ascii")[:MAX_REASON])


def error_reason(body: bytes) -> str:
    """Decode an ERR body defensively: it comes from the remote."""
    text = body[:MAX_REASON].decode("ascii", errors="replace")
    return "".join(c if c.isalnum() or c == "_" else "?" for c in text) or "unknown"
