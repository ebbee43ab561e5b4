"""Exports under a registry version with changes: they carry the changes (registry-changes.jsonl) and the
version, a switched meter point is in its old group before the effective period and in the new one from it,
and `export verify` rebuilds the version from the genesis plus the carried changes."""

from __future__ import annotations

import csv
import io

import export_chain as chain
from export_chain import A1, G, G1, G2, OPERATOR, certify, malo, readings, validator_key

from stromledger.cascade import Ledger, make_batch
from stromledger.export import exports_of_seal, verify_export
from stromledger.export.committed import registry_history
from stromledger.registry import SUPPLIER_SWITCH, sign_change
from stromledger.store import Store

SWITCHED = malo(1)  # in A1, group G1 from genesis on


def run_with_switch(registry):
    """Four heights; the seal of G commits a switch of SWITCHED to G2 from G + 2."""
    change = sign_change(validator_key(0), registry.chain_id, SUPPLIER_SWITCH, SWITCHED, G + 2, balancing_group=G2)
    assert registry.validators[0].grid_area == A1
    ledger = Ledger(registry)
    commits = []
    for h in range(G, G + 4):
        batches = [make_batch(OPERATOR, registry.chain_id, readings(registry, h))]
        if h == G:
            batches.append(make_batch(validator_key(0), registry.chain_id, changes=[change]))
        for b in batches:
            assert ledger.admit(b, None).refused is None
        outcome = ledger.propose(last_commit=commits[-1].certificate.encode() if commits else b"")
        ledger.commit(outcome.seal_bytes)
        rows = {r.period: list(ledger.rows(r.period)) for r in outcome.seal.results}
        commits.append(chain.Commit(h, outcome.seal_bytes, outcome.seal_hash, certify(registry, h, outcome.seal_hash),
                                    batches, rows, ledger.state.encode()))
    return change, commits


def group_in(files, m: str) -> str:
    rows = list(csv.DictReader(io.StringIO(files["meter-points.csv"].decode())))
    return next(r["balancing_group"] for r in rows if r["malo_id"] == m)


def test_exports_follow_the_registry_version_of_their_period(tmp_path, registry):
    change, commits = run_with_switch(registry)
    store = Store.open_home(tmp_path / "home")
    chain.fill_store(store, commits, period_rows=True, state=True)
    assert registry_history(store) == (change,)
    before = exports_of_seal(store, registry, G + 1)[G + 1, 1]
    after = exports_of_seal(store, registry, G + 2)[G + 2, 1]
    assert group_in(before, SWITCHED) == G1 and group_in(after, SWITCHED) == G2
    assert "registry-changes.jsonl" not in before and b'"kind":"switch"' in after["registry-changes.jsonl"]
    for files in (before, after):
        report = verify_export(files, registry)
        assert report.ok, report.problems
    # the version is pinned by the certified seal: without the changes (or with others) it does not verify
    stripped = dict(after)
    del stripped["registry-changes.jsonl"]
    assert "registry_version" in {p.reason for p in verify_export(stripped, registry).problems}
    other = sign_change(validator_key(0), registry.chain_id, SUPPLIER_SWITCH, SWITCHED, G + 2,
                        balancing_group=chain.G3)
    forged = dict(after)
    forged["registry-changes.jsonl"] = after["registry-changes.jsonl"].replace(
        change.encode().hex().encode(), other.encode().hex().encode())
    reasons = {p.reason for p in verify_export(forged, registry).problems}
    assert reasons & {"file_hash", "registry_version"}
    store.close()

