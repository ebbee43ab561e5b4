"""Connection-level admission and the network budgets (issue 16; issue 19 findings 1, 4, 8), on 127.0.0.1.

An outsider (a key no route of the server admits and not in its peer table) is refused with a reason it can
read and disconnected within a second of its handshake; identify and ping tell it nothing; idle sockets and
outsiders cannot take the slots registry keys need; a half-sent frame is dropped at its deadline and cannot
pin more than the in-flight budgets. The tests wait on events and on the server resetting streams, not on time.
"""

from __future__ import annotations

import logging
import struct
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import multiaddr
import pytest
import trio
import trio.testing
from libp2p.abc import INotifee
from libp2p.custom_types import TProtocol
from libp2p.host.exceptions import StreamFailure
from libp2p.host.ping import ID as PING_ID
from libp2p.identity.identify.identify import ID as IDENTIFY_ID
from libp2p.network.stream.exceptions import StreamEOF, StreamError
from libp2p.peer.peerinfo import PeerInfo

from stromledger.net import LIGHT, SUBMIT, RemoteError
from stromledger.net.admission import Budgets, ByteBudget, Outsiders, PeerRates, RefusalLog, StreamSlots
from stromledger.net.identity import libp2p_id
from stromledger.net.p2p import P2PNetwork

TIMEOUT = 10
MiB = 1024 * 1024
OUTSIDER_SOURCE = "127.0.0.2"  # Linux answers all of 127/8: an attacker on another address than the operator


def seed(i: int) -> bytes:
    return bytes([i]) * 32


async def answer(peer: bytes, payload: bytes) -> bytes:
    return b"ok:" + payload


class Watch(INotifee):
    """Client-side connection events: `up` when connected, `down` when the server closed the connection."""

    def __init__(self) -> None:
        self.up, self.down = trio.Event(), trio.Event()
        self.up_at = 0.0

    async def connected(self, network, conn) -> None:  # type: ignore[no-untyped-def]
        self.up_at = trio.current_time()
        self.up.set()

    async def disconnected(self, network, conn) -> None:  # type: ignore[no-untyped-def]
        self.down.set()

    async def opened_stream(self, network, stream) -> None:  # type: ignore[no-untyped-def]
        pass

    async def closed_stream(self, network, stream) -> None:  # type: ignore[no-untyped-def]
        pass

    async def listen(self, network, multiaddr) -> None:  # type: ignore[no-untyped-def]
        pass

    async def listen_close(self, network, multiaddr) -> None:  # type: ignore[no-untyped-def]
        pass


@asynccontextmanager
async def server_and(*clients: P2PNetwork, budgets: Budgets = Budgets(),
                     admit=None) -> AsyncIterator[P2PNetwork]:  # type: ignore[no-untyped-def]
    """A server admitting only seed(2) (the operator) on LIGHT and SUBMIT; every client knows where it is."""
    server = P2PNetwork(seed(1), budgets=budgets, admit=admit)
    operator = P2PNetwork(seed(2)).local_key
    for protocol in (LIGHT, SUBMIT):
        server.set_handler(protocol, answer, allowed={operator}.__contains__)
    async with server:
        async with trio.open_nursery() as nursery:
            for client in clients:
                await nursery.start(client.run)
                assert server.listen_addr is not None
                client.add_peer(server.local_key, server.listen_addr)
            yield server
            nursery.cancel_scope.cancel()


def watch(client: P2PNetwork) -> Watch:
    w = Watch()
    client.host.get_network().register_notifee(w)
    return w


@pytest.mark.trio
async def test_outsider_is_refused_with_its_reason_and_disconnected_within_a_second() -> None:
    outsider, operator = P2PNetwork(seed(9)), P2PNetwork(seed(2))
    events = watch(outsider)
    with trio.fail_after(TIMEOUT):
        async with server_and(outsider, operator) as server:
            with pytest.raises(RemoteError) as refused:
                await outsider.request(server.local_key, LIGHT, b"hello", timeout=5)
            assert refused.value.reason == "unauthorized"
            await events.up.wait()
            with trio.fail_after(1.0):
                await events.down.wait()
            assert trio.current_time() - events.up_at < 1.0
            assert await operator.request(server.local_key, LIGHT, b"x", timeout=5) == b"ok:x"
            assert server.connected_peers() == {operator.local_key}
            assert server.stats["refused_unregistered"] == 1
            assert server.stats["rejected_unauthorized"] == 1
            assert server.outsiders.total == 0
            # The outsider's inbound slot came back when its connection closed (py-libp2p keeps it until
            # the swarm stops: 250 evicted outsiders would lock everyone out); the operator holds one.
            await trio.testing.wait_all_tasks_blocked()
            assert server.host.get_network()._inbound_limiter.borrowed_tokens == 1


