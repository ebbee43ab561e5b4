"""`bench consensus`: gate-closure-to-commit and proposal-to-commit latency of real validators.

N real `nodes.validator.Validator`s (real Ed25519 votes, real SQLite stores in temporary homes, the devnet
registry with short periods) run in one trio run, on the in-memory network (`MemoryHub`) or on real libp2p
over loopback (`P2PNetwork`: Noise, TCP). A meter operator submits its readings of each period at the
period's end through the submit protocol, so every seal settles real readings. Every validator's consensus
machine is watched (its `handle` is wrapped, nothing else changes) to time per height:

  gate closure   period end + grace: when the validator's clock loop starts the height (`StartHeight`)
  proposal       the proposer's `ValueReady`: its seal is built and the signed proposal leaves
  decide         a validator's machine decides (more than 2/3 precommits for the seal)
  commit         `Validator._on_decide` has stored the commit, applied the seal and persisted the state

All N validators share this one process (one GIL, this machine's cores): every vote is signed once and
verified N - 1 times in the same process, so the in-process latency at large N includes CPU contention
that N separate machines would not have; the CPU time per height is reported to show it.

This module sits above everything it measures: it imports the node layer (nodes/) lazily.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Callable

from .timing import percentile

TARGETS_S = {4: 0.5, 16: 1.0}


def _stats(values: list[float]) -> dict:
    return {"n": len(values), "median": percentile(values, 50), "p95": percentile(values, 95),
            "min": min(values, default=None), "max": max(values, default=None)}


def _timed_validator_class():
    from stromledger.consensus import events as ev
    from nodes.validator import Validator

    class TimedValidator(Validator):
        """A Validator whose consensus events and commits are time-stamped (wall clock, seconds)."""

        def __init__(self, *args, marks: dict, **kwargs):
            super().__init__(*args, **kwargs)
            self.marks = marks  # (kind, height, validator index) -> time
            self.index = self.validator_keys.index(self.ctx.key.public)
            handle = self.machine.handle

            def timed_handle(event):
                now = time.time()
                h0, t0 = self.machine.height, time.perf_counter()
                if isinstance(event, ev.StartHeight):
                    self._mark("start", event.height, now)
                elif isinstance(event, ev.ValueReady):
                    self._mark("proposal", event.height, now)
                elif isinstance(event, ev.ProposalReceived):
                    self._mark("proposal_in", event.proposal.height, now)
                actions = handle(event)
                for a in actions:
                    if isinstance(a, ev.Decide):
                        self._mark("decide", a.height, time.time())
                    elif isinstance(a, ev.RequestValue):
                        self._mark("request", a.height, now)
                # time the machine held the event loop (signatures, sign-guard fsyncs), by height
                key = ("handle_s", h0, self.index)
                self.marks[key] = self.marks.get(key, 0.0) + time.perf_counter() - t0
                return actions

            self.machine.handle = timed_handle

        def _mark(self, kind: str, height: int, t: float) -> None:
            self.marks.setdefault((kind, height, self.index), t)

        async def _on_decide(self, d) -> None:
            await super()._on_decide(d)
            self._mark("commit", d.height, time.time())
            async with self.committed:  # wake the bench's waiters again, now that the mark is there
                self.committed.notify_all()

    return TimedValidator


async def _submit_loop(client, registry, validator_keys, heights, operator, log) -> None:
    """Each period's readings of the operator's meters (every meter point's, with the devnet keys: the
    operator submits for the registry's other meter operator too), submitted right after the period ends
    (before gate closure), round-robin over the validators."""
    import trio

    from stromledger.cascade import make_batch, sign_reading
    from nodes.datagen.devnet_genesis import devnet_key, meter_label
    from stromledger.net import SUBMIT, NetError

    mine = list(registry.meter_points.values())
    keys = {m.malo_id: devnet_key(meter_label(m.malo_id)) for m in mine}
    for i, h in enumerate(heights):
        readings = [sign_reading(keys[m.malo_id], registry.chain_id, m.malo_id, h,
                                 min(100 + i, registry.max_wh(m.malo_id)), 0) for m in mine]
        batch = make_batch(operator, registry.chain_id, readings).encode()
        await trio.sleep(max(0.0, registry.period(h).end + 0.05 - time.time()))
        try:
            await client.request(validator_keys[i % len(validator_keys)], SUBMIT, batch, timeout=10)
        except NetError as e:
            log.warning("submitting the readings of height %d failed: %s", h, e)


async def run_cluster(n: int, transport: str = "memory", heights: int = 8, warmup: int = 1, period_seconds: int = 2,
                      grace_seconds: int = 1, meters: int = 200, margin: float | None = None,
                      progress: Callable[[str], None] = lambda s: None) -> dict:
    """Run n validators until each committed `warmup + heights` heights; time the last `heights`."""
    import trio

    from nodes.home import NodeConfig
    from nodes.runtime import NodeContext
    from nodes.datagen.devnet_genesis import devnet_key, devnet_registry
    from stromledger.consensus.config import ConsensusConfig
    from stromledger.net import MemoryHub
    from stromledger.store import Store

    L = period_seconds
    margin = margin if margin is not None else (0.5 + 0.2 * n if transport == "memory" else 1.5 + 0.3 * n)
    start = math.ceil((time.time() + margin) / L) * L
    registry = devnet_registry(validators=n, balancing_groups=2, meters=meters, period_seconds=L,
                               genesis_start=start, chain_id=f"bench-{transport}-{n}", grace_seconds=grace_seconds)
    keys = [devnet_key(f"validator-{i}") for i in range(1, n + 1)]
    assert [k.public for k in keys] == list(registry.validator_keys())
    operator = devnet_key("meter-operator-1")
    g = registry.genesis_period
    total = warmup + heights
    measured = list(range(g + warmup, g + total))
    config = ConsensusConfig()  # production timeouts: they only matter when a round fails
    marks: dict = {}
    TimedValidator = _timed_validator_class()
    log = logging.getLogger("nodes.bench")
    cpu = {}

    with tempfile.TemporaryDirectory(prefix=f"stromledger-bench-{transport}-{n}-") as tmp:
        stores = [Store(Path(tmp) / f"v{i}" / "data" / "ledger.sqlite3") for i in range(n)]
        try:
            async with trio.open_nursery() as nursery:
                if transport == "memory":
                    hub = await _enter(nursery, MemoryHub())
                    nets = [hub.endpoint(k.public) for k in keys]
                    client = hub.endpoint(operator.public)
                else:
                    from stromledger.net.p2p import P2PNetwork

                    nets = [P2PNetwork(k.seed) for k in keys]
                    client = P2PNetwork(operator.seed)
                    for net in nets + [client]:
                        await nursery.start(net.run)
                    for i, a in enumerate(nets):
                        for j, b in enumerate(nets):
                            if i != j:
                                a.add_peer(keys[j].public, b.listen_addr)
                    for k, net in zip(keys, nets):
                        client.add_peer(k.public, net.listen_addr)
                validators = []
                for i in range(n):
                    home = Path(tmp) / f"v{i}"
                    name = f"validator-{i + 1}"
                    cfg = NodeConfig(home=home, role="validator", name=name)
                    vlog = logging.getLogger(f"nodes.bench.{name}")
                    ctx = NodeContext(config=cfg, key=keys[i], registry=registry, log=vlog)
                    v = TimedValidator(ctx, stores[i], nets[i], config=config, write_exports=False, marks=marks)
                    await nursery.start(v.serve)
                    validators.append(v)
                progress(f"{n} validators ({transport}) up; genesis in {start - time.time():.1f} s, "
                         f"{total} heights of {L} s")
                nursery.start_soon(_submit_loop, client, registry, [k.public for k in keys], range(g, g + total),
                                   operator, log)
                deadline = registry.period(g + total - 1).end + grace_seconds + 30 + 2 * n
                with trio.fail_after(max(10.0, deadline - time.time())):
                    for h in range(g, g + total):
                        if h == g + warmup:
                            cpu["start"] = time.process_time(), time.time()
                        for v in validators:
                            while ("commit", h, v.index) not in marks:
                                async with v.committed:
                                    await v.committed.wait()
                cpu["end"] = time.process_time(), time.time()
                rounds = {}
                for h in measured:
                    c = validators[0].store.get_commit(h)
                    rounds[h] = c.round
                    hashes = {v.store.get_commit(h).value_hash for v in validators}
                    if len(hashes) != 1:
                        raise RuntimeError(f"validators disagree at height {h}")
                meter_points = validators[0].last_commit.seal.result(validators[0].last_commit.height).measured
                nursery.cancel_scope.cancel()
        finally:
            for s in stores:
                s.close()

    def gate(h: int) -> float:
        return registry.period(h).end + grace_seconds

    gate_commit, prop_commit, gate_all, prop_all, gate_prop, decide_commit, start_lag = [], [], [], [], [], [], []
    per_height = []
    for h in measured:
        commits = [marks[("commit", h, i)] for i in range(n)]
        proposal = min(marks[("proposal", h, i)] for i in range(n) if ("proposal", h, i) in marks)
        gate_commit += [c - gate(h) for c in commits]
        prop_commit += [c - proposal for c in commits]
        gate_all.append(max(commits) - gate(h))
        prop_all.append(max(commits) - proposal)
        gate_prop.append(proposal - gate(h))
        decide_commit += [marks[("commit", h, i)] - marks[("decide", h, i)] for i in range(n)]
        start_lag += [marks[("start", h, i)] - gate(h) for i in range(n) if ("start", h, i) in marks]
        per_height.append({"height": h, "round": rounds[h], "gate_to_proposal_s": proposal - gate(h),
                           "proposal_to_all_committed_s": max(commits) - proposal,
                           "gate_to_all_committed_s": max(commits) - gate(h)})
    handle = [sum(marks.get(("handle_s", h, i), 0.0) for i in range(n)) for h in measured]
    (c0, w0), (c1, w1) = cpu["start"], cpu["end"]
    return {
        "validators": n,
        "transport": transport,
        "heights": heights,
        "warmup": warmup,
        "period_seconds": L,
        "grace_seconds": grace_seconds,
        "meters": meters,
        "readings_per_height": meter_points,
        "rounds_max": max(rounds.values()),
        "proposal_to_commit_s": _stats(prop_commit),  # every (validator, height)
        "proposal_to_all_committed_s": _stats(prop_all),  # per height: the last validator's commit
        "gate_to_commit_s": _stats(gate_commit),
        "gate_to_all_committed_s": _stats(gate_all),
        "gate_to_proposal_s": _stats(gate_prop),  # clock wake-up + building the seal
        "start_after_gate_s": _stats(start_lag),  # the clock loop's wake-up after gate closure
        "decide_to_commit_s": _stats(decide_commit),  # storing the commit, applying and persisting
        "cpu_s_per_height": (c1 - c0) / heights,  # all n validators together, this process
        # inside Consensus.handle (run on the event loop: vote signatures, sign-guard fsyncs), all validators
        "handle_s_per_height": sum(handle) / len(handle),
        "cpu_share": (c1 - c0) / max(1e-9, w1 - w0),  # CPU seconds per wall second (2.0 = both cores busy)
        "per_height": per_height,
    }


async def _enter(nursery, hub):
    """Enter an async context manager for the rest of the nursery's life."""
    import trio

    ready = trio.Event()
    holder = {}

    async def keep():
        async with hub as h:
            holder["hub"] = h
            ready.set()
            await trio.sleep_forever()

    nursery.start_soon(keep)
    await ready.wait()
    return holder["hub"]


def durable_write_ms(samples: int = 30) -> dict:
    """The disk's floor under consensus, measured here: a raw small write + fdatasync, and one sign-guard
    record (a durable SQLite transaction, what every vote and proposal waits for before it is sent)."""
    import os

    from stromledger.store import Store

    out = {}
    with tempfile.TemporaryDirectory(prefix="stromledger-bench-fsync-") as tmp:
        fd = os.open(Path(tmp) / "raw", os.O_WRONLY | os.O_CREAT, 0o600)
        times = []
        try:
            for _ in range(samples):
                t = time.perf_counter()
                os.write(fd, bytes(64))
                os.fdatasync(fd)
                times.append(time.perf_counter() - t)
        finally:
            os.close(fd)
        out["raw_fdatasync_ms"] = percentile(times, 50) * 1000
        store = Store(Path(tmp) / "ledger.sqlite3")
        times = []
        try:
            for i in range(samples):
                t = time.perf_counter()
                store.sign_guard.check_and_record(1 + i, 0, 1, bytes(32))
                times.append(time.perf_counter() - t)
        finally:
            store.close()
        out["sign_guard_record_ms"] = percentile(times, 50) * 1000
        out["sign_guard_record_p95_ms"] = percentile(times, 95) * 1000
    return out


def run_consensus(memory: tuple[int, ...] = (4, 7, 16), p2p: tuple[int, ...] = (4, 7), heights: int = 8,
                  warmup: int = 1, period_seconds: int = 2, grace_seconds: int = 1, meters: int = 200,
                  progress: Callable[[str], None] = lambda s: None) -> dict:
    import trio

    disk = durable_write_ms()
    runs = []
    quiet = logging.getLogger("nodes.bench")  # the validators' per-batch and per-commit lines
    level = quiet.level
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        quiet.setLevel(logging.WARNING)
    try:
        for transport, sizes in (("memory", memory), ("p2p", p2p)):
            for n in sizes:
                progress(f"{n} validators over {transport}")
                runs.append(trio.run(lambda: run_cluster(n, transport, heights, warmup, period_seconds,
                                                          grace_seconds, meters, progress=progress)))
    finally:
        quiet.setLevel(level)
    targets = []
    for r in runs:
        limit = TARGETS_S.get(r["validators"])
        if limit is None:
            continue
        med = r["proposal_to_all_committed_s"]["median"]
        targets.append({"name": f"proposal -> commit, {r['validators']} validators ({r['transport']}), median",
                        "target": f"<= {limit:g} s", "measured": round(med, 3), "met": med <= limit})
    return {"runs": runs, "disk": disk, "targets": targets}
