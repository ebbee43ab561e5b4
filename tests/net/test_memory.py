from __future__ import annotations

import pytest
import trio
import trio.testing
from inbox import Inbox

from stromledger.net import (
    BATCH,
    CONSENSUS,
    SYNC,
    FrameTooLarge,
    MemoryHub,
    PeerUnreachable,
    RemoteError,
    RequestTimeout,
)

A, B, C, D = (bytes([i]) * 32 for i in (1, 2, 3, 4))


async def echo(peer: bytes, payload: bytes) -> bytes:
    return peer[:1] + payload


@pytest.mark.trio
async def test_request_response() -> None:
    with trio.fail_after(5):
        async with MemoryHub() as hub:
            a, b = hub.endpoint(A), hub.endpoint(B)
            b.set_handler(SYNC, echo)
            assert await a.request(B, SYNC, b"hi", timeout=1) == b"\x01hi"
            assert a.stats["requests_out"] == 1 and b.stats["requests_in"] == 1
            assert a.connected_peers() == {B}


@pytest.mark.trio
async def test_request_errors_are_typed(autojump_clock: trio.abc.Clock) -> None:
    async def boom(peer: bytes, payload: bytes) -> bytes:
        raise ValueError("bug")

    async def silent(peer: bytes, payload: bytes) -> None:
        return None

    async def stuck(peer: bytes, payload: bytes) -> bytes:
        await trio.sleep_forever()
        raise AssertionError

    with trio.fail_after(60):
        async with MemoryHub(max_frame=100) as hub:
            a, b = hub.endpoint(A), hub.endpoint(B)
            b.set_handler(SYNC, boom)
            b.set_handler(BATCH, silent)
            b.set_handler(CONSENSUS, stuck)
            with pytest.raises(RemoteError) as err:
                await a.request(B, SYNC, b"x", timeout=1)
            assert err.value.reason == "handler_error" and b.stats["handler_errors"] == 1
            with pytest.raises(RemoteError) as err:
                await a.request(B, BATCH, b"x", timeout=1)
            assert err.value.reason == "no_response"
            with pytest.raises(RemoteError) as err:
                await a.request(B, "/stromledger/light/1", b"x", timeout=1)
            assert err.value.reason == "protocol_refused"
            with pytest.raises(RequestTimeout):
                await a.request(B, CONSENSUS, b"x", timeout=5)
            with pytest.raises(PeerUnreachable) as err:
                await a.request(C, SYNC, b"x", timeout=1)
            assert err.value.reason == "unknown_peer"
            with pytest.raises(FrameTooLarge):
                await a.request(B, SYNC, b"x" * 100, timeout=1)
            hub.detach(B)
            with pytest.raises(PeerUnreachable) as err:
                await a.request(B, SYNC, b"x", timeout=1)
            assert err.value.reason == "dial_failed"


@pytest.mark.trio
async def test_one_way_order_preserved_per_peer_and_protocol() -> None:
    with trio.fail_after(5):
        async with MemoryHub(queue_size=8) as hub:
            a, c, b = hub.endpoint(A), hub.endpoint(C), hub.endpoint(B)
            consensus, batch = Inbox(), Inbox()
            b.set_handler(CONSENSUS, consensus.handler)
            b.set_handler(BATCH, batch.handler)
            async with trio.open_nursery() as nursery:
                for sender in (a, c):
                    for proto in (CONSENSUS, BATCH):
                        async def flood(net=sender, proto=proto) -> None:
                            for i in range(100):
                                await net.send(B, proto, i.to_bytes(2, "big"))
                        nursery.start_soon(flood)
            await consensus.wait_for(200)
            await batch.wait_for(200)
            for inbox in (consensus, batch):
                for sender in (A, C):
                    seq = [int.from_bytes(p, "big") for k, p in inbox.items if k == sender]
                    assert seq == list(range(100))
            assert a.stats["frames_out"] == 200 and b.stats["frames_in"] == 400


@pytest.mark.trio
async def test_unauthorized_peer_refused_and_counted() -> None:
    with trio.fail_after(5):
        async with MemoryHub() as hub:
            a, b, c = hub.endpoint(A), hub.endpoint(B), hub.endpoint(C)
            inbox = Inbox()
            validators = {A}
            b.set_handler(CONSENSUS, inbox.handler, allowed=validators.__contains__)
            b.set_handler(SYNC, echo, allowed=validators.__contains__)
            with pytest.raises(RemoteError) as err:
                await c.request(B, SYNC, b"x", timeout=1)
            assert err.value.reason == "unauthorized"
            await c.send(B, CONSENSUS, b"forged")
            await a.send(B, CONSENSUS, b"real")
            await inbox.wait_for(1)
            await trio.testing.wait_all_tasks_blocked()
            assert inbox.items == [(A, b"real")]
            assert b.stats["rejected_unauthorized"] == 2
            assert await a.request(B, SYNC, b"ok", timeout=1) == b"\x01ok"


@pytest.mark.trio
async def test_send_waits_when_queue_full() -> None:
    with trio.fail_after(5):
        async with MemoryHub(queue_size=4) as hub:
            a, b = hub.endpoint(A), hub.endpoint(B)
            gate = trio.Event()
            seen: list[int] = []

            async def slow(peer: bytes, payload: bytes) -> None:
                await gate.wait()
                seen.append(payload[0])

            b.set_handler(CONSENSUS, slow)
            sent: list[int] = []

            async def producer() -> None:
                for i in range(10):
                    await a.send(B, CONSENSUS, bytes([i]))
                    sent.append(i)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(producer)
                await trio.testing.wait_all_tasks_blocked()
                # 1 message inside the blocked handler + 4 queued; the 6th send waits.
                assert sent == [0, 1, 2, 3, 4]
                gate.set()
            await trio.testing.wait_all_tasks_blocked()
            assert seen == list(range(10))


@pytest.mark.trio
async def test_broadcast_skips_self_and_dead_peers_do_not_block() -> None:
    with trio.fail_after(5):
        async with MemoryHub(queue_size=1) as hub:
            nets = {k: hub.endpoint(k) for k in (A, B, C, D)}
            inboxes = {k: Inbox() for k in nets}
            for k, net in nets.items():
                net.set_handler(CONSENSUS, inboxes[k].handler)
            hub.detach(D)
            for i in range(5):
                await nets[A].broadcast(nets, CONSENSUS, bytes([i]))
            for k in (B, C):
                await inboxes[k].wait_for(5)
                assert [p for _, p in inboxes[k].items] == [bytes([i]) for i in range(5)]
            assert inboxes[A].items == [] and inboxes[D].items == []
            assert nets[A].stats["dropped"] == 5
            with pytest.raises(PeerUnreachable):
                await nets[A].send(A, CONSENSUS, b"self")


@pytest.mark.trio
async def test_broadcast_refuses_oversize_payload_up_front() -> None:
    with trio.fail_after(5):
        async with MemoryHub(max_frame=10) as hub:
            a = hub.endpoint(A)
            hub.endpoint(B)  # B is on the hub, so only the size can refuse
            assert a.max_payload == 9
            with pytest.raises(FrameTooLarge):
                await a.broadcast([B], CONSENSUS, b"x" * 10)
            await a.broadcast([B], CONSENSUS, b"x" * 9)
