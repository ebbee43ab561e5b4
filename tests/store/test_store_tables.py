import sqlite3

import pytest

from stromledger.crypto import sha256
from stromledger.store import schema
from stromledger.store import (BatchAlreadySettled, ConflictingCommit, ConflictingPeriodResult, DigestMismatch,
                               Store, StoreError, UnknownBatch, WrongChain)


@pytest.fixture
def store(tmp_path):
    with Store.open_home(tmp_path) as s:
        yield s


def commit(store, height, value=None, round=0, cert=b"cert"):
    value = value if value is not None else f"seal {height}".encode()
    return store.put_commit(height, round, value, sha256(value), cert, committed_at=1_700_000_000 + height)


def batch(store, tag, periods, received_at=0):
    data = f"batch {tag}".encode()
    store.put_batch(sha256(data), data, received_at, periods)
    return sha256(data)


def test_open_home_creates_the_database_under_data(tmp_path):
    Store.open_home(tmp_path).close()
    assert (tmp_path / "data" / "ledger.sqlite3").is_file()


# -- commits ------------------------------------------------------------------------------------------------

def test_commit_roundtrip_and_queries(store):
    assert store.last_height() is None and store.latest_commit() is None
    for h in (10, 11, 13):
        assert commit(store, h)
    c = store.get_commit(11)
    assert (c.height, c.round, c.value, c.value_hash, c.certificate, c.committed_at) == (
        11, 0, b"seal 11", sha256(b"seal 11"), b"cert", 1_700_000_011)
    assert store.get_commit(12) is None
    assert store.last_height() == 13 and store.latest_commit().height == 13
    assert [c.height for c in store.commits_from(11, 10)] == [11, 13]
    assert [c.height for c in store.commits_from(0, 2)] == [10, 11]
    assert store.commits_from(14, 10) == []


def test_commit_is_idempotent_and_keeps_the_first_certificate(store):
    assert commit(store, 5, cert=b"first")
    assert not commit(store, 5, cert=b"other signer subset", round=2)
    assert store.get_commit(5).certificate == b"first" and store.get_commit(5).round == 0


def test_conflicting_commit_is_refused_loudly(store):
    commit(store, 5)
    with pytest.raises(ConflictingCommit):
        commit(store, 5, value=b"another seal")
    # same hash offered with other bytes: the store is being lied to
    with pytest.raises(ConflictingCommit):
        store.put_commit(5, 0, b"tampered", sha256(b"seal 5"), b"cert", 0)
    assert store.get_commit(5).value == b"seal 5"


def test_commit_argument_checks(store):
    with pytest.raises(ValueError):
        store.put_commit(1, 0, b"v", b"short", b"c", 0)
    with pytest.raises(ValueError):
        store.put_commit(-1, 0, b"v", sha256(b"v"), b"c", 0)
    with pytest.raises(TypeError):
        store.put_commit(1, 0, "text", sha256(b"v"), b"c", 0)
    assert store.last_height() is None


# -- batches ------------------------------------------------------------------------------------------------

def test_batch_digest_is_verified(store):
    with pytest.raises(DigestMismatch):
        store.put_batch(sha256(b"x"), b"y", 0, [1])
    assert not store.has_batch(sha256(b"x")) and store.get_batch(sha256(b"x")) is None
    assert store.stats()["rows"]["batch_periods"] == 0


def test_batch_put_is_idempotent_and_merges_periods(store):
    data = b"readings"
    assert store.put_batch(sha256(data), data, 100, [1, 2])
    assert not store.put_batch(sha256(data), data, 200, [3])
    assert store.get_batch(sha256(data)) == data and store.has_batch(sha256(data))
    assert store.batches_for_periods([3]) == [sha256(data)]


def test_batch_selection_and_settlement(store):
    a, b, c = batch(store, "a", [1, 2], 30), batch(store, "b", [2], 10), batch(store, "c", [3], 20)
    assert store.batches_for_periods([2]) == sorted([a, b])
    assert store.batches_for_periods([1, 3]) == sorted([a, c])
    assert store.batches_for_periods([9]) == []
    assert store.unsettled_batches() == [b, c, a]  # oldest received first
    assert store.unsettled_batches(limit=1) == [b]

    commit(store, 7)
    assert store.mark_settled([a, b], 7) == 2
    assert store.mark_settled([a], 7) == 0  # a replayed commit marks again: no-op
    assert store.unsettled_batches() == [c]
    assert store.batches_for_periods([2], unsettled_only=True) == []
    assert store.batches_for_periods([2]) == sorted([a, b])
    assert store.batch_settled_height(a) == 7 and store.batch_settled_height(c) is None


