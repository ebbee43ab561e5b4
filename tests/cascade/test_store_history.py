"""The settled history on disk (nodes/history.py): a ledger over its store's history settles exactly like one
that keeps the window in memory, keeps only the last period's entries in RAM, restarts from the store, and
settles a correction at the far end of a long window (and exports it)."""

from __future__ import annotations

import pytest

from nodes.history import StoreHistory
from stromledger.cascade import CORRECTED, Ledger, Reason, SettledState, StateError
from stromledger.crypto import sha256
from stromledger.consensus import Precommit, ValidatorSet, build_certificate, sign_vote
from stromledger.export import export_committed, read_export, verify_export
from stromledger.store import Store

from .tiny import HOUSE1, HOUSE2, PV, REG, WIND, G, Net, key, make_registry


class StoreNode:
    """A ledger over a store's history, committing and persisting as a validator does (nodes/validator.py):
    the commit stored first, then the new versions' rows, the settled batches and the snapshot in one
    transaction."""

    def __init__(self, registry, path, certify: bool = False):
        self.registry, self.path, self.certify = registry, path, certify
        self.store = Store(path)
        self.history = StoreHistory(self.store, registry)
        snap = self.store.latest_state()
        state = SettledState.decode(snap[1], self.history, registry) if snap else \
            SettledState.genesis(registry, self.history)
        self.ledger = Ledger(registry, state)
        self.certificates: dict[int, bytes] = {}

    def settle(self, *batches):
        for b in batches:
            self.ledger.admit(b, None)
        h = self.ledger.next_height
        outcome = self.ledger.propose(last_commit=self.certificates.get(h - 1, b"") if self.certify else b"")
        self.commit(outcome.seal_bytes)
        return outcome

    def commit(self, seal_bytes: bytes):
        h = self.ledger.next_height
        seal_hash = sha256(seal_bytes)
        cert = certificate(self.registry, h, seal_hash) if self.certify else b"not checked here"
        self.store.put_commit(h, 0, seal_bytes, seal_hash, cert, 0)
        self.certificates[h] = cert
        outcome = self.ledger.commit(seal_bytes)
        with self.store.transaction():
            written = self.history.persist()
            self.store.put_state(h, self.ledger.state.encode())
        self.history.saved(written)
        return outcome

    def reopen(self) -> StoreNode:
        self.store.close()
        again = StoreNode(self.registry, self.path, self.certify)
        again.certificates = self.certificates
        return again


def certificate(registry, height: int, seal_hash: bytes) -> bytes:
    votes = [sign_vote(Precommit, key(f"validator-{i}"), registry.chain_id, height, 0, seal_hash) for i in (1, 2, 3)]
    return build_certificate(height, 0, seal_hash, votes, ValidatorSet(registry.validator_keys())).encode()


def readings(net: Net, i: int) -> list:
    """Period G + i: interval readings, a register meter every third period, late and corrected readings."""
    p = G + i
    items = [net.reading(WIND, p, 0, 1000 + i)]
    if i % 5:
        items.append(net.reading(HOUSE1, p, 100 + i))  # every fifth period substituted
    if i % 3 == 0:
        items.append(net.reading(REG, p, 10_000 + 300 * i, register=True))
    if i >= 2:
        items.append(net.reading(PV, p - 2, 1, 50 + i))  # two periods late: a correction
    if i >= 7 and i % 4 == 0:
        items.append(net.reading(HOUSE2, p - 6, 9, version=2))  # the meter operator's own correction
    if i >= 3:
        items.append(net.reading(HOUSE2, p, 40 + i))
    return items


def test_a_store_history_settles_exactly_like_one_in_memory(tmp_path):
    registry = make_registry(window=100)  # the day before (96 periods) is in the window: substitution reads it
    net = Net(registry)
    memory = Ledger(registry)
    node = StoreNode(registry, tmp_path / "ledger.sqlite3")
    for i in range(130):
        batch = net.batch(readings(net, i))
        expected = net.settle(memory, batch)
        if i == 70:
            node = node.reopen()  # a restart: the state from its snapshot, the history from the store
        got = node.settle(batch)
        assert got.seal_bytes == expected.seal_bytes, f"height {G + i}"
    assert node.ledger.state.encode() != memory.state.encode()  # the store-backed snapshot leaves the window out
    assert len(node.ledger.state.encode()) < len(memory.state.encode()) // 10
    assert dict(node.ledger.state.last) == dict(memory.state.last)
    assert node.ledger.state.baseline == memory.state.baseline
    for p in (G + 40, G + 128):
        assert dict(node.ledger.state.entries[p]) == dict(memory.state.entries[p])
        assert node.ledger.state.results[p] == memory.state.results[p]
    assert node.history.reads["entry"] > 0 and node.history.reads["period"] > 0  # it did read the store
    node.store.close()


