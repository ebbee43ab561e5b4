"""A validator killed (SIGKILL) while it persists a commit (the settled history's rows written, the
transaction not yet committed) restarts from its store with nothing lost: the commit is replayed into the
settled state, its rows and settled batches are written, and the next seal commits as on every other node.
Retention: `[history] retain_periods` prunes, says so, and is refused when shorter than the window."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from nodes.datagen.devnet_genesis import devnet_key, devnet_registry, meter_label
from nodes.home import NodeConfig
from nodes.consensus_guard import StartRefused
from nodes.runtime import NodeContext
from nodes.validator import Validator
from stromledger.cascade import Ledger, Reason, make_batch, sign_reading
from stromledger.consensus import Precommit, ValidatorSet, build_certificate, sign_vote
from stromledger.crypto import sha256
from stromledger.net import MemoryHub
from stromledger.store import Store


WORKER = Path(__file__).with_name("history_kill_worker.py")


def _validator(tmp_path, registry, hub, store, retain: int = 0) -> Validator:
    key = devnet_key("validator-1")
    config = NodeConfig(home=tmp_path, role="validator", name="validator-1", history={"retain_periods": retain})
    ctx = NodeContext(config=config, key=key,
                      registry=registry, log=logging.getLogger("test.history"),
                      resume_signing_after_restore=True)  # this test's validator commits, it never votes
    return Validator(ctx, store, hub.endpoint(key.public), write_exports=False)


def _certificate(registry, height: int, seal_hash: bytes) -> bytes:
    votes = [sign_vote(Precommit, devnet_key(f"validator-{i}"), registry.chain_id, height, 0, seal_hash)
             for i in (1, 2, 3)]
    return build_certificate(height, 0, seal_hash, votes, ValidatorSet(registry.validator_keys())).encode()


def _batch(registry, period: int, late: bool = False):
    operator = devnet_key("meter-operator-1")
    op = next(o.name for o in registry.meter_operators.values() if o.public_key == operator.public)
    meters = [m for m in registry.meter_points.values() if m.meter_operator == op and m.kind != "boundary"]
    items = [sign_reading(devnet_key(meter_label(m.malo_id)), registry.chain_id, m.malo_id, period, 10 + i, 0)
             for i, m in enumerate(meters[:4])]
    if late:  # a higher meter version for the period before: a correction
        m = meters[0]
        items.append(sign_reading(devnet_key(meter_label(m.malo_id)), registry.chain_id, m.malo_id, period - 1,
                                  99, 0, version=2))
    return make_batch(operator, registry.chain_id, items)


def _receive(v: Validator, batch) -> None:
    """A batch arrives (pushed or fetched): kept by the ledger and stored, as the validator does."""
    v._store_batch(v.ledger.add_fetched(batch), batch.encode())


async def _commit(v: Validator, registry, seal: bytes, die: Callable[[], None] | None = None) -> None:
    """What Validator._on_decide does, the commit first (durable), then apply and persist; `die` is called
    inside the persisting transaction, right after the settled history's rows went into it."""
    h = v.ledger.next_height
    v.store.put_commit(h, 0, seal, sha256(seal), _certificate(registry, h, sha256(seal)), 0)
    outcome, rows, state, done = await v._apply_commit(h, seal)
    if die is not None:
        persist = v.history.persist

        def persist_then_die():
            persist()
            die()

        v.history.persist = persist_then_die
    v._persist_commit(h, rows, state, outcome.seal.vote_evidence, done)


def history_registry(start: int):
    return devnet_registry(validators=4, balancing_groups=2, meters=10, period_seconds=60, genesis_start=start,
                           chain_id="test-history")


def history_chain(registry) -> tuple[list[bytes], list, dict]:
    """Four seals as another validator builds them (every height corrects the period before), their batches,
    and per height the (version, entries) of every period in that validator's window after it."""
    g = registry.genesis_period
    elsewhere = Ledger(registry)
    seals, batches, after = [], [], {}
    for h in range(g, g + 4):
        batches.append(_batch(registry, h, late=h > g))
        elsewhere.admit(batches[-1], None)
        seals.append(elsewhere.propose().seal_bytes)
        elsewhere.commit(seals[-1])
        after[h] = {p: (elsewhere.state.results[p].version, dict(elsewhere.state.entries[p]))
                    for p in elsewhere.state.entries}
    return seals, batches, after