def test_settlement_refuses_double_settling_and_unknown_batches_atomically(store):
    a, b = batch(store, "a", [1]), batch(store, "b", [1])
    commit(store, 7)
    commit(store, 8)
    store.mark_settled([a], 7)
    with pytest.raises(BatchAlreadySettled):
        store.mark_settled([b, a], 8)
    with pytest.raises(UnknownBatch):
        store.mark_settled([b, sha256(b"missing")], 8)
    assert store.batch_settled_height(b) is None  # all or nothing
    with pytest.raises(sqlite3.IntegrityError):  # foreign key: no commit at height 9
        store.mark_settled([b], 9)


# -- period results and state -------------------------------------------------------------------------------

def test_period_results(store):
    commit(store, 100)
    commit(store, 104)
    assert store.latest_version(96) is None
    assert store.put_period_result(96, 1, 100, b"v1")
    assert store.put_period_result(96, 2, 104, b"v2")
    assert not store.put_period_result(96, 2, 104, b"v2")
    with pytest.raises(ConflictingPeriodResult):
        store.put_period_result(96, 2, 104, b"different")
    assert store.latest_version(96) == 2
    assert store.get_period_result(96, 1) == (96, 1, 100, b"v1")
    assert store.get_period_result(96, 3) is None
    with pytest.raises(sqlite3.IntegrityError):  # derived from a height that is not committed
        store.put_period_result(97, 1, 101, b"x")


def test_state_snapshots_keep_the_newest(store):
    assert store.latest_state() is None
    for h in (1, 2, 3, 4):
        commit(store, h)
        store.put_state(h, f"state {h}".encode(), keep=2)
    assert store.latest_state() == (4, b"state 4")
    assert store.stats()["rows"]["states"] == 2
    store.put_state(4, b"re-encoded")
    assert store.latest_state() == (4, b"re-encoded")


# -- evidence -----------------------------------------------------------------------------------------------

def test_evidence_dedup_order_and_inclusion(store):
    assert store.put_evidence("duplicate_vote", 5, b"ev1", first_seen=100)
    assert not store.put_evidence("duplicate_vote", 6, b"ev1", first_seen=300)  # same bytes
    assert store.put_evidence(2, 5, b"ev2", first_seen=200)
    listed = store.list_evidence(10)
    assert [e.data for e in listed] == [b"ev2", b"ev1"]
    assert listed[0].kind == 2 and listed[1].kind == "duplicate_vote"  # kinds come back as given
    assert listed[1].hash == sha256(b"ev1") and listed[1].height == 5 and listed[1].first_seen == 100
    assert store.list_evidence(1) == listed[:1]

    commit(store, 9)
    store.mark_evidence_included([sha256(b"ev1")], 9)
    assert [e.data for e in store.pending_evidence()] == [b"ev2"]
    assert store.list_evidence(10)[1].included_height == 9


# -- consensus WAL ------------------------------------------------------------------------------------------

def test_wal_keeps_insertion_order_per_height(store):
    store.wal_append(5, "recv", b"a")
    store.wal_append(6, "recv", b"x")
    store.wal_append_many(5, [("sent", b"b"), (3, b"c")])
    store.wal_append(5, "recv", b"d")
    assert store.wal_read(5) == [("recv", b"a"), ("sent", b"b"), (3, b"c"), ("recv", b"d")]
    assert store.wal_read(6) == [("recv", b"x")]
    assert store.wal_read(7) == []


def test_wal_append_many_is_atomic(store):
    with pytest.raises(TypeError):
        store.wal_append_many(5, [("recv", b"ok"), ("recv", "not bytes")])
    assert store.wal_read(5) == []


def test_wal_truncate_below(store):
    for h in (4, 5, 6):
        store.wal_append(h, "recv", bytes([h]))
    assert store.wal_truncate_below(6) == 2
    assert store.wal_read(4) == store.wal_read(5) == [] and store.wal_read(6) == [("recv", b"\x06")]


# -- receipts and outbox ------------------------------------------------------------------------------------

