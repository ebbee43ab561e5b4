"""The validator's guards around consensus (issues 17 and 19): checks before the WAL, in a worker thread;
WAL budgets; commit answers rate-limited per peer; the sign-guard check at start with its override. Each
test failed on the code before these guards."""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import pytest
import trio

from nodes.consensus_guard import (ReplyLimiter, StartRefused, WalBudget, check_sign_guard,
                                   sign_guard_problem)
from nodes.datagen.devnet_genesis import devnet_key, devnet_registry
from nodes.home import NodeConfig
from nodes.runtime import NodeContext
from nodes.validator import Validator
from stromledger.consensus import events as ev
from stromledger.consensus.certificate import build_certificate
from stromledger.consensus.messages import (Commit, Precommit, Prevote, Proposal, sign_proposal, sign_vote,
                                            value_hash)
from stromledger.consensus.validators import ValidatorSet
from stromledger.net import MemoryHub
from stromledger.store import Store

ME = "validator-1"


def _registry():  # genesis in the future: no height starts by itself
    return devnet_registry(validators=4, balancing_groups=2, meters=10, period_seconds=60,
                           genesis_start=int(time.time()) + 3600, chain_id="test-guard")


def _validator(tmp_path, registry, hub, store, clock=time.time) -> Validator:
    key = devnet_key(ME)
    ctx = NodeContext(config=NodeConfig(home=tmp_path, role="validator", name=ME), key=key,
                      registry=registry, log=logging.getLogger("test.guard"))
    return Validator(ctx, store, hub.endpoint(key.public), write_exports=False, clock=clock)


def _keys(registry):
    by_public = {devnet_key(f"validator-{i}").public: devnet_key(f"validator-{i}") for i in range(1, 5)}
    return [by_public[k] for k in registry.validator_keys()]


@contextlib.asynccontextmanager
async def validator_on_a_hub(tmp_path, clock=time.time):
    """(validator, store, registry, validator signing keys in genesis order), the store closed after."""
    registry = _registry()
    store = Store(tmp_path / "ledger.sqlite3")
    try:
        async with MemoryHub() as hub:
            yield _validator(tmp_path, registry, hub, store, clock), store, registry, _keys(registry)
    finally:
        store.close()


@pytest.mark.trio
async def test_messages_are_checked_before_the_wal_and_the_wal_is_capped(tmp_path):
    async with validator_on_a_hub(tmp_path) as (v, store, registry, keys):
        h, chain = v.machine.height, registry.chain_id
        vset = v.machine.validators
        proposer = keys[vset.proposer_index(h, 0)]
        bad_sig = sign_proposal(proposer, chain, h, 0, -1, b"seal")
        bad_sig = Proposal(bad_sig.height, 0, -1, b"another seal", bad_sig.proposer, bad_sig.sig)
        wrong = keys[(vset.proposer_index(h, 0) + 1) % 4]
        for payload in (bad_sig.encode(), sign_proposal(wrong, chain, h, 0, -1, b"seal").encode(),
                        sign_vote(Prevote, devnet_key("outsider"), chain, h, 0, None).encode(), b"\x92\x1f\xc0"):
            await v._on_consensus(wrong.public, payload)
        assert store.wal_read(h) == []
        assert {"consensus_bad_signature", "consensus_wrong_proposer", "consensus_unknown_validator"} \
            <= set(v.ctx.rejections)

        v.wal_budget = WalBudget(per_height=64 << 20, per_author=2 << 20)
        byz = vset.proposer_index(h, 1)
        rounds = [r for r in range(1, 60) if vset.proposer_index(h, r) == byz][:10]
        for r in rounds:  # one byzantine proposer floods 10 proposals of 512 KiB
            payload = sign_proposal(keys[byz], chain, h, r, -1, bytes([r]) * (512 * 1024)).encode()
            await v._on_consensus(keys[byz].public, payload)
        logged = sum(len(d) for _, d in store.wal_read(h))
        assert logged <= 2 << 20 and v.machine.drops["wal_budget"] == len(rounds) - 3
        good = sign_vote(Prevote, keys[2], chain, h, 0, None).encode()
        await v._on_consensus(keys[2].public, good)  # other validators' messages still get in
        assert ("msg", good) in store.wal_read(h)


@pytest.mark.trio
async def test_consensus_payloads_are_decoded_off_the_event_loop(tmp_path, monkeypatch):
    import nodes.consensus_guard
    import nodes.validator
    from stromledger.codec import decode

    threads = []

    def spy(data):
        threads.append(threading.current_thread() is threading.main_thread())
        return decode(data)
    monkeypatch.setattr(nodes.consensus_guard, "decode", spy)
    monkeypatch.setattr(nodes.validator, "decode", spy)
    async with validator_on_a_hub(tmp_path) as (v, _, registry, keys):
        vote = sign_vote(Prevote, keys[2], registry.chain_id, v.machine.height, 0, None)
        await v._on_consensus(vote.validator, vote.encode())
    assert threads == [False]


