"""Complete and timely proposals (issue 18, D3 and D4): four in-memory validators on a virtual clock.

D3: a validator restarted just before gate closure, the proposer of round 0, used to propose a seal without
the batch the others admitted while it was down; they took it, and version 1 of the period was all
substitutes. D4: a proposer whose clock runs 3 s ahead used to propose before the others' gate closure,
without the readings that came in between. Now version 1 holds the readings in both cases.

Time is trio's MockClock (autojump): the validators read `clock=` from it, and their worker-thread calls run
inline, so no virtual timeout can fire while a thread works (deterministic however loaded the machine is).
"""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing

from nodes.datagen.devnet_genesis import devnet_key, devnet_registry, meter_label
from nodes.home import NodeConfig
from nodes.runtime import NodeContext
from nodes.validator import Validator
from stromledger.cascade import PeriodSeal, Receipt, make_batch, sign_reading
from stromledger.codec import decode
from stromledger.net import SUBMIT, MemoryHub
from stromledger.store import Store

PS, GRACE = 60, 10
START = 1_800_000_000 // PS * PS  # the genesis period's start (wall clock seconds)
EPOCH = START + 1  # wall clock time at virtual time 0


@pytest.fixture
def clock():
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture(autouse=True)
def inline_threads(monkeypatch):
    async def run_sync(fn, *args, **_):
        return fn(*args)

    monkeypatch.setattr(trio.to_thread, "run_sync", run_sync)


def wall(skew: float = 0.0):
    return lambda: EPOCH + trio.current_time() + skew


class Devnet:
    """Four validators of one chain on a memory hub; `start(i)` brings validator i up (with an empty store:
    a node that was down since before the period began, restarted)."""

    def __init__(self, tmp_path, hub, nursery):
        self.reg = devnet_registry(validators=4, balancing_groups=2, meters=10, period_seconds=PS,
                                   genesis_start=START, chain_id="test-proposals", grace_seconds=GRACE)
        self.p0 = self.reg.genesis_period
        self.gate = self.reg.period(self.p0).end + GRACE
        self.keys = [devnet_key(f"validator-{i}") for i in range(1, 5)]
        assert [k.public for k in self.keys] == list(self.reg.validator_keys())
        self.tmp, self.hub, self.nursery = tmp_path, hub, nursery
        self.nodes: dict[int, Validator] = {}
        self.proposer = self.p0 % 4  # round 0 of height p0

    async def start(self, i: int, skew: float = 0.0) -> Validator:
        name = f"validator-{i + 1}"
        ctx = NodeContext(config=NodeConfig(home=self.tmp / name, role="validator", name=name), key=self.keys[i],
                          registry=self.reg, log=logging.getLogger(f"test.proposals.{name}"))
        store = Store(self.tmp / name / "ledger.sqlite3")
        v = Validator(ctx, store, self.hub.endpoint(self.keys[i].public), clock=wall(skew), write_exports=False)
        self.nodes[i] = v
        await self.nursery.start(v.serve)
        return v

    async def submit(self, to: int, period: int) -> list:
        """The meter operator's readings of `period` (version 1), submitted to validator `to`."""
        operator = devnet_key("meter-operator-1")
        name = next(o.name for o in self.reg.meter_operators.values() if o.public_key == operator.public)
        meters = [m for m in self.reg.meter_points.values() if m.meter_operator == name]
        readings = [sign_reading(devnet_key(meter_label(m.malo_id)), self.reg.chain_id, m.malo_id, period,
                                 min(10, self.reg.max_wh(m.malo_id)), 0) for m in meters]
        client = self.hub.endpoint(operator.public)
        receipt = decode(await client.request(self.keys[to].public, SUBMIT,
                                              make_batch(operator, self.reg.chain_id, readings).encode(), timeout=5))
        assert isinstance(receipt, Receipt) and receipt.accepted == len(readings), receipt
        return readings

    async def committed(self, height: int) -> None:
        for v in self.nodes.values():
            while v.store.last_height() is None or v.store.last_height() < height:
                async with v.committed:
                    await v.committed.wait()

    def version_1(self, height: int):
        """(round, the period result) of what every validator committed at `height`; they agree."""
        commits = {v.store.get_commit(height).value_hash: v.store.get_commit(height) for v in self.nodes.values()}
        assert len(commits) == 1, "validators disagree"
        [c] = commits.values()
        return c.round, PeriodSeal.decode(c.value).result(height)


async def wait_until(t: float) -> None:
    await trio.sleep_until(t - EPOCH)


@pytest.mark.parametrize("fetch_at_start", [True, False], ids=["inventory", "completeness-only"])
async def test_a_proposer_restarted_before_gate_closure_does_not_settle_substitutes(tmp_path, clock,
                                                                                  monkeypatch, fetch_at_start):
    if not fetch_at_start:  # the restarted proposer cannot ask the others: the completeness rule alone
        async def no_inventory(self):
            self.inventory_synced.set()
        monkeypatch.setattr(Validator, "_sync_inventory", no_inventory)
    async with MemoryHub() as hub, trio.open_nursery() as nursery:
        net = Devnet(tmp_path, hub, nursery)
        others = [i for i in range(4) if i != net.proposer]
        for i in others:
            await net.start(i)
        await wait_until(net.reg.period(net.p0).end + 1)
        readings = await net.submit(others[0], net.p0)  # pushed to the two others; the proposer is down
        await wait_until(net.gate - 2)
        await net.start(net.proposer)  # restarted 2 s before gate closure, knowing nothing of the batch
        await net.committed(net.p0)
        round_, result = net.version_1(net.p0)
        assert result.version == 1 and result.measured == len(readings) and result.substituted < result.meter_points
        incomplete = [net.nodes[i].ctx.rejections["proposal_incomplete"] for i in others]
        if fetch_at_start:  # it fetched the batch before proposing: round 0 took its complete seal
            assert round_ == 0 and incomplete == [0, 0, 0]
        else:  # its seal left the batch out: the others prevoted nil, the next proposer settled it
            assert round_ >= 1 and all(incomplete)
        nursery.cancel_scope.cancel()
    for v in net.nodes.values():
        v.store.close()


async def test_a_proposer_whose_clock_runs_ahead_cannot_settle_early(tmp_path, clock):
    async with MemoryHub() as hub, trio.open_nursery() as nursery:
        net = Devnet(tmp_path, hub, nursery)
        for i in range(4):
            await net.start(i, skew=3.0 if i == net.proposer else 0.0)
        others = [i for i in range(4) if i != net.proposer]
        # readings that come in after the skewed proposer's gate closure but 2.5 s before everyone else's
        await wait_until(net.gate - 2.5)
        readings = await net.submit(others[0], net.p0)
        await net.committed(net.p0)
        round_, result = net.version_1(net.p0)
        assert result.version == 1 and result.measured == len(readings)
        assert round_ >= 1  # round 0's early proposal was refused
        for i in others:
            v = net.nodes[i]
            assert v.ctx.rejections["proposal_early"] >= 1
            assert v.store.get_commit(net.p0).committed_at >= net.gate
            peers = v.status()["clock"]["peers_ms_after_gate"]
            assert peers[f"validator-{net.proposer + 1}"] <= -2000  # its clock is seen to run ahead
        nursery.cancel_scope.cancel()
    for v in net.nodes.values():
        v.store.close()
