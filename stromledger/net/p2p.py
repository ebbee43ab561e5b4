"""py-libp2p 0.8.1 implementation of ``Network``.

Usage::

    net = P2PNetwork(seed)                  # node identity = Ed25519 seed
    net.set_handler(CONSENSUS, on_msg, allowed=registry.is_validator)
    async with net:                         # or: await nursery.start(net.run)
        print(net.listen_addr)              # "/ip4/127.0.0.1/tcp/40123"
        net.add_peer(other_key, other_addr) # dialed lazily, on first use
        await net.send(other_key, CONSENSUS, b"...")

Wire: u32-length-prefixed frames (``framing``) carrying a one-byte envelope
(``wire``). One-way messages go on one long-lived outbound stream per
(peer, protocol); a pump task per stream drains its queue and writes every
frame it finds in one ``write``. Each request opens its own stream.

Peer table: ``add_peer(key, multiaddr)``. Dials happen on demand, under a
per-peer lock, with capped exponential backoff after failures (while backing
off, requests fail fast with ``PeerUnreachable("backoff")`` and queued one-way
messages are dropped). ``add_peer`` again (new or same address) clears the
backoff. Only the address given here is ever dialed.

Admission, per connection: a peer is *admitted* if ``admit`` (the node's
registry keys) or one of our routes' ``allowed`` admits its key, or it is
in our peer table. Any other peer is an outsider: right after its Noise
handshake it may only negotiate our own protocols, each answered (after its first frame, or a short timeout) with
``ERR unauthorized``; identify and ping are not offered to it; and its
connection is closed once that answer is out, or after ``refusal_grace``.
Handshaking connections and outsiders share a few slots (``admission``),
so they cannot take the connection slots registry keys need.

Authorization, per stream: the remote key comes from the peer id that Noise
authenticated (see ``identity``); ``allowed`` runs on it when a stream opens
and for every frame. Unauthorized, oversized, slow (a frame not complete
within its deadline), over-budget and malformed input resets only that
stream and is counted; the node keeps serving everyone else.

Lifecycle: the object is used once. ``async with net`` (or ``run``) starts
the host; on exit our tasks are cancelled, outbound streams closed and peers
disconnected *before* the host stops.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import multiaddr
import trio
from libp2p.abc import IMuxedConn, INetStream, IRawConnection
from libp2p.custom_types import TProtocol
from libp2p.host.exceptions import StreamFailure
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.network.exceptions import SwarmException
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.protocol_muxer.multiselect import Multiselect
from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator

from . import wire
from .admission import Budgets, ByteBudget, Outsiders, PeerRates, RefusalLog, StreamSlots
from .base import Allowed, Handler, Network, PeerKey, Route, admitted, check_key, check_protocol
from .errors import (
    FrameError,
    FrameTimeout,
    FrameTooLarge,
    MalformedMessage,
    OverBudget,
    PeerUnreachable,
    RemoteError,
    RequestTimeout,
    TruncatedFrame,
)
from .framing import HEADER_SIZE, MAX_FRAME, READ_CHUNK, FrameReader, encode_frame
from .host import build_host, check_port_free
from .identity import key_of, key_pair_from_seed, libp2p_id, public_key_of

log = logging.getLogger("stromledger.net")

LISTEN = "/ip4/127.0.0.1/tcp/0"
QUEUE_SIZE = 1024  # frames per (peer, protocol) before send() waits
BATCH_BYTES = 256 * 1024  # stop adding frames to a write beyond this
DIAL_TIMEOUT = 5.0
BACKOFF_BASE = 0.1
BACKOFF_CAP = 30.0
CLOSE_TIMEOUT = 2.0
ADDR_TTL = 3600  # seconds; we re-set the address before every dial anyway
REFUSED_FIRST_FRAME = 64 * 1024  # a refused stream's first frame is read up to this size, then answered


def _short(key: PeerKey | None) -> str:
    return key.hex()[:16] if key else "?"


@dataclass
class _Peer:
    key: PeerKey
    pid: ID
    addr: multiaddr.Multiaddr
    failures: int = 0
    retry_at: float = 0.0  # trio clock
    dialed_before: bool = False
    lock: trio.Lock = field(default_factory=trio.Lock)


@dataclass
class _Eviction:
    """An outsider's connection on its way out: refusals under way, and whether one was answered."""

    active: int = 0
    answered: trio.Event = field(default_factory=trio.Event)


