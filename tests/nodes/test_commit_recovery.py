"""Recovery of a validator killed at any instant of a commit (issue 18, D1 and D2): restart completes what was
durable, so the node ends with exactly the period results, settled marks, light replies and exports it would
have had without the kill."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
import trio

from nodes.home import NodeConfig
from nodes.protocol import LightReply
from nodes.runtime import NodeContext
from nodes.validator import Validator
from stromledger.net import MemoryHub
from stromledger.store import Store

sys.path.insert(0, str(Path(__file__).parents[1] / "export"))
import export_chain as chain  # noqa: E402

NOW = chain.START + 10 * 900  # a fixed clock: every height of the chain is in the past


class Killed(Exception):
    """Stands for kill -9 at the instant the fault is injected."""


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    return chain.write_registry(tmp_path_factory.mktemp("genesis"))[1]


@pytest.fixture(scope="module")
def commits(registry):
    return chain.run_chain(registry)


def _store(path: Path, commits) -> Store:
    """A store holding every batch of the chain (as pushed to a validator before the heights commit)."""
    store = Store(path)
    for c in commits:
        for b in c.batches:
            periods = {r.period for r in b.readings} | {s.period for s in b.schedules}
            store.put_batch(b.digest(), b.encode(), 0, sorted(periods))
    return store


def _validator(home: Path, registry, hub, store, *, exports: bool = False) -> Validator:
    key = chain.validator_key(3)  # signed none of the certificates: its sign guard is fresh, as after a restore
    ctx = NodeContext(config=NodeConfig(home=home, role="validator", name="validator-4"), key=key,
                      registry=registry, log=logging.getLogger("test.commit-recovery"))
    ctx.resume_signing_after_restore = True
    return Validator(ctx, store, hub.endpoint(key.public), clock=lambda: NOW, write_exports=exports)


async def _commit(v: Validator, c) -> None:
    await v._commit(c.height, c.certificate.round, c.seal_bytes, c.certificate.encode())


def _derived(store: Store, registry, commits) -> dict:
    """Everything a commit derives in the store: period results, settled marks, the latest snapshot."""
    results = {}
    for period in range(chain.G, chain.G + len(commits)):
        for version in (1, 2, 3):
            row = store.get_period_result(period, version)
            if row is not None:
                results[period, version] = (row.height, row.data)
    marks = {b.digest(): store.batch_settled_height(b.digest()) for c in commits for b in c.batches}
    return {"results": results, "settled": marks, "state": store.latest_state()}


@pytest.mark.trio
async def test_a_kill_between_commit_and_its_results_is_completed_at_restart(tmp_path, registry, commits):
    """Day one: the restarted node replayed the commit into its state only; period G+3 had no results, its
    batches were never marked settled and light nodes got `not_committed` for it forever."""
    malo = chain.malo(1)
    async with MemoryHub() as hub:
        reference = _validator(tmp_path / "ref", registry, hub, _store(tmp_path / "ref.sqlite3", commits))
        for c in commits:
            await _commit(reference, c)
        expected = _derived(reference.store, registry, commits)
        expected_light = await reference.light_reply(chain.G + 3, [malo])
        hub.detach(reference.ctx.key.public)

        store = _store(tmp_path / "crash.sqlite3", commits)
        v = _validator(tmp_path / "crash", registry, hub, store)
        for c in commits[:-1]:
            await _commit(v, c)

        def killed(*_):
            raise Killed()

        v._persist_commit = killed  # the commit of G+3 is stored, nothing it settles is
        with pytest.raises(Killed):
            await _commit(v, commits[-1])
        assert store.last_height() == chain.G + 3 and store.latest_version(chain.G + 3) is None
        hub.detach(v.ctx.key.public)

        restarted = _validator(tmp_path / "crash", registry, hub, store)
        assert restarted.ledger.next_height == chain.G + 4
        assert _derived(store, registry, commits) == expected
        reply = await restarted.light_reply(chain.G + 3, [malo])
        assert isinstance(reply, LightReply) and reply.encode() == expected_light.encode()
    store.close()
    reference.store.close()


@pytest.mark.trio
async def test_exports_a_crash_lost_are_written_at_start_and_stale_temporaries_removed(tmp_path, registry, commits,
                                                                                       caplog):
    """Day one: an export was only started by the next decision, so a kill at commit or during the export lost
    it for good, and the hidden directory of the killed writer stayed."""
    from stromledger.export import export_dir, read_export, read_index
    from stromledger.periods import format_utc

    store = _store(tmp_path / "ledger.sqlite3", commits)
    async with MemoryHub() as hub:
        v = _validator(tmp_path, registry, hub, store)
        for c in commits:
            await _commit(v, c)  # every height committed and applied; killed before any export ran
        hub.detach(v.ctx.key.public)
        root = tmp_path / "data"  # the home's data dir: where the chain's exports go
        stale = root / "exports" / "20261121T100000Z" / ".v1.tmp-999999999"  # a dead writer's
        stale.mkdir(parents=True)
        (stale / "manifest.json").write_bytes(b"{half")

        restarted = _validator(tmp_path, registry, hub, store, exports=True)
        caplog.set_level(logging.INFO, logger="test.commit-recovery")
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(restarted.serve)
                await restarted.start_exports_done.wait()
                nursery.cancel_scope.cancel()
    store.close()

    expected = chain.final_exports(registry, commits)  # every height whose certificate the next seal carries
    for (period, version), files in expected.items():
        assert read_export(export_dir(root, format_utc(registry.period(period).start), version)) == files
    assert len(read_index(root)) == 3  # periods G..G+2; G+3 waits for the certificate G+4 carries
    assert not stale.exists() and restarted.exports == len(expected)
    assert f"removed {stale}" in caplog.text
