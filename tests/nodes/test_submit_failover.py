"""A stopped validator (SIGSTOP: its kernel still accepts the connection, nothing answers) must not hold a
meter operator's readings past gate closure: the submit asks the next validator after a short delay, the
slow one is asked last for a while, and verifying never delays submitting. Time is trio's MockClock
(autojump): a hanging request costs no real time, and the node's wall clock follows it."""

from __future__ import annotations

import pytest
import trio

from nodes.meter_point import DEMOTE_SECONDS, HEDGE_MAX, HEDGE_MIN, SubmitFailed, hedge_delay, submit_batch
from stromledger.cascade import make_batch
from stromledger.net import LIGHT, SUBMIT, MemoryHub
from stromledger.periods import gate_margin_ms
from test_light import FEED, G, MINE, OPERATORS, PS, REG, VKEYS, StandIn
from test_meter_point import open_node

IN_TIME = REG.params.grace_seconds - gate_margin_ms(REG.params.grace_seconds) / 1000  # after period end


class TrioClock:
    """Wall-clock seconds that advance with trio's (mock) clock; `base` may jump."""

    def __init__(self, t: float):
        self.base = float(t) - trio.current_time()

    def __call__(self) -> float:
        return self.base + trio.current_time()


class Stopped:
    """A validator's handler that never answers (the process is stopped); counts who asked."""

    def __init__(self):
        self.asked = 0

    async def __call__(self, peer: bytes, payload: bytes) -> bytes:
        self.asked += 1
        await trio.sleep_forever()
        raise AssertionError("unreachable")


def test_hedge_delay_is_half_the_time_left_within_bounds():
    assert hedge_delay(0.8) == pytest.approx(0.4)
    assert hedge_delay(0.05) == HEDGE_MIN
    assert hedge_delay(300) == HEDGE_MAX
    assert hedge_delay(0) == hedge_delay(-5) == hedge_delay(float("nan")) == HEDGE_MAX  # already late


async def test_a_stopped_validator_does_not_hold_readings_past_gate_closure(tmp_path, autojump_clock):
    async with MemoryHub() as hub:
        clock = TrioClock((G + 1) * PS + 0.2)  # the node's submit delay after period G ended
        stopped = Stopped()
        hub.endpoint(VKEYS[0].public).set_handler(SUBMIT, stopped)  # the node's own validator, stopped
        StandIn(hub.endpoint(VKEYS[1].public), clock, key=VKEYS[1])
        node = open_node(hub, tmp_path, clock)
        assert node.produce_due() == [G]
        delivered = await node.flush()
        assert [d.validator for d in delivered] == [VKEYS[1].public] * 3  # batches of 8 of 20 readings
        assert all(d.at < (G + 1) * PS + IN_TIME for d in delivered)  # in time for version 1
        assert stopped.asked == 1  # the first batch waited for it briefly, the others went straight on
        assert node.outbox.order() == [VKEYS[1].public, VKEYS[0].public]
        assert node.status()["pending"] == 0

        clock.base += PS  # the next period: the stopped validator is still asked last
        assert node.produce_due() == [G + 1]
        t0 = trio.current_time()
        assert [d.validator for d in await node.flush()] == [VKEYS[1].public] * 3
        assert trio.current_time() == t0 and stopped.asked == 1

        clock.base += DEMOTE_SECONDS  # later it is the node's first choice again
        assert node.outbox.order() == [VKEYS[0].public, VKEYS[1].public]
        node.store.close()


async def test_the_slow_validator_may_still_win_and_a_failing_one_is_skipped_at_once(autojump_clock):
    async with MemoryHub() as hub:
        clock = TrioClock((G + 1) * PS + 0.2)
        answer = trio.Event()
        slow_v = StandIn(None, clock, key=VKEYS[0])

        async def slow_submit(peer, payload):
            await answer.wait()
            return await slow_v.on_submit(peer, payload)
        hub.endpoint(VKEYS[0].public).set_handler(SUBMIT, slow_submit)
        late = Stopped()
        hub.endpoint(VKEYS[2].public).set_handler(SUBMIT, late)
        me = hub.endpoint(OPERATORS[0].public)
        data = make_batch(OPERATORS[0], REG.chain_id, FEED.readings(G, MINE[:3])).encode()

        async def release():  # validator-1 answers after the hedge started validator-3 (which never does)
            await trio.sleep(0.5)
            answer.set()
        slow: list[bytes] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(release)
            # validator-2 is not on the hub: it fails at once and the next is asked without waiting
            peer, receipt = await submit_batch(me, [VKEYS[0].public, VKEYS[1].public, VKEYS[2].public], data,
                                               REG.chain_id, hedge_after=0.3, slow=slow)
        assert peer == VKEYS[0].public and receipt.accepted == 3
        assert trio.current_time() == pytest.approx(0.5)
        assert late.asked == 1 and slow == [VKEYS[0].public, VKEYS[1].public]  # slow, and failed

        with pytest.raises(SubmitFailed, match="unknown_peer"):  # none answers: every reason, in order
            await submit_batch(me, [VKEYS[1].public], data, REG.chain_id, hedge_after=0.3)


async def test_verifying_never_delays_the_next_periods_readings(tmp_path, autojump_clock):
    async with MemoryHub() as hub:
        clock = TrioClock((G + 1) * PS)
        net0 = hub.endpoint(VKEYS[0].public)
        StandIn(net0, clock)  # takes submits ...
        stopped = Stopped()
        net0.set_handler(LIGHT, stopped)  # ... but hangs when asked for proofs (stopped after the submit)
        StandIn(hub.endpoint(VKEYS[1].public), clock, key=VKEYS[1])
        node = open_node(hub, tmp_path, clock)
        with trio.move_on_after(PS + 3):  # virtual seconds: to 3 s after period G + 1 ended
            await node.run()
        assert stopped.asked >= 1  # verifying period G waited for it from gate closure on, for 10 s
        sent = node.store.batches_for_periods([G + 1])
        assert len(sent) == 3 and all(node.acked[d] < (G + 2) * PS + IN_TIME for d in sent)
        node.store.close()