def _sigkill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


async def commit_then_die(home: Path, start: int) -> None:
    """The worker's run (history_kill_worker.py): commit g and g + 1, then SIGKILL inside g + 2's persistence."""
    registry = history_registry(start)
    seals, batches, _ = history_chain(registry)
    store = Store(home / "ledger.sqlite3")
    async with MemoryHub() as hub:
        v = _validator(home, registry, hub, store)
        for i in range(3):
            _receive(v, batches[i])
            await _commit(v, registry, seals[i], die=_sigkill if i == 2 else None)
    raise SystemExit("not killed")


@pytest.mark.trio
async def test_a_validator_killed_during_commit_persistence_loses_nothing(tmp_path):
    start = int(time.time()) - 3600
    registry = history_registry(start)
    g = registry.genesis_period
    seals, batches, after = history_chain(registry)
    worker = subprocess.run([sys.executable, str(WORKER), str(tmp_path), str(start)], capture_output=True,
                            text=True, timeout=120)
    assert worker.returncode == -signal.SIGKILL, worker.stderr[-2000:]
    path = tmp_path / "ledger.sqlite3"
    async with MemoryHub() as hub:
        store = Store(path)
        assert store.latest_state()[0] == g + 1 and store.last_height() == g + 2
        assert store.latest_version(g + 2) is None  # the killed transaction's rows are gone
        restarted = _validator(tmp_path, registry, hub, store)  # replays g + 2 from the stored commit
        state = restarted.ledger.state
        assert state.height == g + 2 and state.seal_hash == sha256(seals[2])
        assert dict(state.last) == after[g + 2][g + 2][1]
        assert store.latest_state()[0] == g + 2
        for p in (g + 1, g + 2):  # the corrected period's new version and the new period are on disk
            version, entries = after[g + 2][p]
            assert store.latest_version(p) == version and restarted.history.entries(p) == entries
        assert store.latest_version(g + 1) == 2
        again = restarted.ledger.admit(batches[2], None)  # settled before the kill: known after it
        assert again.refused is not None and again.refused.reason == Reason.DUPLICATE
        _receive(restarted, batches[3])
        await _commit(restarted, registry, seals[3])  # and it goes on like every other node
        assert restarted.ledger.state.seal_hash == sha256(seals[3])
    store.close()


def _registry(window: int):
    return devnet_registry(validators=4, balancing_groups=2, meters=10, period_seconds=60, correction_window=window,
                           genesis_start=int(time.time()) - 3600, chain_id="test-history")


@pytest.mark.trio
async def test_retention_shorter_than_the_window_is_refused(tmp_path):
    store = Store(tmp_path / "ledger.sqlite3")
    async with MemoryHub() as hub:
        with pytest.raises(StartRefused, match=r"retain_periods = 5 is shorter than the correction window \(4 "):
            _validator(tmp_path, _registry(4), hub, store, retain=5)
    store.close()


@pytest.mark.trio
async def test_retention_deletes_old_periods_and_says_so(tmp_path, caplog):
    registry = _registry(4)
    g = registry.genesis_period
    elsewhere = Ledger(registry)
    store = Store(tmp_path / "ledger.sqlite3")
    caplog.set_level(logging.INFO, logger="test.history")
    async with MemoryHub() as hub:
        v = _validator(tmp_path, registry, hub, store, retain=6)
        for h in range(g, g + 10):
            batch = _batch(registry, h, late=h > g)
            elsewhere.admit(batch, None)
            seal = elsewhere.propose().seal_bytes
            elsewhere.commit(seal)
            _receive(v, batch)
            await _commit(v, registry, seal)
    last = g + 9
    kept = [p for p in range(g, last + 1) if store.latest_version(p) is not None]
    assert kept == list(range(last - 6, last + 1))  # the last commit's period and the 6 before it
    assert store.get_batch(_batch(registry, g).digest()) is None  # settled, and older than what is kept
    assert store.get_batch(_batch(registry, last, late=True).digest()) is not None
    assert any("retention (retain_periods = 6): deleted before period" in r.message for r in caplog.records)
    store.close()