class _Outbox:
    """Queue and current stream of one (peer, protocol) one-way channel."""

    def __init__(self, size: int) -> None:
        self.tx, self.rx = trio.open_memory_channel[bytes](size)
        self.stream: INetStream | None = None


class _StreamSource:
    """A libp2p stream as a ``ByteSource``: py-libp2p raises at EOF, we return b""."""

    def __init__(self, stream: INetStream) -> None:
        self._stream = stream

    async def read(self, n: int) -> bytes:
        try:
            return await self._stream.read(n)
        except StreamEOF:
            return b""


class P2PNetwork(Network):
    def __init__(
        self,
        seed: bytes,
        *,
        listen: str = LISTEN,
        max_frame: int = MAX_FRAME,
        queue_size: int = QUEUE_SIZE,
        batch_bytes: int = BATCH_BYTES,
        dial_timeout: float = DIAL_TIMEOUT,
        backoff_base: float = BACKOFF_BASE,
        backoff_cap: float = BACKOFF_CAP,
        close_timeout: float = CLOSE_TIMEOUT,
        budgets: Budgets = Budgets(),
        admit: Allowed | None = None,
    ) -> None:
        key_pair = key_pair_from_seed(seed)
        self.local_key: PeerKey = public_key_of(key_pair)
        self.max_payload = max_frame - wire.ENVELOPE_SIZE
        self.peer_id = libp2p_id(self.local_key)
        self.stats: Counter[str] = Counter()
        self.listen_addr: str | None = None
        self._listen = multiaddr.Multiaddr(listen)
        self._host = build_host(
            key_pair, self._listen, dial_timeout=dial_timeout,
            handshake_timeout=budgets.handshake_timeout,
        )
        self.budgets = budgets
        self._admit = admit
        self.outsiders = Outsiders(budgets)
        self.inflight = ByteBudget(budgets.inflight_per_peer, budgets.inflight_total)
        self.streams = StreamSlots(budgets.streams_per_peer)
        self.rates = PeerRates(budgets, trio.current_time)
        self._refusals = RefusalLog(log, self.stats, budgets.refusal_log_every, trio.current_time)
        self._evictions: dict[ID, _Eviction] = {}
        self._outsider_select = Multiselect()
        # Every inbound connection passes our slot check; every inbound
        # stream passes the admission check before libp2p's own protocols.
        self._host_stream_handler = self._host._swarm_stream_handler
        self._swarm.set_stream_handler(self._route_stream)
        self._libp2p_upgrade = self._swarm.upgrade_inbound_raw_conn
        self._swarm.upgrade_inbound_raw_conn = self._upgrade_inbound  # type: ignore[method-assign]
        self._swarm._do_handle_inbound_connection = self._hold_inbound  # type: ignore[method-assign]
        self._no_identify_for_outsiders()
        self._max_frame = max_frame
        self._queue_size = queue_size
        self._batch_bytes = batch_bytes
        self._dial_timeout = dial_timeout
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._close_timeout = close_timeout
        self._routes: dict[str, Route] = {}
        self._peers: dict[PeerKey, _Peer] = {}
        self._outboxes: dict[tuple[PeerKey, str], _Outbox] = {}
        self._nursery: trio.Nursery | None = None
        self._running = False
        self._cm: AbstractAsyncContextManager[P2PNetwork] | None = None
        self._used = False

    # -- lifecycle ---------------------------------------------------------

    @property
    def host(self) -> Any:
        """The underlying libp2p host, for diagnostics and adversarial tests."""
        return self._host

    async def __aenter__(self) -> P2PNetwork:
        if self._used:
            raise RuntimeError("a P2PNetwork runs once; build a new one to restart")
        self._used = True
        self._cm = self._lifecycle()
        return await self._cm.__aenter__()

    async def __aexit__(self, *exc: Any) -> bool | None:
        assert self._cm is not None
        return await self._cm.__aexit__(*exc)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``await nursery.start(net.run)`` returns once listening."""
        async with self:
            task_status.started(self)
            await trio.sleep_forever()

    @asynccontextmanager
    async def _lifecycle(self) -> AsyncIterator[P2PNetwork]:
        check_port_free(self._listen)
        async with self._host.run([self._listen]):
            self.listen_addr = str(self._host.get_transport_addrs()[0])
            log.info("listening on %s as %s", self.listen_addr, self.peer_id)
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery, self._running = nursery, True
                    try:
                        yield self
                    finally:
                        self._running = False
                        nursery.cancel_scope.cancel()
            finally:
                self._nursery = None
                # Still inside host.run(): close streams and connections while
                # the swarm can still run their cleanup tasks ("Nursery is
                # closed to new arrivals" otherwise), then close the host
                # ourselves: leaving host.run() stops the swarm by cancelling
                # it, which cancels its cleanup too, and the TCP listener (a
                # trio system task) would keep accepting for the rest of the run.
                with trio.move_on_after(self._close_timeout) as scope:
                    scope.shield = True
                    await self._disconnect_all()
                with trio.move_on_after(self._close_timeout) as scope:
                    scope.shield = True
                    await self._host.close()

    async def _disconnect_all(self) -> None:
        async with trio.open_nursery() as nursery:
            for box in self._outboxes.values():
                box.rx.close()  # a send() still waiting on a full queue fails now
                if box.stream is not None:
                    nursery.start_soon(self._close_stream, box.stream)
                    box.stream = None
        self._outboxes.clear()
        async with trio.open_nursery() as nursery:
            for pid in list(self._swarm.connections):
                nursery.start_soon(self._drop_connection, pid)

    @property
    def _swarm(self) -> Swarm:
        swarm = self._host.get_network()
        assert isinstance(swarm, Swarm)
        return swarm

    # -- peer table --------------------------------------------------------

    def add_peer(self, peer_key: PeerKey, addr: str) -> None:
        """Remember where a peer listens; also clears its dial backoff."""
        check_key(peer_key)
        pid = libp2p_id(peer_key)
        maddr = multiaddr.Multiaddr(addr)
        try:
            claimed = maddr.value_for_protocol("p2p")
        except Exception:
            claimed = None
        if claimed:
            if claimed != pid.to_base58():
                raise ValueError(f"address {addr} names another peer id")
            maddr = maddr.decapsulate(multiaddr.Multiaddr(f"/p2p/{claimed}"))
        peer = self._peers.get(peer_key)
        if peer is None:
            self._peers[peer_key] = _Peer(peer_key, pid, maddr)
        else:
            peer.addr, peer.failures, peer.retry_at = maddr, 0, 0.0

    def connected_peers(self) -> set[PeerKey]:
        """Admitted peers with an open connection (an outsider being refused is not one)."""
        peers = set()
        for pid, conns in list(self._swarm.connections.items()):
            if any(not c.is_closed for c in conns):
                key = key_of(pid)
                if key is not None and self._admits_connection(key):
                    peers.add(key)
        return peers

    def _admits_connection(self, peer_key: PeerKey | None) -> bool:
        """A peer we dial, one ``admit`` names (the registry) or one some protocol of ours admits."""
        if peer_key is None:
            return False
        if peer_key in self._peers or admitted(self._admit, peer_key):
            return True
        return any(r.admits(peer_key) for r in self._routes.values())

    def _peer(self, peer_key: PeerKey) -> _Peer:
        if not self._running:
            raise PeerUnreachable("closed", "network is not running")
        if peer_key == self.local_key:
            raise PeerUnreachable("self", "cannot send to ourselves")
        peer = self._peers.get(peer_key)
        if peer is None:
            raise PeerUnreachable("unknown_peer", _short(peer_key))
        return peer

    def _is_connected(self, pid: ID) -> bool:
        return any(not c.is_closed for c in self._swarm.get_connections(pid))

    async def _connect(self, peer: _Peer) -> None:
        async with peer.lock:
            if self._is_connected(peer.pid):
                return
            wait = peer.retry_at - trio.current_time()
            if wait > 0:
                raise PeerUnreachable("backoff", f"{_short(peer.key)} retry in {wait:.2f}s")
            # Dial exactly the registry address: drop whatever identify taught
            # the peerstore, and lift the swarm's own 60 s failure block.
            self._swarm.unblock_peer(peer.pid)
            self._host.get_peerstore().clear_addrs(peer.pid)
            self._host.get_peerstore().add_addrs(peer.pid, [peer.addr], ADDR_TTL)
            try:
                with trio.fail_after(self._dial_timeout):
                    await self._host.connect(PeerInfo(peer.pid, [peer.addr]))
            except Exception as exc:
                peer.failures += 1
                delay = min(self._backoff_cap, self._backoff_base * 2 ** (peer.failures - 1))
                peer.retry_at = trio.current_time() + delay
                self.stats["dial_failures"] += 1
                log.info(
                    "dial %s at %s failed (%s); backing off %.2fs",
                    _short(peer.key), peer.addr, type(exc).__name__, delay,
                )
                raise PeerUnreachable("dial_failed", f"{_short(peer.key)}: {exc}") from exc
            if peer.dialed_before:
                self.stats["reconnects"] += 1
                log.info("reconnected to %s", _short(peer.key))
            peer.dialed_before, peer.failures, peer.retry_at = True, 0, 0.0

    async def _open_stream(self, peer: _Peer, protocol: str) -> INetStream:
        # Two tries: a connection the remote just closed can still be listed
        # until our side notices; the second try dials afresh.
        for attempt in (1, 2):
            await self._connect(peer)
            try:
                return await self._host.new_stream(peer.pid, [TProtocol(protocol)])
            except StreamFailure as exc:
                if self._is_connected(peer.pid):
                    raise RemoteError("protocol_refused", protocol) from exc
                failure: Exception = exc
            except Exception as exc:
                failure = exc
            log.debug("stream to %s failed (try %d): %r", _short(peer.key), attempt, failure)
            await self._drop_connection(peer.pid)
        raise PeerUnreachable("dial_failed", f"{_short(peer.key)}: {failure}")

    async def _drop_connection(self, pid: ID) -> None:
        with trio.move_on_after(self._close_timeout):
            try:
                await self._host.disconnect(pid)
            except Exception:
                log.debug("disconnect %s failed", pid, exc_info=True)

    # -- admission (server side) -------------------------------------------

    async def _hold_inbound(self, read_write_closer: Any, maddr: multiaddr.Multiaddr, failure_event: Any) -> None:
        """libp2p's inbound handler, holding its inbound slot while the connection lives.

        py-libp2p's own handler waits for the *swarm* to stop after a
        successful upgrade, so every inbound connection ever accepted keeps
        one of the 250 inbound slots after it closed: 250 handshakes (an
        evicted outsider's included) and nobody could connect any more.
        """
        raw_conn = RawConnection(read_write_closer, False)
        try:
            muxed = await self._swarm.upgrade_inbound_raw_conn(raw_conn, maddr)
        except Exception as exc:
            log.debug("inbound connection from %s not upgraded: %r", maddr, exc)
            await self._quietly(raw_conn.close)
            return
        closed = getattr(muxed, "event_closed", None)
        if isinstance(closed, trio.Event):
            await closed.wait()
        else:  # another muxer: libp2p's own behaviour
            await self._swarm.manager.wait_finished()

    async def _upgrade_inbound(self, raw_conn: IRawConnection, maddr: multiaddr.Multiaddr) -> IMuxedConn:
        """libp2p's inbound upgrade (Noise, yamux), inside an outsider slot.

        The slot is given back once the peer proves an admitted key, or once
        an outsider's connection has been closed by ``_evict``.
        """
        remote = raw_conn.get_remote_address() if hasattr(raw_conn, "get_remote_address") else None
        address = str(remote[0]) if remote else "?"
        full = self.outsiders.take(address)
        if full is not None:
            self._refusals.count(f"refused_{full}", f"connection from {address} before its handshake")
            with trio.move_on_after(self._close_timeout):
                await raw_conn.close()
            raise SwarmException(f"no free {full.replace('_', ' ')} for {address}")
        handed_over = False
        try:
            try:
                muxed = await self._libp2p_upgrade(raw_conn, maddr)
            except Exception:
                self.stats["handshakes_failed"] += 1  # including the handshake timeout
                raise
            pid = muxed.peer_id
            if not self._admits_connection(key_of(pid)):
                self._refusals.count("refused_unregistered", f"peer {pid} from {address}")
                eviction = self._evictions[pid] = _Eviction()
                if self._nursery is not None:
                    self._nursery.start_soon(self._evict, pid, address, eviction)
                    handed_over = True
                else:  # not serving yet or any more
                    await self._drop_connection(pid)
            return muxed
        finally:
            if not handed_over:
                self.outsiders.give_back(address)

    async def _evict(self, pid: ID, address: str, eviction: _Eviction) -> None:
        """Close an outsider's connection once its refusal is out, or after the grace period."""
        try:
            with trio.move_on_after(self.budgets.refusal_grace):
                await eviction.answered.wait()
            if eviction.active:  # a refusal is being written: let it finish
                with trio.move_on_after(self.budgets.first_frame_timeout + self._close_timeout):
                    await eviction.answered.wait()
            await self._drop_connection(pid)
        finally:
            if self._evictions.get(pid) is eviction:
                del self._evictions[pid]
            self.outsiders.give_back(address)

    def _no_identify_for_outsiders(self) -> None:
        """The host identifies every new peer and pushes its identify to all on changes: outsiders excluded."""
        host = self._host
        schedule = host._schedule_identify

        def schedule_identify(peer_id: ID, *, reason: str) -> None:
            if self._admits_connection(key_of(peer_id)):
                schedule(peer_id, reason=reason)

        async def push_identify() -> None:
            from libp2p.identity.identify_push.identify_push import push_identify_to_peers

            peers = {p for p in host.get_connected_peers() if self._admits_connection(key_of(p))}
            try:
                await push_identify_to_peers(host, peer_ids=peers)
            except Exception:
                log.debug("identify push failed", exc_info=True)

        host._schedule_identify = schedule_identify
        host._push_identify_to_all_peers = push_identify

    async def _route_stream(self, stream: INetStream) -> None:
        """Admitted peers reach every protocol (ours, identify, ping); outsiders only a refusal."""
        pid = stream.muxed_conn.peer_id
        if self._admits_connection(key_of(pid)):
            await self._host_stream_handler(stream)
            return
        eviction = self._evictions.setdefault(pid, _Eviction())
        eviction.active += 1
        try:
            protocol = None
            with trio.move_on_after(self.budgets.refusal_grace):
                protocol, _ = await self._outsider_select.negotiate(MultiselectCommunicator(stream), 1)
            if protocol is None:
                self._refusals.count("refused_outsider_protocol", f"a stream from {pid}")
                await self._reset(stream)
                return
            await self._refuse(stream, str(protocol), pid)
            eviction.answered.set()
        except Exception as exc:  # "na" for identify/ping, or the peer went away
            log.debug("outsider stream from %s ended: %r", pid, exc)
            await self._reset(stream)
        finally:
            eviction.active -= 1

    # -- handlers (server side) --------------------------------------------

    def set_handler(
        self, protocol: str, handler: Handler, *, allowed: Allowed | None = None
    ) -> None:
        check_protocol(protocol)
        self._routes[protocol] = Route(handler, allowed)

        async def serve(stream: INetStream) -> None:
            await self._serve(protocol, stream)

        self._host.set_stream_handler(TProtocol(protocol), serve)
        self._outsider_select.add_handler(TProtocol(protocol), None)

    def _admits(self, protocol: str, peer_key: PeerKey | None) -> bool:
        route = self._routes.get(protocol)
        return route is not None and route.admits(peer_key)

    async def _serve(self, protocol: str, stream: INetStream) -> None:
        # Runs in the swarm's per-connection nursery: nothing may escape.
        pid = stream.muxed_conn.peer_id
        peer_key = key_of(pid)
        if not self._admits(protocol, peer_key):
            return await self._refuse(stream, protocol, pid)
        assert peer_key is not None
        if not self.streams.take(peer_key):
            self._refusals.count("rejected_streams", f"{protocol} stream from {pid}: more than "
                                                     f"{self.budgets.streams_per_peer} open at once")
            return await self._reset(stream)
        try:
            await self._serve_admitted(protocol, stream, pid, peer_key)
        finally:
            self.streams.give_back(peer_key)

    async def _serve_admitted(self, protocol: str, stream: INetStream, pid: ID, peer_key: PeerKey) -> None:
        reader = FrameReader(
            _StreamSource(stream), max_size=self._max_frame,
            deadline=self.budgets.frame_deadline, allowance=self.inflight.for_peer(peer_key),
        )
        try:
            async for frame in reader:
                self.stats["frames_in"] += 1
                self.stats["bytes_in"] += HEADER_SIZE + len(frame)
                wait = self.rates.delay(peer_key, HEADER_SIZE + len(frame))
                if wait > 0:  # over its rate: this stream is read again later (the frame is kept)
                    self.stats["throttled_frames"] += 1
                    await trio.sleep(wait)
                kind, body = wire.unpack(frame)
                if not self._admits(protocol, peer_key):
                    return await self._refuse(stream, protocol, pid, first_frame_read=True)
                assert peer_key is not None
                route = self._routes[protocol]
                if kind == wire.MSG:
                    await self._deliver(route, protocol, peer_key, body)
                elif kind == wire.REQ:
                    reply = await self._answer(route, protocol, peer_key, body)
                    await self._write(stream, reply)
                else:
                    raise MalformedMessage(detail=f"kind {kind:#x} from a client")
            await self._close_stream(stream)
        except TruncatedFrame as exc:
            # The connection went away mid-frame (e.g. the peer shut down).
            log.debug("%s stream from %s ended: %s", protocol, pid, exc)
            await self._reset(stream)
        except FrameError as exc:
            # Oversized, slow, over budget or malformed: counted by kind.
            key = {
                FrameTooLarge: "rejected_oversize", FrameTimeout: "rejected_frame_timeout",
                OverBudget: "rejected_over_budget",
            }.get(type(exc), "rejected_malformed")
            self._refusals.count(key, f"reset {protocol} stream from {pid}: {exc}")
            await self._reset(stream)
        except Exception as exc:
            # Remote reset, connection lost, or a bug here: end this stream only.
            log.debug("%s stream from %s ended: %r", protocol, pid, exc)
            await self._reset(stream)
        finally:
            reader.release()

    async def _refuse(
        self, stream: INetStream, protocol: str, pid: ID, *, first_frame_read: bool = False
    ) -> None:
        self._refusals.count("rejected_unauthorized", f"{protocol} stream from {pid}")
        # Read the request first (briefly): a client still writing it when
        # the refusal arrives can lose the answer (js-libp2p 3.x does).
        # Then say why, half-close, then reset. The FIN must come before the
        # RST: py-libp2p's yamux drops unread data when a RST arrives on an
        # open stream, so the client would lose even the protocol ack and see
        # a random negotiation failure instead of a clear refusal.
        with trio.move_on_after(self._close_timeout) as scope:
            scope.shield = True
            try:
                if not first_frame_read:
                    with trio.move_on_after(self.budgets.first_frame_timeout):
                        first = FrameReader(_StreamSource(stream), max_size=REFUSED_FIRST_FRAME)
                        try:
                            await first.read_frame()
                        except FrameError:
                            pass  # oversized or cut short: refuse all the same
                await self._write(stream, wire.pack_error("unauthorized"))
                await stream.close()
            except Exception:
                log.debug("refusal notice to %s failed", pid, exc_info=True)
        await self._reset(stream)

    async def _deliver(self, route: Route, protocol: str, peer: PeerKey, body: bytes) -> None:
        try:
            await route.handler(peer, body)
        except Exception:
            self.stats["handler_errors"] += 1
            log.exception("%s handler failed on a message from %s", protocol, _short(peer))

    async def _answer(self, route: Route, protocol: str, peer: PeerKey, body: bytes) -> bytes:
        self.stats["requests_in"] += 1
        try:
            reply = await route.handler(peer, body)
        except Exception:
            self.stats["handler_errors"] += 1
            log.exception("%s handler failed on a request from %s", protocol, _short(peer))
            return wire.pack_error("handler_error")
        if reply is None:
            log.warning("%s handler returned None for a request", protocol)
            return wire.pack_error("no_response")
        if len(reply) > self.max_payload:
            log.warning("%s handler reply of %d bytes is too large", protocol, len(reply))
            return wire.pack_error("response_too_large")
        return wire.pack(wire.RESP, reply)

    # -- one-way (client side) ---------------------------------------------

    async def send(self, peer: PeerKey, protocol: str, payload: bytes) -> None:
        frame = encode_frame(wire.pack(wire.MSG, payload), max_size=self._max_frame)
        self._peer(peer)
        box = self._outboxes.get((peer, protocol))
        if box is None:
            assert self._nursery is not None  # _peer() checked that we run
            box = self._outboxes[(peer, protocol)] = _Outbox(self._queue_size)
            self._nursery.start_soon(self._pump, peer, protocol, box)
        try:
            await box.tx.send(frame)  # waits while the queue is full: back-pressure
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise PeerUnreachable("closed", "network is shutting down") from None

    async def _pump(self, peer_key: PeerKey, protocol: str, box: _Outbox) -> None:
        async for first in box.rx:
            batch, size = [first], len(first)
            while size < self._batch_bytes:
                try:
                    frame = box.rx.receive_nowait()
                except trio.WouldBlock:
                    break
                batch.append(frame)
                size += len(frame)
            await self._write_batch(peer_key, protocol, box, batch)

    async def _write_batch(
        self, peer_key: PeerKey, protocol: str, box: _Outbox, batch: list[bytes]
    ) -> None:
        data = b"".join(batch)
        for _attempt in (1, 2):  # a second try on a fresh stream if the old one died
            if box.stream is None:
                try:
                    box.stream = await self._open_stream(self._peer(peer_key), protocol)
                except (PeerUnreachable, RemoteError) as exc:
                    self.stats["dropped"] += len(batch)
                    log.debug("dropped %d %s frames for %s: %s", len(batch), protocol, _short(peer_key), exc)
                    return
                assert self._nursery is not None  # we run inside it
                self._nursery.start_soon(self._watch, peer_key, protocol, box, box.stream)
            stream = box.stream
            try:
                await stream.write(data)
            except Exception as exc:
                log.debug("write to %s failed: %r", _short(peer_key), exc)
                if box.stream is stream:
                    box.stream = None
                await self._reset(stream)
                continue
            self.stats["frames_out"] += len(batch)
            self.stats["bytes_out"] += len(data)
            self.stats["writes_out"] += 1
            return
        self.stats["dropped"] += len(batch)

    async def _watch(self, peer_key: PeerKey, protocol: str, box: _Outbox, stream: INetStream) -> None:
        """Notice at once when the remote closes or resets a one-way stream.

        The remote never writes on it, so any return from ``read`` means the
        stream is over; the next batch then opens a fresh one.
        """
        try:
            while await stream.read(READ_CHUNK):
                pass
        except Exception as exc:  # StreamEOF, StreamReset (yamux reports most resets as EOF)
            how = type(exc).__name__
        else:
            how = "EOF"
        if box.stream is stream:
            box.stream = None
            self.stats["remote_stream_ends"] += 1
            log.info("%s stream to %s ended by remote (%s)", protocol, _short(peer_key), how)
        await self._reset(stream)

    # -- request/response (client side) ------------------------------------

    async def request(
        self, peer: PeerKey, protocol: str, payload: bytes, *, timeout: float
    ) -> bytes:
        frame = encode_frame(wire.pack(wire.REQ, payload), max_size=self._max_frame)
        target = self._peer(peer)
        self.stats["requests_out"] += 1
        with trio.move_on_after(timeout):
            return await self._exchange(target, protocol, frame)
        raise RequestTimeout(detail=f"{protocol} to {_short(peer)} after {timeout}s")

    async def _exchange(self, peer: _Peer, protocol: str, frame: bytes) -> bytes:
        stream = await self._open_stream(peer, protocol)
        done = False
        try:
            try:
                await self._write(stream, frame, encoded=True)
                reader = FrameReader(_StreamSource(stream), max_size=self._max_frame)
                reply = await reader.read_frame()
            except FrameTooLarge as exc:
                self.stats["rejected_oversize"] += 1
                raise RemoteError("bad_reply", str(exc)) from exc
            except Exception as exc:
                # StreamReset, StreamEOF mid-frame, connection lost: all alike.
                raise RemoteError("reset", repr(exc)) from exc
            if reply is None:
                # py-libp2p's yamux reports a remote RST as EOF: a refused
                # request and a remote that hung up look the same.
                raise RemoteError("reset", "stream ended without a reply")
            self.stats["frames_in"] += 1
            self.stats["bytes_in"] += HEADER_SIZE + len(reply)
            try:
                kind, body = wire.unpack(reply)
            except MalformedMessage as exc:
                raise RemoteError("bad_reply", str(exc)) from exc
            if kind == wire.ERR:
                raise RemoteError(wire.error_reason(body))
            if kind != wire.RESP:
                raise RemoteError("bad_reply", f"kind {kind:#x}")
            done = True
            return body
        finally:
            if done:
                await self._close_stream(stream)
            else:
                await self._reset(stream)

    # -- stream helpers ----------------------------------------------------

    async def _write(self, stream: INetStream, data: bytes, *, encoded: bool = False) -> None:
        frame = data if encoded else encode_frame(data, max_size=self._max_frame)
        await stream.write(frame)
        self.stats["frames_out"] += 1
        self.stats["bytes_out"] += len(frame)
        self.stats["writes_out"] += 1

    async def _close_stream(self, stream: INetStream) -> None:
        await self._quietly(stream.close)

    async def _reset(self, stream: INetStream) -> None:
        await self._quietly(stream.reset)

    async def _quietly(self, action: Callable[[], Any]) -> None:
        # Cleanup must run even while we are being cancelled, but not forever.
        with trio.move_on_after(self._close_timeout) as scope:
            scope.shield = True
            try:
                await action()
            except Exception:
                log.debug("stream cleanup failed", exc_info=True)
