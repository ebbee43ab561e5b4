import random
import threading

import pytest
import trio

from stromledger.crypto import sha256
from stromledger.store import SqliteSignGuard, Store

A, B = sha256(b"value a"), sha256(b"value b")
NIL = b""


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "ledger.sqlite3") as s:
        yield s


def test_first_record_then_idempotent_then_conflict(store):
    g = store.sign_guard
    assert g.check_and_record(7, 0, 1, A)
    assert g.check_and_record(7, 0, 1, A)  # re-signing the same value is allowed
    assert not g.check_and_record(7, 0, 1, B)
    assert not g.check_and_record(7, 0, 1, NIL)
    assert g.check_and_record(7, 0, 1, A)  # the refusal recorded nothing
    # other steps, rounds and heights are independent
    assert g.check_and_record(7, 0, 2, B)
    assert g.check_and_record(7, 1, 1, B)
    assert g.check_and_record(8, 0, 1, B)


def test_nil_is_a_value_like_any_other(store):
    g = store.sign_guard
    assert g.check_and_record(3, 0, 1, NIL)
    assert g.check_and_record(3, 0, 1, NIL)
    assert not g.check_and_record(3, 0, 1, A)


def test_bad_arguments_raise_and_record_nothing(store):
    g = store.sign_guard
    with pytest.raises(ValueError):
        g.check_and_record(1, 0, 0, b"not a hash")
    with pytest.raises(ValueError):
        g.check_and_record(-1, 0, 0, A)
    with pytest.raises(ValueError):
        g.check_and_record(1, True, 0, A)  # a bool is not a round
    with pytest.raises(ValueError):
        g.check_and_record(1, 0, 0, A.hex())
    with pytest.raises(ValueError):
        g.check_and_record(1, 0, 3, A)  # steps are propose 0, prevote 1, precommit 2
    assert g.last() is None


def test_last_and_prune(store):
    g = store.sign_guard
    assert g.last() is None
    for h, r, s in [(5, 2, 0), (5, 10, 1), (6, 0, 0), (6, 0, 2)]:
        assert g.check_and_record(h, r, s, A)
    assert not g.check_and_record(4, 99, 2, A)  # below the last record's height: refused
    assert g.last() == (6, 0, 2)
    assert g.prune_below(6) == 2
    assert g.last() == (6, 0, 2)
    assert not g.check_and_record(5, 2, 0, B)  # pruned, and below the floor: never signed again
    assert not g.check_and_record(6, 0, 0, B)
    assert g.prune_below(100) == 2
    assert g.floor() == 100
    assert g.last() == (6, 0, 2)  # pruning everything does not forget where signing stopped


def test_records_per_height(store):
    g = store.sign_guard
    for r, s, v in [(1, 2, A), (0, 1, NIL), (0, 0, B), (1, 0, A)]:
        g.check_and_record(5, r, s, v)
    g.check_and_record(6, 0, 0, A)
    records = g.records(5)
    assert [tuple(r) for r in records] == [(5, 0, 0, B), (5, 0, 1, NIL), (5, 1, 0, A), (5, 1, 2, A)]
    assert records[0].value_hash == B and records[3].step == 2
    assert g.records(7) == []


def test_matches_the_consensus_memory_guard(store):
    """The same calls give the same answers as the reference guard consensus is tested with."""
    ref_module = pytest.importorskip("stromledger.consensus.signguard")
    ref, g = ref_module.MemorySignGuard(), store.sign_guard
    assert isinstance(g, ref_module.SignGuard)
    rng = random.Random(7)
    for _ in range(300):
        args = (rng.randrange(3), rng.randrange(3), ref_module.Step(rng.randrange(3)), rng.choice([A, B, NIL]))
        assert g.check_and_record(*args) == ref.check_and_record(*args), args
        assert g.last() == ref.last()
    for h in range(3):
        assert [tuple(r) for r in g.records(h)] == [tuple(r) for r in ref_module.guard_records(ref, h)]
    assert g.prune_below(2) == ref.prune_below(2)
    assert g.last() == ref.last()
    assert g.prune_below(9) == ref.prune_below(9)
    assert g.last() == ref.last() and g.records(2) == []


def test_records_survive_reopening(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    with Store(path) as s:
        assert s.sign_guard.check_and_record(3, 0, 0, A)
        assert s.sign_guard.check_and_record(9, 1, 2, A)
    with Store(path) as s:
        assert not s.sign_guard.check_and_record(9, 1, 2, B)
        assert s.sign_guard.last() == (9, 1, 2)
        s.sign_guard.prune_below(10)
    with Store(path) as s:
        assert s.sign_guard.last() == (9, 1, 2)


def test_guard_refuses_to_join_an_open_transaction(store):
    # inside a transaction the record would commit only later: consensus could send before it is durable
    with store.transaction():
        with pytest.raises(RuntimeError):
            store.sign_guard.check_and_record(1, 0, 0, A)
    assert store.sign_guard.last() is None


def test_standalone_guard_file(tmp_path):
    g = SqliteSignGuard.open(tmp_path / "signguard.sqlite3")
    try:
        assert g.check_and_record(1, 0, 0, A)
        assert not g.check_and_record(1, 0, 0, B)
    finally:
        g.close()


def test_racing_threads_sign_only_one_value(store):
    g = store.sign_guard
    values = [sha256(bytes([i])) for i in range(8)]
    results = [None] * len(values)
    barrier = threading.Barrier(len(values))

    def sign(i):
        barrier.wait()
        results[i] = g.check_and_record(42, 0, 1, values[i])

    threads = [threading.Thread(target=sign, args=(i,)) for i in range(len(values))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    winner = values[results.index(True)]
    assert all(g.check_and_record(42, 0, 1, v) == (v == winner) for v in values)


async def test_usable_from_trio_worker_threads(store):
    g = store.sign_guard
    results = {}

    async def sign(step, value):
        results[step, value] = await trio.to_thread.run_sync(g.check_and_record, 1, 0, step, value)

    async with trio.open_nursery() as nursery:
        for step in range(3):
            for value in (A, B):
                nursery.start_soon(sign, step, value)
    for step in range(3):
        assert sorted([results[step, A], results[step, B]]) == [False, True]