def test_a_store_backed_snapshot_needs_its_history(tmp_path):
    registry = make_registry()
    net = Net(registry)
    node = StoreNode(registry, tmp_path / "ledger.sqlite3")
    node.settle(net.batch([net.reading(HOUSE1, G, 5)]))
    data = node.ledger.state.encode()
    with pytest.raises(StateError, match="history is in a node store"):
        SettledState.decode(data)
    with pytest.raises(StateError, match="needs the registry"):
        SettledState.decode(data, node.history)
    node.store.close()


def test_a_correction_at_the_far_end_of_a_long_window_is_settled_and_exported(tmp_path):
    window = 300
    registry = make_registry(window=window)
    net = Net(registry)
    node = StoreNode(registry, tmp_path / "home" / "data" / "ledger.sqlite3", certify=True)
    for i in range(window + 2):
        node.settle(net.batch([net.reading(HOUSE1, G + i, 100 + i % 7), net.reading(WIND, G + i, 0, 500)]))
    h = node.ledger.next_height
    far_end = h - window  # the oldest period the seal at h may still correct
    assert node.ledger.state.entries[far_end][HOUSE2][1] != CORRECTED
    late = net.batch([net.reading(HOUSE2, far_end, 321, 4), net.reading(HOUSE2, far_end - 1, 5)])
    admission = node.ledger.admit(late, None)
    assert [(i, why.reason) for _, i, why in admission.rejections] == [(1, Reason.PERIOD_TOO_OLD)]
    outcome = node.settle(late)
    corrected = outcome.seal.result(far_end)
    assert corrected is not None and corrected.version == 2 and corrected.corrected == 1
    assert far_end not in node.ledger.state.entries  # settled for good: it left the window with this seal
    assert node.history.entries(far_end)[HOUSE2][:4] == (2, CORRECTED, 321, 4)  # its version 2, on disk
    assert node.history.result(far_end) == corrected
    assert {r.reason: r.count for r in outcome.seal.rejected} == {int(Reason.PERIOD_TOO_OLD): 1}
    node.settle(net.batch([net.reading(HOUSE1, h + 1, 1)]))  # carries the certificate of h: h is final
    paths = export_committed(node.store, registry, h, tmp_path / "exports")
    v2 = [p for p in paths if p.name == "v2"]
    assert len(v2) == 1 and verify_export(read_export(v2[0]), registry).ok
    rows = (v2[0] / "meter-points.csv").read_text()
    assert HOUSE2 in rows and ",321," in rows
    node.store.close()


def test_a_store_history_lays_out_each_period_by_its_registry_version(tmp_path):
    """Meter points added and retired on a running chain: the store writes and reads every period's rows in
    that period's registry version, before and after a restart, and settles exactly as a memory ledger."""
    from .test_registry_changes import NEW, add, changes_batch, retire

    reg = make_registry()
    net = Net(reg)
    node = StoreNode(reg, tmp_path / "node.db", certify=True)
    memory = Ledger(reg)

    def settle(*batches):
        for b in batches:
            memory.admit(b, None)
        last_commit = node.certificates.get(node.ledger.next_height - 1, b"")
        out = node.settle(*batches)
        assert memory.propose(last_commit=last_commit).seal_bytes == out.seal_bytes
        memory.commit(out.seal_bytes)
        return out

    settle(changes_batch(add(NEW, G + 2), retire(PV, G + 2)), net.batch([net.reading(PV, G, 4)]))
    settle(net.batch([net.reading(PV, G + 1, 7), net.reading(HOUSE1, G + 1, 3)]))
    node = node.reopen()
    settle(net.batch([net.reading(NEW, G + 2, 5), net.reading(HOUSE1, G + 2, 6)]))
    node = node.reopen()
    fixes = settle(net.batch([net.reading(PV, G + 1, 9, version=2), net.reading(NEW, G + 2, 8, version=2)]))
    assert {r.period: r.version for r in fixes.seal.results} == {G + 1: 2, G + 2: 2, G + 3: 1}
    node = node.reopen()
    for period in (G + 1, G + 2, G + 3):
        assert dict(node.ledger.state.entries[period]) == dict(memory.state.entries[period])
        assert [r.malo_id for r in node.ledger.rows(period)] == [r.malo_id for r in memory.rows(period)]
    assert node.ledger.state.entry(G + 1, PV)[2] == 9 and node.ledger.state.entry(G + 2, NEW)[2] == 8
    assert node.ledger.state.entry(G + 2, PV) is None
    settle()  # makes the corrections' seal final for export
    paths = export_committed(node.store, reg, fixes.seal.height, tmp_path / "exports")
    assert sorted(p.name for p in paths) == ["v1", "v2", "v2"]
    for path in paths:  # each verifies against the registry version its period settled under
        assert verify_export(read_export(path), reg).ok
    node.store.close()
