"""The ``Network`` interface every node role talks to.

Peers are named by their Ed25519 public key, 32 raw bytes (``PeerKey``): the
same key the registry lists for the node. Payloads are opaque bytes (the
callers encode msgpack); every application message is still signed by its
author, the transport only authenticates the *hop*.

API::

    Handler = Callable[[PeerKey, bytes], Awaitable[bytes | None]]
    Allowed = Callable[[PeerKey], bool]

    class Network(ABC):
        local_key: PeerKey
        max_payload: int            # bigger payloads raise FrameTooLarge locally
        stats: Counter[str]

        def set_handler(protocol, handler, *, allowed=None) -> None
        async def send(peer, protocol, payload) -> None
        async def broadcast(peers, protocol, payload) -> None
        async def request(peer, protocol, payload, *, timeout: float) -> bytes
        def connected_peers() -> set[PeerKey]

Semantics shared by every implementation:

- ``set_handler``: one handler per protocol (a later call replaces it).
  ``allowed(peer_key)`` is the authorization check (e.g. "is a registered
  validator"); it runs when a peer opens a stream and again for every message.
  A peer failing it has its stream reset; the event is logged and counted in
  ``stats["rejected_unauthorized"]``. Handlers must not block for long: one-way
  messages from one peer on one protocol are handled one after the other.
- ``send``: one-way, fire-and-forget, in order per (peer, protocol). It
  enqueues into a bounded per-(peer, protocol) queue and *awaits* while that
  queue is full (back-pressure from a slow but live peer). Messages to a peer
  that cannot be reached are dropped (``stats["dropped"]``) so a dead peer never
  blocks the sender. Delivery is best effort: when a connection breaks, queued
  or in-flight messages can be lost, and a batch retried on a fresh stream can
  arrive twice. Consensus tolerates both (messages are signed and idempotent).
  The remote handler gets ``(our_key, payload)``; its return value is ignored.
- ``broadcast``: ``send`` to each peer concurrently (our own key is skipped);
  returns once every message is queued.
- ``request``: request/response on its own stream. Raises ``PeerUnreachable``,
  ``RequestTimeout`` or ``RemoteError`` (see ``errors`` for reason codes). A
  handler answering a request must return bytes; ``None`` becomes
  ``RemoteError("no_response")``, an exception ``RemoteError("handler_error")``.
- Payloads above ``max_payload`` (the frame limit, default 4 MiB, minus the
  1-byte envelope) raise ``FrameTooLarge`` locally; a peer sending bigger
  frames gets its stream reset.
- ``stats``: counters, missing keys read as 0. Common keys: ``frames_in``,
  ``frames_out``, ``bytes_in``, ``bytes_out``, ``writes_out``, ``requests_in``,
  ``requests_out``, ``rejected_unauthorized``, ``rejected_oversize``,
  ``rejected_malformed``, ``handler_errors``, ``dropped``, ``dial_failures``,
  ``reconnects``, ``remote_stream_ends`` (p2p: a peer ended our one-way stream).
  p2p adds the admission counters: ``refused_unregistered``,
  ``refused_outsider_slots``, ``refused_address_slots``, ``refused_outsider_protocol``,
  ``handshakes_failed``, ``rejected_frame_timeout``, ``rejected_over_budget``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import trio

from .errors import FrameTooLarge, PeerUnreachable

PeerKey = bytes
Handler = Callable[[PeerKey, bytes], Awaitable[bytes | None]]
Allowed = Callable[[PeerKey], bool]

CONSENSUS = "/stromledger/consensus/1"
BATCH = "/stromledger/batch/1"
SUBMIT = "/stromledger/submit/1"
SYNC = "/stromledger/sync/1"
LIGHT = "/stromledger/light/1"
PROTOCOLS = (CONSENSUS, BATCH, SUBMIT, SYNC, LIGHT)

KEY_SIZE = 32

log = logging.getLogger("stromledger.net")


def check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise ValueError("a peer key is 32 raw bytes (Ed25519 public key)")
    return key


def check_protocol(protocol: str) -> str:
    if not protocol.startswith("/") or any(c.isspace() for c in protocol):
        raise ValueError(f"bad protocol id {protocol!r}")
    return protocol


@dataclass(frozen=True)
class Route:
    """A protocol's handler and its authorization check."""

    handler: Handler
    allowed: Allowed | None = None

    def admits(self, peer: PeerKey | None) -> bool:
        """``peer`` is None when the remote has no Ed25519 identity: never admitted."""
        return self.allowed is None and peer is not None or admitted(self.allowed, peer)


def admitted(allowed: Allowed | None, peer: PeerKey | None) -> bool:
    """Does the check ``allowed`` admit ``peer``? No check, no key, or a check that raises: no."""
    if peer is None or allowed is None:
        return False
    try:
        return bool(allowed(peer))
    except Exception:
        log.exception("allowed() raised for %s; refusing", peer.hex()[:16])
        return False


class Network(ABC):
    local_key: PeerKey
    max_payload: int
    stats: Counter[str]

    @abstractmethod
    def set_handler(
        self, protocol: str, handler: Handler, *, allowed: Allowed | None = None
    ) -> None: ...

    @abstractmethod
    async def send(self, peer: PeerKey, protocol: str, payload: bytes) -> None: ...

    async def broadcast(
        self, peers: Iterable[PeerKey], protocol: str, payload: bytes
    ) -> None:
        if len(payload) > self.max_payload:
            raise FrameTooLarge(len(payload), self.max_payload)
        # Concurrent, so one peer with a full queue does not hold up the others.
        targets = dict.fromkeys(p for p in peers if p != self.local_key)
        async with trio.open_nursery() as nursery:
            for peer in targets:
                nursery.start_soon(self._send_quietly, peer, protocol, payload)

    async def _send_quietly(self, peer: PeerKey, protocol: str, payload: bytes) -> None:
        # An unknown peer must not cancel the broadcast to the others.
        try:
            await self.send(peer, protocol, payload)
        except PeerUnreachable:
            self.stats["dropped"] += 1

    @abstractmethod
    async def request(
        self, peer: PeerKey, protocol: str, payload: bytes, *, timeout: float
    ) -> bytes: ...

    @abstractmethod
    def connected_peers(self) -> set[PeerKey]: ...