@pytest.mark.trio
async def test_a_registry_key_stays_connected_even_where_a_protocol_refuses_it() -> None:
    validator = P2PNetwork(seed(3))  # registered, but not for LIGHT on this server
    with trio.fail_after(TIMEOUT):
        async with server_and(validator, admit={validator.local_key}.__contains__) as server:
            with pytest.raises(RemoteError) as refused:
                await validator.request(server.local_key, LIGHT, b"hello", timeout=5)
            assert refused.value.reason == "unauthorized"
            assert server.connected_peers() == {validator.local_key}
            assert server.stats["refused_unregistered"] == 0 and server.stats["rejected_unauthorized"] == 1


@pytest.mark.trio
async def test_silent_outsider_is_disconnected_and_gets_no_identify_or_ping() -> None:
    outsider = P2PNetwork(seed(9))
    events = watch(outsider)
    with trio.fail_after(TIMEOUT):
        async with server_and(outsider) as server:
            host = outsider.host
            pid = libp2p_id(server.local_key)
            await host.connect(PeerInfo(pid, [multiaddr.Multiaddr(server.listen_addr)]))
            for protocol in (PING_ID, IDENTIFY_ID):
                with pytest.raises(Exception):
                    stream = await host.new_stream(pid, [TProtocol(protocol)])
                    await stream.write(b"\x00" * 32)
                    await stream.read(32)  # nothing comes back: the stream is reset
            with trio.fail_after(1.0):
                await events.down.wait()
            assert server.connected_peers() == set()


@pytest.mark.trio
async def test_idle_sockets_cannot_take_the_operators_slots() -> None:
    budgets = Budgets(handshake_timeout=2.0, outsider_slots=6, outsider_slots_per_address=3)
    operator = P2PNetwork(seed(2))
    with trio.fail_after(TIMEOUT):
        async with server_and(operator, budgets=budgets) as server:
            port = int(server.listen_addr.rsplit("/", 1)[1])
            idle = []
            for _ in range(3):  # one by one: each has taken its slot before the next connects
                idle.append(await trio.open_tcp_stream("127.0.0.1", port, local_address=OUTSIDER_SOURCE))
                await trio.testing.wait_all_tasks_blocked()
            assert server.outsiders.by_address[OUTSIDER_SOURCE] == 3
            extra = await trio.open_tcp_stream("127.0.0.1", port, local_address=OUTSIDER_SOURCE)
            assert await extra.receive_some(100) == b""  # over the per-address cap: closed at once
            assert server.stats["refused_address_slots"] == 1
            assert server.outsiders.by_address[OUTSIDER_SOURCE] == 3
            # The registered operator, from another address, still gets through at once.
            assert await operator.request(server.local_key, SUBMIT, b"r", timeout=1) == b"ok:r"
            # The idle sockets are dropped at the handshake timeout and their slots come back.
            for sock in idle:
                try:
                    while await sock.receive_some(100):
                        pass
                except trio.BrokenResourceError:
                    pass
            for sock in idle + [extra]:
                await sock.aclose()
            assert server.stats["handshakes_failed"] >= 3
            assert server.outsiders.total == 0


async def _stalled_frame(client: P2PNetwork, server: P2PNetwork, declared: int, sent: int):  # type: ignore[no-untyped-def]
    """A stream whose frame header declares `declared` bytes of which only `sent` are written."""
    stream = await client.host.new_stream(libp2p_id(server.local_key), [TProtocol(SUBMIT)])
    await stream.write(struct.pack(">I", declared) + b"\x02" + b"\x00" * (sent - 1))
    return stream


async def _until_reset(stream) -> None:  # type: ignore[no-untyped-def]
    try:
        while await stream.read(100):
            pass
    except (StreamEOF, StreamError):
        pass


@pytest.mark.trio
async def test_half_sent_frames_are_bounded_and_dropped_at_their_deadline() -> None:
    budgets = Budgets(frame_deadline=1.0, inflight_per_peer=5 * MiB, inflight_total=64 * MiB)
    operator = P2PNetwork(seed(2))
    with trio.fail_after(TIMEOUT):
        async with server_and(operator, budgets=budgets) as server:
            assert await operator.request(server.local_key, SUBMIT, b"a", timeout=5) == b"ok:a"  # connected
            first = await _stalled_frame(operator, server, 3 * MiB, 1000)
            await trio.testing.wait_all_tasks_blocked()  # the server has read its header
            assert server.inflight.by_peer[operator.local_key] == 3 * MiB
            second = await _stalled_frame(operator, server, 3 * MiB, 1000)
            await _until_reset(second)  # 3 + 3 MiB > the peer's 5 MiB: refused at once
            assert server.stats["rejected_over_budget"] == 1
            assert server.inflight.by_peer[operator.local_key] == 3 * MiB
            await _until_reset(first)  # incomplete after its deadline: dropped
            assert server.stats["rejected_frame_timeout"] == 1
            assert server.inflight.total == 0
            assert await operator.request(server.local_key, SUBMIT, b"b", timeout=5) == b"ok:b"


