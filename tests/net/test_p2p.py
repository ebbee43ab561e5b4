"""Real py-libp2p hosts on 127.0.0.1 in one trio run.

No sleeps: tests wait on events set by handlers, on typed errors, or on
``wait_all_tasks_blocked`` (loopback writes land in the peer's socket buffer
at once, so "every task idle" means the exchange has settled).
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import multiaddr
import pytest
import trio
import trio.testing
from inbox import Inbox
from libp2p import new_host
from libp2p.custom_types import TProtocol
from libp2p.host.basic_host import BasicHost
from libp2p.network.config import RetryConfig
from libp2p.network.stream.exceptions import StreamError
from libp2p.peer.peerinfo import PeerInfo
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

from stromledger.crypto import SigningKey
from stromledger.net import (
    BATCH,
    CONSENSUS,
    LIGHT,
    MAX_FRAME,
    SUBMIT,
    SYNC,
    FrameTooLarge,
    ListenError,
    PeerUnreachable,
    RemoteError,
    RequestTimeout,
)
from stromledger.net.framing import encode_frame
from stromledger.net.host import security_protocols
from stromledger.net.identity import key_of, key_pair_from_seed, peer_id_for
from stromledger.net.p2p import P2PNetwork

LOOPBACK = "/ip4/127.0.0.1/tcp/0"
TIMEOUT = 10


def seed(i: int) -> bytes:
    return bytes([i]) * 32


def echo(tag: bytes):  # type: ignore[no-untyped-def]
    async def handler(peer: bytes, payload: bytes) -> bytes:
        return tag + peer + payload

    return handler


@asynccontextmanager
async def running(*nets: P2PNetwork) -> AsyncIterator[None]:
    """Start every node, then teach each one where the others listen."""
    async with AsyncExitStack() as stack:
        for net in nets:
            await stack.enter_async_context(net)
        for net in nets:
            for other in nets:
                if other is not net:
                    assert other.listen_addr is not None
                    net.add_peer(other.local_key, other.listen_addr)
        yield


def plaintext_host(seed_bytes: bytes) -> BasicHost:
    """A host that offers only unencrypted /plaintext/2.0.0."""
    kp = key_pair_from_seed(seed_bytes)
    host = new_host(
        key_pair=kp,
        sec_opt={TProtocol(PLAINTEXT_PROTOCOL_ID): InsecureTransport(kp)},
        muxer_opt={TProtocol(YAMUX_ID): Yamux},
        listen_addrs=[multiaddr.Multiaddr(LOOPBACK)],
    )
    assert isinstance(host, BasicHost)
    host.get_network().retry_config = RetryConfig(max_retries=0)  # fail fast
    return host


def test_identity_mapping() -> None:
    net = P2PNetwork(seed(9))
    assert peer_id_for(net.local_key) == net.peer_id.to_base58() == net.host.get_id().to_base58()
    assert key_of(net.host.get_id()) == net.local_key
    assert key_of(peer_id_for(net.local_key)) == net.local_key
    assert net.local_key == SigningKey(seed(9)).public  # the registry's key
    assert security_protocols(net.host) == ["/noise"]


@pytest.mark.trio
async def test_four_hosts_one_way_and_requests_over_several_protocols() -> None:
    nets = [P2PNetwork(seed(i)) for i in range(1, 5)]
    keys = [n.local_key for n in nets]
    consensus = {n.local_key: Inbox() for n in nets}
    batch = {n.local_key: Inbox() for n in nets}
    for n in nets:
        n.set_handler(CONSENSUS, consensus[n.local_key].handler)
        n.set_handler(BATCH, batch[n.local_key].handler)
        n.set_handler(SYNC, echo(b"sync:"))
        n.set_handler(LIGHT, echo(b"light:"))
    with trio.fail_after(TIMEOUT):
        async with running(*nets):
            async with trio.open_nursery() as nursery:
                for n in nets:

                    async def chatter(n: P2PNetwork = n) -> None:
                        for i in range(50):
                            await n.broadcast(keys, CONSENSUS, b"c%d" % i)
                            if i % 5 == 0:
                                for k in keys:
                                    if k != n.local_key:
                                        await n.send(k, BATCH, b"b%d" % i)

                    nursery.start_soon(chatter)
            for n in nets:
                await consensus[n.local_key].wait_for(3 * 50)
                await batch[n.local_key].wait_for(3 * 10)
            for n in nets:
                for other in keys:
                    if other == n.local_key:
                        continue
                    assert consensus[n.local_key].from_(other) == [b"c%d" % i for i in range(50)]
                    assert batch[n.local_key].from_(other) == [b"b%d" % i for i in range(0, 50, 5)]
                assert consensus[n.local_key].from_(n.local_key) == []

            for n in nets:
                for other in nets:
                    if other is n:
                        continue
                    reply = await n.request(other.local_key, SYNC, b"ping", timeout=5)
                    assert reply == b"sync:" + n.local_key + b"ping"
                    reply = await n.request(other.local_key, LIGHT, b"x" * 100_000, timeout=5)
                    assert reply == b"light:" + n.local_key + b"x" * 100_000
                with pytest.raises(RemoteError) as err:
                    await n.request(keys[0] if n is not nets[0] else keys[1], SUBMIT, b"?", timeout=5)
                assert err.value.reason == "protocol_refused"

            for n in nets:
                assert n.connected_peers() == set(keys) - {n.local_key}
                assert n.stats["frames_out"] >= 3 * 60
                # One-way frames are batched: fewer writes than frames.
                assert n.stats["writes_out"] < n.stats["frames_out"]
                assert n.stats["dial_failures"] == 0


@pytest.mark.trio
async def test_unauthorized_peer_refused_on_validator_only_protocol() -> None:
    validator, member, outsider = (P2PNetwork(seed(i)) for i in (10, 11, 12))
    validators = {validator.local_key, member.local_key}
    inbox = Inbox()
    validator.set_handler(CONSENSUS, inbox.handler, allowed=validators.__contains__)
    validator.set_handler(SYNC, echo(b"s:"), allowed=validators.__contains__)
    validator.set_handler(SUBMIT, echo(b"open:"))  # anyone may submit
    with trio.fail_after(TIMEOUT):
        async with running(validator, member, outsider):
            with pytest.raises(RemoteError) as err:
                await outsider.request(validator.local_key, SYNC, b"x", timeout=5)
            assert err.value.reason == "unauthorized", err.value.detail
            assert validator.stats["rejected_unauthorized"] == 1

            await outsider.send(validator.local_key, CONSENSUS, b"forged")
            await member.send(validator.local_key, CONSENSUS, b"real")
            await inbox.wait_for(1)
            await trio.testing.wait_all_tasks_blocked()
            assert inbox.items == [(member.local_key, b"real")]
            assert validator.stats["rejected_unauthorized"] == 2
            assert outsider.stats["remote_stream_ends"] == 1

            # The same connection still serves what the outsider may use.
            reply = await outsider.request(validator.local_key, SUBMIT, b"r", timeout=5)
            assert reply == b"open:" + outsider.local_key + b"r"
            assert await member.request(validator.local_key, SYNC, b"y", timeout=5) == (
                b"s:" + member.local_key + b"y"
            )


@pytest.mark.trio
async def test_plaintext_only_peer_cannot_connect() -> None:
    node, friend = P2PNetwork(seed(20)), P2PNetwork(seed(21))
    node.set_handler(SYNC, echo(b""))
    plain = plaintext_host(seed(22))
    plain_key = key_of(plain.get_id())
    assert plain_key is not None
    with trio.fail_after(TIMEOUT):
        async with running(node, friend), plain.run([multiaddr.Multiaddr(LOOPBACK)]):
            assert node.listen_addr is not None
            info = PeerInfo(node.peer_id, [multiaddr.Multiaddr(node.listen_addr)])
            with pytest.raises(Exception) as err:
                await plain.connect(info)
            assert not isinstance(err.value, AssertionError)
            assert plain.get_network().get_connections(node.peer_id) == []
            assert plain_key not in node.connected_peers()

            # Nor does the node dial out to it.
            node.add_peer(plain_key, str(plain.get_transport_addrs()[0]))
            with pytest.raises(PeerUnreachable) as unreachable:
                await node.request(plain_key, SYNC, b"x", timeout=5)
            assert unreachable.value.reason == "dial_failed"

            # The node is unharmed.
            assert await friend.request(node.local_key, SYNC, b"ok", timeout=5) == (
                friend.local_key + b"ok"
            )


@pytest.mark.trio
async def test_default_libp2p_host_would_accept_plaintext() -> None:
    """Control for the test above: the library default is the hazard."""
    kp = key_pair_from_seed(seed(23))
    default = new_host(key_pair=kp, listen_addrs=[multiaddr.Multiaddr(LOOPBACK)])
    plain = plaintext_host(seed(24))
    with trio.fail_after(TIMEOUT):
        async with default.run([multiaddr.Multiaddr(LOOPBACK)]), plain.run(
            [multiaddr.Multiaddr(LOOPBACK)]
        ):
            await plain.connect(PeerInfo(default.get_id(), default.get_transport_addrs()))
            assert plain.get_network().get_connections(default.get_id())
            await plain.disconnect(default.get_id())


@pytest.mark.trio
async def test_bad_frames_reset_only_that_stream() -> None:
    node, rogue, friend = (P2PNetwork(seed(i)) for i in (30, 31, 32))
    inbox = Inbox()
    node.set_handler(BATCH, inbox.handler)
    node.set_handler(SYNC, echo(b""))
    with trio.fail_after(TIMEOUT):
        async with running(node, rogue, friend):
            host = rogue.host
            await rogue.request(node.local_key, SYNC, b"hello", timeout=5)  # connects

            oversized = await host.new_stream(node.peer_id, [TProtocol(BATCH)])
            await oversized.write(struct.pack(">I", 5 * 1024 * 1024) + b"\x01partial")
            with pytest.raises(StreamError):  # reset; yamux may report it as EOF
                await oversized.read(10)
            assert node.stats["rejected_oversize"] == 1

            malformed = await host.new_stream(node.peer_id, [TProtocol(BATCH)])
            await malformed.write(encode_frame(b"\x01fine") + encode_frame(b"\x7fjunk"))
            with pytest.raises(StreamError):
                await malformed.read(10)
            assert node.stats["rejected_malformed"] == 1

            # The rogue's connection and everybody else's still work.
            assert node.local_key in rogue.connected_peers()
            await friend.send(node.local_key, BATCH, b"from friend")
            await rogue.send(node.local_key, BATCH, b"from rogue")
            await inbox.wait_for(3)
            assert sorted(inbox.items) == sorted(
                [
                    (rogue.local_key, b"fine"),
                    (friend.local_key, b"from friend"),
                    (rogue.local_key, b"from rogue"),
                ]
            )
            assert await friend.request(node.local_key, SYNC, b"!", timeout=5) == (
                friend.local_key + b"!"
            )


@pytest.mark.trio
async def test_restarted_node_is_reconnected() -> None:
    # Long backoff: while it runs, contact fails fast and deterministically.
    a = P2PNetwork(seed(40), backoff_base=60.0)
    b1 = P2PNetwork(seed(41))
    first, second = Inbox(), Inbox()
    b1.set_handler(CONSENSUS, first.handler)
    b1.set_handler(SYNC, echo(b"1:"))
    with trio.fail_after(TIMEOUT):
        async with a:
            async with b1:
                assert b1.listen_addr is not None
                addr = b1.listen_addr
                a.add_peer(b1.local_key, addr)
                assert await a.request(b1.local_key, SYNC, b"x", timeout=5) == b"1:" + a.local_key + b"x"
                await a.send(b1.local_key, CONSENSUS, b"before")
                await first.wait_for(1)
            key = b1.local_key

            # b is down: the long-lived stream is gone, dials fail, then back off.
            await trio.testing.wait_all_tasks_blocked()
            assert key not in a.connected_peers()
            with pytest.raises(PeerUnreachable) as err:
                await a.request(key, SYNC, b"x", timeout=5)
            assert err.value.reason == "dial_failed"
            with pytest.raises(PeerUnreachable) as err:
                await a.request(key, SYNC, b"x", timeout=5)
            assert err.value.reason == "backoff"
            await a.send(key, CONSENSUS, b"lost")  # dropped, does not block
            await trio.testing.wait_all_tasks_blocked()
            assert a.stats["dropped"] == 1

            b2 = P2PNetwork(seed(41), listen=addr)  # same identity, same port
            b2.set_handler(CONSENSUS, second.handler)
            b2.set_handler(SYNC, echo(b"2:"))
            async with b2:
                a.add_peer(key, addr)  # the peer is back: clear the backoff
                assert await a.request(key, SYNC, b"y", timeout=5) == b"2:" + a.local_key + b"y"
                await a.send(key, CONSENSUS, b"after")
                await second.wait_for(1)
                assert second.items == [(a.local_key, b"after")]
                assert a.stats["reconnects"] == 1
                assert first.items == [(a.local_key, b"before")]


@pytest.mark.trio
async def test_request_failures_are_typed() -> None:
    server, client = P2PNetwork(seed(50)), P2PNetwork(seed(51))
    gate = trio.Event()

    async def boom(peer: bytes, payload: bytes) -> bytes:
        raise ValueError("bug")

    async def silent(peer: bytes, payload: bytes) -> None:
        return None

    async def stuck(peer: bytes, payload: bytes) -> bytes:
        await gate.wait()
        return b"late"

    server.set_handler(SYNC, boom)
    server.set_handler(BATCH, silent)
    server.set_handler(LIGHT, stuck)
    with trio.fail_after(TIMEOUT):
        async with running(server, client):
            with pytest.raises(RemoteError) as err:
                await client.request(server.local_key, SYNC, b"x", timeout=5)
            assert err.value.reason == "handler_error"
            with pytest.raises(RemoteError) as err:
                await client.request(server.local_key, BATCH, b"x", timeout=5)
            assert err.value.reason == "no_response"
            with pytest.raises(RequestTimeout):
                await client.request(server.local_key, LIGHT, b"x", timeout=0.2)
            with pytest.raises(PeerUnreachable) as unknown:
                await client.request(seed(99), SYNC, b"x", timeout=5)
            assert unknown.value.reason == "unknown_peer"
            with pytest.raises(FrameTooLarge):
                await client.send(server.local_key, BATCH, b"x" * MAX_FRAME)
            gate.set()
            assert server.stats["handler_errors"] == 1


@pytest.mark.trio
async def test_send_waits_while_the_peer_does_not_consume() -> None:
    # py-libp2p's yamux lets several MiB (its window auto-tunes up to 16 MiB)
    # sit unread in a stream; beyond that the pump's write waits, the
    # one-frame queue fills and send() has to wait. 24 MiB is past any window.
    # (The release below must come within yamux's 5 s write-stall limit.)
    sender, receiver = P2PNetwork(seed(60), queue_size=1), P2PNetwork(seed(61))
    gate = trio.Event()
    inbox = Inbox()

    async def slow(peer: bytes, payload: bytes) -> None:
        await gate.wait()
        await inbox.handler(peer, payload)

    receiver.set_handler(BATCH, slow)
    big = [bytes([i]) * (1 << 20) for i in range(24)]
    sent: list[int] = []
    with trio.fail_after(TIMEOUT):
        async with running(sender, receiver):

            async def producer() -> None:
                for i, payload in enumerate(big):
                    await sender.send(receiver.local_key, BATCH, payload)
                    sent.append(i)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(producer)
                await trio.testing.wait_all_tasks_blocked()
                assert 0 < len(sent) < len(big)  # the producer is held back
                gate.set()
            await inbox.wait_for(len(big))
            assert [p for _, p in inbox.items] == big


@pytest.mark.trio
async def test_taken_port_is_refused() -> None:
    # py-libp2p's SO_REUSEPORT listener would happily share the port.
    first = P2PNetwork(seed(70))
    with trio.fail_after(TIMEOUT):
        async with first:
            assert first.listen_addr is not None
            second = P2PNetwork(seed(71), listen=first.listen_addr)
            with pytest.raises(ListenError) as err:
                async with second:
                    pass
            assert err.value.reason == "port_in_use"