@pytest.mark.trio
async def test_replays_of_an_old_message_draw_one_commit_reply(tmp_path):
    now = time.time()  # a fixed clock: however slow the machine, the 300 replays come within one interval
    async with validator_on_a_hub(tmp_path, clock=lambda: now) as (v, _, registry, keys):
        sent = []

        async def record(peer, protocol, payload):
            sent.append(peer)
        v._send_quietly = record
        commit = _commit(registry, keys, v.machine.height - 1)
        async with trio.open_nursery() as nursery:
            v._nursery = nursery
            for _ in range(300):
                await v._execute(ev.SendCommit(keys[2].public, commit))
            await v._execute(ev.SendCommit(keys[3].public, commit))  # another peer has its own allowance
        assert sorted(sent) == sorted([keys[2].public, keys[3].public])  # trio may start them in any order


def test_reply_limiter_allows_one_answer_per_peer_and_height_per_interval():
    limiter = ReplyLimiter(2.0, capacity=4)
    assert limiter.allow(b"p", 5, 100.0) and not limiter.allow(b"p", 5, 101.9)
    assert limiter.allow(b"p", 6, 101.9) and limiter.allow(b"q", 5, 101.9)
    assert limiter.allow(b"p", 5, 102.0)
    for i in range(10):
        limiter.allow(b"r", i, 103.0)
    assert len(limiter._last) <= 5


def _commit(registry, keys, height: int) -> Commit:
    value = b"a seal"
    votes = [sign_vote(Precommit, k, registry.chain_id, height, 0, value_hash(value)) for k in keys[:3]]
    vset = ValidatorSet(registry.validator_keys())
    return Commit(value, build_certificate(height, 0, value_hash(value), votes, vset))


def test_a_guard_empty_or_behind_its_store_refuses_to_sign_unless_overridden(tmp_path, caplog):
    registry = _registry()
    keys = _keys(registry)
    vset = ValidatorSet(registry.validator_keys())
    log = logging.getLogger("test.guard")
    with Store(tmp_path / "ledger.sqlite3") as store:
        me = keys[0].public
        assert sign_guard_problem(store.sign_guard, store, me, vset) is None  # a new node
        c = _commit(registry, keys, 100)
        store.put_commit(100, 0, c.value, value_hash(c.value), c.certificate.encode(), 0)
        with pytest.raises(StartRefused, match="sign guard is empty"):
            check_sign_guard(store.sign_guard, store, me, vset, 101, False, log)
        store.sign_guard.check_and_record(90, 0, 1, b"")  # restored from an older backup
        with pytest.raises(StartRefused, match="certificate of height 100 carries this validator's signature"):
            check_sign_guard(store.sign_guard, store, me, vset, 101, False, log)
        assert sign_guard_problem(store.sign_guard, store, keys[3].public, vset) is None  # it did not sign 100
        with caplog.at_level(logging.WARNING):
            check_sign_guard(store.sign_guard, store, me, vset, 101, True, log)
        assert "OVERRIDDEN" in caplog.text
        assert store.sign_guard.floor() == 101  # decided heights are never signed again
        assert not store.sign_guard.check_and_record(100, 0, 1, b"")


def test_a_follower_with_an_empty_guard_may_start_and_a_member_may_not(tmp_path):
    """A validator that only followed a chain (outside its committee at every stored height) signed nothing
    there: its empty guard is no sign of a lost one. Judged by each stored height's committee."""
    registry = _registry()
    keys = _keys(registry)
    members = registry.validator_keys()
    outsider = devnet_key("validator-9").public
    with Store(tmp_path / "ledger.sqlite3") as store:
        c = _commit(registry, keys, 100)
        store.put_commit(100, 0, c.value, value_hash(c.value), c.certificate.encode(), 0)
        assert sign_guard_problem(store.sign_guard, store, outsider, ValidatorSet(members)) is None
        # seated from height 100 on (by a committee change): it could have signed, the empty guard is refused
        seated = lambda h: members[:3] + (outsider,) if h >= 100 else members  # noqa: E731
        assert "sign guard is empty" in sign_guard_problem(store.sign_guard, store, outsider, seated)
        assert sign_guard_problem(store.sign_guard, store, outsider, lambda h: members) is None


def test_node_run_explains_a_refused_start_in_one_line(tmp_path, capsys, monkeypatch):
    from nodes.commands import node

    class Ctx:
        config = NodeConfig(home=tmp_path, role="validator", name=ME)

    async def refuse(ctx):
        async with trio.open_nursery():
            raise StartRefused("refusing to sign: the sign guard is empty")
    monkeypatch.setattr("nodes.runtime.open_context", lambda home: Ctx())
    monkeypatch.setattr("nodes.chains.run", refuse)
    args = type("Args", (), {"home": str(tmp_path), "resume_signing_after_restore": False, "log_format": None,
                             "log_level": None})()
    assert node._run(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refusing to sign: the sign guard is empty" in err
