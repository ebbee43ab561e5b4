"""End to end with real node processes on 127.0.0.1: a small devnet settles and verifies, and a validator
killed with SIGKILL mid-period restarts, catches up and has signed nothing conflicting.

These tests wait on other OS processes, so they poll the nodes' status files and stores against a deadline
(there is no in-process event to wait on); every wait is bounded."""

from __future__ import annotations

import io
import json
import os
import signal
import time

from rich.console import Console

from nodes.devnet import DevnetOptions, NodeProcess, create_devnet, read_status, run_devnet, start_nodes, stop_nodes
from stromledger.consensus.evidence import DuplicateVoteEvidence
from stromledger.export import verify_export
from stromledger.store import Store


def wait_for(what: str, predicate, deadline: float, procs=()) -> None:
    while not predicate():
        for p in procs:
            if p.exit_code() is not None and not p.killed:
                raise AssertionError(f"{p.spec.name} died while waiting for {what}:\n{p.log_tail()}")
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def last_height(spec) -> int:
    commit = read_status(spec).get("last_commit") or {}
    return commit.get("height", -1)


def export_trees(spec) -> dict[str, dict[str, bytes]]:
    """A validator's export directories by relative path: {file name: bytes}: the network chain's
    (exports/<period>/v<N>) and every area chain's (chains/<EIC>/exports/<period>/v<N>)."""
    base = spec.home / "data"
    return {str(d.relative_to(base)): {f.name: f.read_bytes() for f in sorted(d.iterdir())}
            for d in sorted([*base.glob("exports/*/v*"), *base.glob("chains/*/exports/*/v*")]) if d.is_dir()}


def test_small_devnet_settles_agrees_and_verifies(tmp_path):
    # Three periods: the export of a period is written when the next one commits, so the first two have one.
    options = DevnetOptions(validators=4, balancing_groups=2, meters=40, periods=3, period_seconds=3, seed=7)
    devnet = create_devnet(tmp_path / "devnet", options, int(time.time()))
    out = io.StringIO()
    code = run_devnet(devnet, Console(file=out, width=160, color_system=None))
    text = out.getvalue()
    assert code == 0, text
    assert "devnet OK" in text
    assert "network group totals = sums of the area exports" in text
    # The validators' exports are byte-identical, manifest and its commit certificate included.
    trees = {v.name: export_trees(v) for v in devnet.validators}
    common = set.intersection(*(set(t) for t in trees.values()))
    assert common, {name: sorted(t) for name, t in trees.items()}
    first = devnet.validators[0].name
    for name, tree in trees.items():
        for directory in sorted(common):
            assert "manifest.json" in tree[directory], (name, directory)
            assert tree[directory] == trees[first][directory], f"{name} and {first} differ in {directory}"
    scopes = set()
    for directory in sorted(common):
        report = verify_export(trees[first][directory], devnet.registry)
        assert report.ok, (directory, str(report))
        scopes.add(json.loads(trees[first][directory]["manifest.json"])["scope"])
    assert scopes == {"network", *devnet.registry.grid_areas}  # every chain exported, verified by the genesis


def test_validator_killed_mid_period_catches_up_without_conflicting_signatures(tmp_path):
    options = DevnetOptions(validators=4, balancing_groups=1, meters=20, periods=8, period_seconds=3, seed=3)
    devnet = create_devnet(tmp_path / "devnet", options, int(time.time()))
    g = devnet.registry.genesis_period
    victim = devnet.validators[2]
    others = [v for v in devnet.validators if v is not victim]
    procs = start_nodes(devnet)
    deadline = devnet.gate_closure(g) + 60
    try:
        wait_for("the first commit", lambda: last_height(victim) >= g, deadline, procs)
        # Kill it during the next period, before that period's gate closes.
        victim_proc = next(p for p in procs if p.spec is victim)
        os.kill(victim_proc.pid, signal.SIGKILL)
        victim_proc.popen.wait()
        victim_proc.killed = True
        killed_at = last_height(victim)
        # The other three (a quorum) keep committing.
        target = killed_at + 3
        wait_for(f"commits up to {target} without the victim",
                 lambda: all(last_height(v) >= target for v in others), deadline + 30, procs)
        # Restart it from its home: it catches up with what it missed and joins again.
        restarted = NodeProcess(victim)
        procs.append(restarted)
        caught_up = target + 1
        wait_for(f"the restarted validator to commit {caught_up}",
                 lambda: last_height(victim) >= caught_up, deadline + 60, procs)
    finally:
        stop_nodes(procs)

    stores = {v.name: Store.open_home(v.home) for v in devnet.validators}
    try:
        reference = stores[others[0].name]
        mine = stores[victim.name]
        assert mine.last_height() >= caught_up
        for h in range(g, mine.last_height() + 1):
            theirs = reference.get_commit(h)
            if theirs is not None:
                assert mine.get_commit(h).value_hash == theirs.value_hash, f"height {h} differs"
        # Every height was committed exactly once, in order, on the restarted node.
        assert [c.height for c in mine.commits_from(g, 1000)] == list(range(g, mine.last_height() + 1))
        # No honest validator saw two different votes signed by the same key.
        for name, s in stores.items():
            evidence = [DuplicateVoteEvidence.decode(e.data) for e in s.list_evidence(1000)]
            assert evidence == [], f"{name} recorded evidence: {evidence}"
    finally:
        for s in stores.values():
            s.close()


def test_devnet_churn_changes_take_effect_exactly_at_their_period(tmp_path):
    # Five periods: the changes take effect in the fourth, whose export is written when the fifth commits.
    # 4 s periods: the changes must be committed by the second seal, and on a loaded machine ten processes
    # starting (one more validator, the follower a committee change seats) leave 3 s periods little slack.
    options = DevnetOptions(validators=4, balancing_groups=2, meters=40, periods=5, period_seconds=4, seed=7,
                            churn=True)
    devnet = create_devnet(tmp_path / "devnet", options, int(time.time()))
    out = io.StringIO()
    code = run_devnet(devnet, Console(file=out, width=400, color_system=None))
    text = out.getvalue()
    assert code == 0, text
    churn = [line for line in text.splitlines() if line.startswith("churn: ") and " from period " in line
             and ":" in line.split(" from period ", 1)[1]]
    kinds = sorted(line.split()[1] for line in churn)
    assert kinds == sorted(["switch"] * len(devnet.registry.grid_areas) + ["retire_meter_point", "rotate_key",
                                                                              "add_meter_point"]), text
    # the follower validator-5 replaces the committee's last member of its area from the same period on
    committee = [line for line in text.splitlines() if line.startswith("churn: committee of ")
                 and "certified by the old committee" in line]
    assert len(committee) == 1 and "validator-5 signing, validator-4 no longer counted" in committee[0], text