def test_receipts_first_one_wins(store):
    d = sha256(b"batch")
    assert store.get_receipt(d) is None
    assert store.put_receipt(d, b"receipt 1")
    assert not store.put_receipt(d, b"receipt 2")
    assert store.get_receipt(d) == b"receipt 1"


def test_outbox_order_replace_and_drop(store):
    store.put_outbox(b"k1", b"one")
    store.put_outbox("k2", b"two")
    store.put_outbox(b"k3", b"three")
    store.put_outbox(b"k1", b"one again")  # replaced in place
    assert store.outbox() == [(b"k1", b"one again"), ("k2", b"two"), (b"k3", b"three")]
    assert store.drop_outbox("k2") and not store.drop_outbox("k2")
    assert [k for k, _ in store.outbox()] == [b"k1", b"k3"]


# -- meta and chain -----------------------------------------------------------------------------------------

def test_chain_check_binds_the_database(tmp_path):
    genesis = sha256(b"genesis")
    with Store.open_home(tmp_path) as s:
        s.check_chain("strom-devnet", genesis)
        s.check_chain("strom-devnet", genesis)
    with Store.open_home(tmp_path) as s:
        s.check_chain("strom-devnet", genesis)
        with pytest.raises(WrongChain, match="strom-devnet"):
            s.check_chain("strom-main", genesis)
        with pytest.raises(WrongChain):
            s.check_chain("strom-devnet", sha256(b"other genesis"))
        assert s.get_meta("chain_id") == b"strom-devnet"


def test_meta(store):
    assert store.get_meta("x") is None
    store.set_meta("x", b"1")
    store.set_meta("x", b"2")
    assert store.get_meta("x") == b"2"


# -- transactions, stats, backup ----------------------------------------------------------------------------

def test_transaction_is_all_or_nothing(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            commit(store, 1)
            store.wal_append(1, "recv", b"m")
            raise RuntimeError("crash in the middle")
    assert store.get_commit(1) is None and store.wal_read(1) == []


def test_nested_failure_rolls_back_only_the_inner_part(store):
    with store.transaction():
        commit(store, 1)
        with pytest.raises(DigestMismatch):
            store.put_batch(sha256(b"a"), b"b", 0, [1])
        with pytest.raises(ConflictingCommit):
            commit(store, 1, value=b"other")
        store.mark_settled([batch(store, "a", [1])], 1)
    assert store.get_commit(1).value == b"seal 1" and store.unsettled_batches() == []


def test_durable_write_refused_inside_a_non_durable_transaction(store):
    with store.transaction(durable=False):
        store.wal_append(1, "recv", b"m")  # fine: non-durable
        with pytest.raises(RuntimeError, match="durable"):
            commit(store, 1)
    assert store.wal_read(1) == [("recv", b"m")] and store.get_commit(1) is None


def test_durability_levels(store):
    store.wal_append(1, "recv", b"m")
    assert store.db.synchronous() == "NORMAL"
    commit(store, 1)
    assert store.db.synchronous() == "FULL"
    store.wal_append(1, "recv", b"m")
    store.sign_guard.check_and_record(1, 0, 0, sha256(b"v"))
    assert store.db.synchronous() == "FULL"


def test_stats(store):
    commit(store, 3)
    batch(store, "a", [1, 2])
    store.wal_append(4, "recv", b"m")
    st = store.stats()
    assert st["schema_version"] == schema.LATEST and st["last_height"] == 3 and st["state_height"] is None
    assert st["rows"]["commits"] == 1 and st["rows"]["batches"] == 1 and st["rows"]["batch_periods"] == 2
    assert st["rows"]["consensus_wal"] == 1 and st["unsettled_batches"] == 1
    assert st["db_bytes"] > 0 and st["wal_bytes"] > 0


def test_backup_while_open(store, tmp_path):
    commit(store, 3)
    dest = tmp_path / "backup.sqlite3"
    store.backup(dest)
    commit(store, 4)  # the node keeps writing after the snapshot
    with pytest.raises(FileExistsError):
        store.backup(dest)
    with Store(dest) as copy:
        assert copy.integrity_check() == []
        assert copy.last_height() == 3 and copy.get_commit(3) == store.get_commit(3)


def test_closed_store_raises(tmp_path):
    s = Store.open_home(tmp_path)
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.last_height()
