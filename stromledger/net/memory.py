"""In-memory ``Network`` for tests and the simulator.

Same semantics as the libp2p implementation (see ``base``): handlers and
``allowed`` checks, request/response with typed errors, ordered one-way
delivery per (sender, receiver, protocol) through a bounded queue that makes
``send`` wait when full, size limits. No framing, no sockets.

Usage::

    async with MemoryHub() as hub:
        a = hub.endpoint(key_a)
        b = hub.endpoint(key_b)
        b.set_handler(CONSENSUS, on_message)
        await a.send(key_b, CONSENSUS, b"...")

``hub.detach(key)`` takes an endpoint off the hub (a crashed node): messages to
it are dropped and requests raise ``PeerUnreachable``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import trio

from .base import (
    Allowed,
    Handler,
    Network,
    PeerKey,
    Route,
    check_key,
    check_protocol,
)
from .errors import FrameTooLarge, PeerUnreachable, RemoteError, RequestTimeout
from .framing import MAX_FRAME
from .wire import ENVELOPE_SIZE

log = logging.getLogger("stromledger.net")

QUEUE_SIZE = 64


class MemoryHub:
    def __init__(self, *, queue_size: int = QUEUE_SIZE, max_frame: int = MAX_FRAME) -> None:
        self.queue_size = queue_size
        self.max_frame = max_frame
        self._endpoints: dict[PeerKey, MemoryNetwork] = {}
        self._ever: set[PeerKey] = set()  # a detached key is a crashed node, not unknown
        self._queues: list[trio.MemoryReceiveChannel[bytes]] = []
        self._stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None

    async def __aenter__(self) -> MemoryHub:
        self._stack = AsyncExitStack()
        self._nursery = await self._stack.enter_async_context(trio.open_nursery())
        return self

    async def __aexit__(self, *exc: object) -> bool | None:
        assert self._stack is not None and self._nursery is not None
        self._nursery.cancel_scope.cancel()
        self._nursery = None
        for rx in self._queues:
            rx.close()  # a send() waiting on a full queue fails instead of hanging
        return await self._stack.__aexit__(*exc)

    def endpoint(self, key: PeerKey) -> MemoryNetwork:
        check_key(key)
        if key in self._endpoints:
            raise ValueError("key already on the hub")
        net = MemoryNetwork(self, key)
        self._endpoints[key] = net
        self._ever.add(key)
        return net

    def detach(self, key: PeerKey) -> None:
        net = self._endpoints.pop(key, None)
        if net is not None:
            net.attached = False

    def _lookup(self, key: PeerKey) -> MemoryNetwork | None:
        return self._endpoints.get(key)

    def _open_queue(self) -> tuple[trio.MemorySendChannel[bytes], trio.MemoryReceiveChannel[bytes]]:
        if self._nursery is None:
            raise PeerUnreachable("closed", "hub is not running")
        tx, rx = trio.open_memory_channel[bytes](self.queue_size)
        self._queues.append(rx)
        return tx, rx

    def _spawn(self, fn: Callable[..., Awaitable[None]], *args: object) -> None:
        if self._nursery is None:
            raise PeerUnreachable("closed", "hub is not running")
        self._nursery.start_soon(fn, *args)


class MemoryNetwork(Network):
    def __init__(self, hub: MemoryHub, key: PeerKey) -> None:
        self.local_key = key
        self.max_payload = hub.max_frame - ENVELOPE_SIZE
        self.stats: Counter[str] = Counter()
        self.attached = True
        self._hub = hub
        self._routes: dict[str, Route] = {}
        self._queues: dict[tuple[PeerKey, str], trio.MemorySendChannel[bytes]] = {}

    def set_handler(
        self, protocol: str, handler: Handler, *, allowed: Allowed | None = None
    ) -> None:
        self._routes[check_protocol(protocol)] = Route(handler, allowed)

    async def send(self, peer: PeerKey, protocol: str, payload: bytes) -> None:
        self._check_size(payload)
        dst = self._target(peer)
        if dst is None:
            self.stats["dropped"] += 1
            return
        queue = self._queues.get((peer, protocol))
        if queue is None:
            queue, rx = self._hub._open_queue()
            self._queues[(peer, protocol)] = queue
            self._hub._spawn(self._deliver_all, peer, protocol, rx)
        try:
            await queue.send(payload)  # waits while the queue is full: back-pressure
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise PeerUnreachable("closed", "hub is shutting down") from None

    async def request(
        self, peer: PeerKey, protocol: str, payload: bytes, *, timeout: float
    ) -> bytes:
        self._check_size(payload)
        with trio.move_on_after(timeout):
            dst = self._target(peer)
            if dst is None:
                raise PeerUnreachable("dial_failed", "endpoint detached")
            self.stats["requests_out"] += 1
            self._count_out(payload)
            reply = await dst._answer(self.local_key, protocol, payload)
            self._count_in(reply)
            return reply
        raise RequestTimeout(detail=f"{protocol} after {timeout}s")

    def connected_peers(self) -> set[PeerKey]:
        if not self.attached:
            return set()
        return {k for k in self._hub._endpoints if k != self.local_key}

    # -- sender side -------------------------------------------------------

    def _check_size(self, payload: bytes) -> None:
        if len(payload) > self.max_payload:
            raise FrameTooLarge(len(payload), self.max_payload)

    def _target(self, peer: PeerKey) -> MemoryNetwork | None:
        if peer == self.local_key:
            raise PeerUnreachable("self", "cannot send to ourselves")
        if not self.attached:
            raise PeerUnreachable("closed", "endpoint detached")
        dst = self._hub._lookup(check_key(peer))
        if dst is None and peer not in self._hub._ever:
            raise PeerUnreachable("unknown_peer", peer.hex()[:16])
        return dst

    async def _deliver_all(
        self, peer: PeerKey, protocol: str, rx: trio.MemoryReceiveChannel[bytes]
    ) -> None:
        async for payload in rx:
            dst = self._hub._lookup(peer)
            if dst is None or not self.attached:
                self.stats["dropped"] += 1
                continue
            self._count_out(payload)
            if not await dst._consume(self.local_key, protocol, payload):
                self.stats["dropped"] += 1

    def _count_out(self, payload: bytes) -> None:
        self.stats["frames_out"] += 1
        self.stats["bytes_out"] += len(payload)

    def _count_in(self, payload: bytes) -> None:
        self.stats["frames_in"] += 1
        self.stats["bytes_in"] += len(payload)

    # -- receiver side -----------------------------------------------------

    def _admit(self, peer: PeerKey, protocol: str) -> Route | None:
        route = self._routes.get(protocol)
        if route is None:
            return None
        if not route.admits(peer):
            self.stats["rejected_unauthorized"] += 1
            log.warning("refused %s from unauthorized peer %s", protocol, peer.hex()[:16])
            return None
        return route

    async def _consume(self, peer: PeerKey, protocol: str, payload: bytes) -> bool:
        route = self._admit(peer, protocol)
        if route is None:
            return False
        self._count_in(payload)
        try:
            await route.handler(peer, payload)
        except Exception:
            self.stats["handler_errors"] += 1
            log.exception("handler for %s failed", protocol)
        return True

    async def _answer(self, peer: PeerKey, protocol: str, payload: bytes) -> bytes:
        if protocol not in self._routes:
            raise RemoteError("protocol_refused", protocol)
        route = self._admit(peer, protocol)
        if route is None:
            raise RemoteError("unauthorized")
        self._count_in(payload)
        self.stats["requests_in"] += 1
        try:
            reply = await route.handler(peer, payload)
        except Exception:
            self.stats["handler_errors"] += 1
            log.exception("handler for %s failed", protocol)
            raise RemoteError("handler_error") from None
        if reply is None:
            raise RemoteError("no_response")
        if len(reply) > self.max_payload:
            raise RemoteError("response_too_large")
        self._count_out(reply)
        return reply