@pytest.mark.trio
async def test_streams_per_peer_are_capped_and_come_back() -> None:
    operator = P2PNetwork(seed(2))
    with trio.fail_after(TIMEOUT):
        async with server_and(operator, budgets=Budgets(streams_per_peer=2)) as server:
            assert await operator.request(server.local_key, SUBMIT, b"a", timeout=5) == b"ok:a"  # connected
            held = [await _stalled_frame(operator, server, 1000, 10) for _ in range(2)]
            await trio.testing.wait_all_tasks_blocked()
            assert server.streams.by_peer[operator.local_key] == 2
            try:  # over the cap: reset at once (the opener may see it while negotiating), the two held stay
                await _until_reset(await _stalled_frame(operator, server, 1000, 10))
            except StreamFailure:
                pass
            assert server.stats["rejected_streams"] == 1
            for stream in held:
                await stream.reset()
            await trio.testing.wait_all_tasks_blocked()
            assert await operator.request(server.local_key, SUBMIT, b"b", timeout=5) == b"ok:b"
            assert server.stats["rejected_streams"] == 1


@pytest.mark.trio
async def test_a_peer_over_its_frame_rate_is_slowed_down_not_dropped() -> None:
    operator = P2PNetwork(seed(2))
    with trio.fail_after(TIMEOUT):
        async with server_and(operator, budgets=Budgets(frames_per_second=2, frames_burst=2)) as server:
            assert await operator.request(server.local_key, SUBMIT, b"x", timeout=5) == b"ok:x"  # connected
            answers: dict[int, bytes] = {}

            async def ask(i: int) -> None:
                answers[i] = await operator.request(server.local_key, SUBMIT, bytes([i]), timeout=8)

            async with trio.open_nursery() as nursery:  # six at once: one token left, 2 more per second
                for i in range(6):
                    nursery.start_soon(ask, i)
            assert answers == {i: b"ok:" + bytes([i]) for i in range(6)}  # every request answered ...
            assert server.stats["throttled_frames"] >= 3  # ... those beyond the burst after a wait


def test_peer_rates_are_token_buckets_per_peer() -> None:
    now = [0.0]
    rates = PeerRates(Budgets(frames_per_second=10, frames_burst=2, bytes_per_second=1000, bytes_burst=1000),
                      lambda: now[0])
    assert [rates.delay(b"a", 10), rates.delay(b"a", 10)] == [0.0, 0.0]  # the burst
    assert rates.delay(b"a", 10) == pytest.approx(0.1)  # one frame over: a tenth of a second
    assert rates.delay(b"b", 10) == 0.0  # another peer has its own buckets
    now[0] = 1.0
    assert rates.delay(b"a", 10) == 0.0  # refilled (up to the burst)
    assert rates.delay(b"a", 2990) == pytest.approx(2.0)  # bytes: 3,000 over a burst of 1,000 at 1,000/s


def test_stream_slots_per_peer() -> None:
    slots = StreamSlots(2)
    assert [slots.take(b"a"), slots.take(b"a"), slots.take(b"a"), slots.take(b"b")] == [True, True, False, True]
    slots.give_back(b"a")
    assert slots.take(b"a") and dict(slots.by_peer) == {b"a": 2, b"b": 1}


def test_refusal_log_is_throttled_but_every_refusal_counted(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    stats: Counter[str] = Counter()
    refusals = RefusalLog(logging.getLogger("test.refusals"), stats, 10.0, lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.refusals"):
        for _ in range(500):
            refusals.count("refused_unregistered", "peer X")
        now[0] = 10.5
        refusals.count("refused_unregistered", "peer Y")
        refusals.count("rejected_oversize", "stream Z")
    assert stats == Counter({"refused_unregistered": 501, "rejected_oversize": 1})
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["refused_unregistered: peer X", "refused_unregistered: peer Y (and 499 more since the last line)",
                     "rejected_oversize: stream Z"]


def test_budgets_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="frame_deadline"):
        Budgets(frame_deadline=0)
    with pytest.raises(ValueError, match="per_address"):
        Budgets(outsider_slots=2, outsider_slots_per_address=3)


def test_outsider_slots_are_shared_and_capped_per_address() -> None:
    slots = Outsiders(Budgets(outsider_slots=3, outsider_slots_per_address=2))
    assert [slots.take("10.0.0.1"), slots.take("10.0.0.1"), slots.take("10.0.0.1")] == [None, None, "address_slots"]
    assert slots.take("10.0.0.2") is None
    assert slots.take("10.0.0.3") == "outsider_slots"  # all three taken, whoever asks
    slots.give_back("10.0.0.1")
    assert slots.take("10.0.0.3") is None and slots.total == 3


def test_inflight_bytes_are_bounded_per_peer_and_in_total() -> None:
    budget = ByteBudget(per_peer=10, total=15)
    a, b, c = budget.for_peer(b"a"), budget.for_peer(b"b"), budget.for_peer(b"c")
    assert a.reserve(8) is None and a.reserve(3) == "peer_inflight"
    assert b.reserve(7) is None and c.reserve(1) == "total_inflight"
    a.release(8)
    assert c.reserve(1) is None and budget.total == 8 and dict(budget.by_peer) == {b"b": 7, b"c": 1}
