"""The devnet without a network: the homes it writes (ports distinct and free, every home valid, keys 0600),
its timing, how it reads progress from status files, how it reports the results in the validators' stores,
a dead node and a node that ignores SIGTERM. The end-to-end run with real node processes is elsewhere."""

from __future__ import annotations

import dataclasses

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from nodes.devnet import (
    DevnetOptions, NodeProcess, NodeSpec, Progress, check_homes, collect_results, create_devnet, genesis_start,
    grace_seconds, load_devnet, poll, report, start_margin, stop_nodes, verified_heights, watch,
)
from nodes.home import load_config
from stromledger.cascade import Ledger, make_batch, sign_reading
from nodes.datagen.devnet_genesis import devnet_key, meter_label
from stromledger.consensus import Precommit, ValidatorSet, build_certificate, sign_vote
from stromledger.store import Store

NOW = 1_800_000_003
SMALL = DevnetOptions(validators=4, balancing_groups=2, meters=24, periods=2, period_seconds=5, seed=3)


@pytest.fixture
def devnet(tmp_path):
    return create_devnet(tmp_path / "dn", SMALL, now=NOW)


def quiet() -> Console:
    return Console(file=open("/dev/null", "w"), width=140)


def recording() -> tuple[Console, object]:
    import io

    buf = io.StringIO()
    return Console(file=buf, width=200, highlight=False), buf


# -- the homes --------------------------------------------------------------------------------------------------


def test_one_home_per_validator_meter_operator_and_supplier_group(devnet):
    reg = devnet.registry
    assert [n.name for n in devnet.validators] == ["validator-1", "validator-2", "validator-3", "validator-4"]
    assert [n.name for n in devnet.light_nodes] == ["meter-operator-1", "meter-operator-2"]
    assert [n.name for n in devnet.group_nodes] == ["bg-operator-1", "bg-operator-2"]
    assert len(reg.meter_points) == 24 and len(reg.validators) == 4
    assert check_homes(devnet) == []  # configs load, genesis copies match, keys 0600 and right, peers = validators
    for n in devnet.nodes:
        assert (n.home / "node.key").stat().st_mode & 0o777 == 0o600
        assert load_config(n.home).name == n.name
    energies = str(devnet.directory / "simulated-energies.npz")  # computed once for every node
    start = "2027-01-15T08:00:00+00:00"  # the quarter hour of NOW
    assert load_config(devnet.light_nodes[0].home).meter_point == {"feed": "simulated", "seed": 3, "start": start,
                                                                   "energies": energies}
    assert devnet.options.start == start
    assert load_config(devnet.group_nodes[0].home).balancing_group["energies"] == energies
    assert load_config(devnet.group_nodes[1].home).balancing_group["schedules"] == "simulated"


def test_ports_are_distinct_and_free(devnet):
    ports = [n.port for n in devnet.nodes]
    assert len(set(ports)) == len(ports) == 8
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", port))  # raises if taken


def test_two_devnets_side_by_side(tmp_path, devnet):
    other = create_devnet(tmp_path / "dn2", SMALL, now=NOW)
    assert other.registry.chain_id != devnet.registry.chain_id
    assert not {n.port for n in other.nodes} & {n.port for n in devnet.nodes}


def test_timing_of_the_chain(devnet):
    reg = devnet.registry
    start = reg.genesis_period * reg.period_seconds
    # after the margin for the node processes, plus the seconds the simulated energies took to compute
    assert start % 5 == 0 and NOW + start_margin(SMALL) <= start < NOW + start_margin(SMALL) + 5 + 30
    assert start_margin(SMALL) >= 6
    assert reg.params.grace_seconds == grace_seconds(5) == 2
    assert list(devnet.heights) == [reg.genesis_period, reg.genesis_period + 1]
    assert devnet.deadline() >= devnet.gate_closure(devnet.heights[-1]) + 45
    assert genesis_start(100, 5, 6) == 110 and genesis_start(104, 5, 6) == 110 and genesis_start(105, 5, 6) == 115


def test_devnet_json_reads_back(devnet):
    again = load_devnet(devnet.directory)
    assert again.nodes == devnet.nodes and again.registry.hash == devnet.registry.hash
    assert again.options == dataclasses.replace(SMALL, start="2027-01-15T08:00:00+00:00")  # the start it chose


def test_a_devnet_needs_a_new_directory(tmp_path):
    (tmp_path / "dn").mkdir()
    (tmp_path / "dn" / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        create_devnet(tmp_path / "dn", SMALL, now=NOW)
    with pytest.raises(ValueError):
        create_devnet(tmp_path / "bad", DevnetOptions(periods=0), now=NOW)


def test_devnet_command_refuses_a_used_directory(tmp_path, capsys):
    from nodes.cli import main

    (tmp_path / "x").write_text("")
    assert main(["devnet", "--dir", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().out


# -- progress from status files -------------------------------------------------------------------------------


def write_status(spec: NodeSpec, doc: dict) -> None:
    (spec.home / "data" / "status.json").write_text(json.dumps(doc))


def test_verified_heights_of_light_and_group_nodes():
    heights = range(100, 103)
    light = {"verified": {"periods": 2, "readings": 20, "failures": 0, "last_period": "1970-01-01T00:08:25Z/PT5S"}}
    assert verified_heights(light, "meter-point", heights, 5) == ({100, 101}, [])
    light["verified"]["failures"] = 3
    assert verified_heights(light, "meter-point", heights, 5)[1] == [
        "3 reading(s) NOT settled as sent (VERIFICATION FAILED in its node.log)"]
    group = {"verified": {"heights": 3, "last_height": 102, "discrepancies": 1}, "halted": "height 102: boom"}
    done, problems = verified_heights(group, "balancing-group", heights, 5)
    assert done == {100, 101, 102} and len(problems) == 2 and "halted: height 102: boom" in problems
    assert verified_heights({}, "meter-point", heights, 5) == (set(), [])
    assert verified_heights({"verified": "garbage"}, "balancing-group", heights, 5) == (set(), [])


def fabricate_progress(devnet, seal_of=lambda name, h: f"{h:064x}") -> None:
    last = devnet.heights[-1]
    for v in devnet.validators:
        write_status(v, {"listen": v.listen, "last_height": last,
                         "last_commit": {"height": last, "seal_hash": seal_of(v.name, last), "round": 0,
                                         "ms_after_gate_closure": 80}})
    iso = devnet.registry.period(last).iso()
    for n in devnet.light_nodes:
        write_status(n, {"listen": n.listen, "verified": {"periods": 2, "failures": 0, "last_period": iso}})
    for n in devnet.group_nodes:
        write_status(n, {"listen": n.listen, "verified": {"last_height": last, "discrepancies": 0}})


def test_watch_finishes_when_everything_is_committed_and_verified(devnet):
    fabricate_progress(devnet)
    console, buf = recording()
    outcome, progress, detail = watch(devnet, [], console, clock=lambda: NOW, sleep=pytest.fail)
    assert outcome == "done" and progress.settled == set(devnet.heights)
    out = buf.getvalue()
    assert "validator-1, validator-2, validator-3, validator-4 committed" in out and "same seal" in out
    assert "meter-operator-2 verified its readings" in out and "bg-operator-1 verified the seal" in out


def test_watch_shows_different_seals(devnet):
    fabricate_progress(devnet, seal_of=lambda name, h: ("ee" if name == "validator-3" else "aa") * 32)
    console, buf = recording()
    watch(devnet, [], console, clock=lambda: NOW, sleep=pytest.fail)
    assert "DIFFERENT SEALS" in buf.getvalue()


def test_watch_gives_up_at_the_deadline(devnet):
    outcome, progress, detail = watch(devnet, [], quiet(), clock=lambda: devnet.deadline() + 1, sleep=pytest.fail)
    assert outcome == "timeout" and "heights not committed by every validator" in detail
    assert str(devnet.heights[0]) in detail


def test_watch_reports_a_dead_node_with_its_log(devnet):
    spec = devnet.validators[0]
    (spec.home / "config.toml").write_text('role = "nonsense"\n')  # the node refuses to start
    proc = NodeProcess(spec)
    proc.popen.wait()
    outcome, _, detail = watch(devnet, [proc], quiet(), clock=lambda: NOW, sleep=pytest.fail)
    assert outcome == "died"
    assert f"validator-1 (validator, pid {proc.pid}) exited with status 2;" in detail  # not a usable home
    assert "cannot start the node" in detail and "role must be one of" in detail  # the tail of node.log


def test_stop_nodes_kills_only_what_ignores_sigterm(devnet):
    def sh(script: str, spec: NodeSpec) -> NodeProcess:
        p = NodeProcess.__new__(NodeProcess)
        p.spec, p.log_path, p.killed = spec, spec.home / "node.log", False
        p.popen = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE)
        assert p.popen.stdout.readline() == b"ready\n"  # its trap is in place
        return p

    polite = sh("echo ready; exec sleep 30", devnet.nodes[0])
    stubborn = sh('trap "" TERM; echo ready; while :; do sleep 1; done', devnet.nodes[1])
    killed = stop_nodes([polite, stubborn], timeout=1.0)
    assert killed == [f"{devnet.nodes[1].name} (pid {stubborn.pid}) did not stop within 1 s of SIGTERM: killed"]
    assert stubborn.killed and not polite.killed and polite.exit_code() == -15


# -- results from the validators' stores -----------------------------------------------------------------------


def settle(devnet) -> list[tuple[int, bytes, bytes, bytes]]:
    reg = devnet.registry
    ledger = Ledger(reg)
    vset = ValidatorSet(reg.validator_keys())
    out = []
    for h in devnet.heights:
        op = devnet_key("meter-operator-1")
        name = next(iter(reg.meter_operators))
        readings = [sign_reading(devnet_key(meter_label(m)), reg.chain_id, m, h, 100 + h % 7, 0)
                    for m in reg.malo_order if reg.meter_points[m].meter_operator == name]
        ledger.admit(make_batch(op, reg.chain_id, readings), None)
        outcome = ledger.propose()
        ledger.commit(outcome.seal_bytes)
        votes = [sign_vote(Precommit, devnet_key(f"validator-{i}"), reg.chain_id, h, 0, outcome.seal_hash)
                 for i in (2, 3, 4)]
        out.append((h, outcome.seal_bytes, outcome.seal_hash,
                    build_certificate(h, 0, outcome.seal_hash, votes, vset).encode()))
    return out


def store_commits(spec: NodeSpec, commits) -> None:
    with Store.open_home(spec.home) as store:
        for h, seal, seal_hash, cert in commits:
            store.put_commit(h, 0, seal, seal_hash, cert, NOW)


def all_verified(devnet) -> Progress:
    return Progress(verified={n.name: set(devnet.heights) for n in devnet.light_nodes + devnet.group_nodes})


def test_results_agree_when_every_validator_has_the_same_seals(devnet):
    commits = settle(devnet)
    for v in devnet.validators:
        store_commits(v, commits)
    results = collect_results(devnet)
    assert [r.agreed for r in results] == [True, True]
    assert results[0].summary["seal_hash"] == commits[0][2].hex()
    console, buf = recording()
    assert report(devnet, results, all_verified(devnet), console) is True
    out = buf.getvalue()
    assert commits[1][2].hex() in out and "the same on all 4 validators" in out
    assert "balancing groups" in out and "grid areas" in out and "generation mix" in out

    progress = all_verified(devnet)
    progress.verified["meter-operator-2"] = {devnet.heights[0]}
    progress.problems["bg-operator-1"] = ["1 seal(s) it could not rebuild identically"]
    console, buf = recording()
    assert report(devnet, results, progress, console) is False
    assert "meter-operator-2 did not verify" in buf.getvalue() and "could not rebuild" in buf.getvalue()


def test_results_disagree_when_a_validator_lacks_or_differs(devnet):
    commits = settle(devnet)
    for v in devnet.validators[:3]:
        store_commits(v, commits)
    store_commits(devnet.validators[3], commits[:1])  # it never committed the second height
    results = collect_results(devnet)
    assert [r.agreed for r in results] == [True, False]
    assert results[1].seals["validator-4"] is None
    console, buf = recording()
    assert report(devnet, results, all_verified(devnet), console) is False
    assert "not committed" in buf.getvalue()


def test_poll_counts_heights_a_validator_committed_between_polls(devnet):
    first, last = devnet.heights[0], devnet.heights[-1]
    for v in devnet.validators:
        write_status(v, {"last_height": last, "last_commit": {"height": last, "seal_hash": "ab" * 32}})
    progress = Progress()
    poll(devnet, progress, quiet())
    assert progress.settled == {first, last}
    assert progress.committed[first]["validator-1"] == "?"  # committed, its hash known from the store later


def test_poll_prints_each_dashboard_url_once(devnet):
    for n in devnet.nodes:
        write_status(n, {"listen": n.listen, "api_url": f"http://127.0.0.1:{n.port + 1}"})
    console, buf = recording()
    progress = Progress()
    poll(devnet, progress, console)
    poll(devnet, progress, console)
    text = buf.getvalue()
    v = devnet.validators[0]
    assert text.count(f"dashboard of {v.name}: http://127.0.0.1:{v.port + 1}/") == 1
    assert f"dashboard of {devnet.group_nodes[0].name}" in text
    assert "dashboard of meter-operator" not in text  # light nodes serve the API, not a dashboard
    assert set(progress.api_urls) == {n.name for n in devnet.nodes}


def test_node_process_command_line(devnet, monkeypatch):
    seen = {}

    class FakePopen:
        def __init__(self, args, **kwargs):
            seen.update(args=args, **kwargs)
            self.pid = 1

    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    spec = devnet.validators[0]
    NodeProcess(spec)
    assert seen["args"] == [sys.executable, "-m", "nodes", "node", "run", "--home", str(spec.home)]
    assert seen["start_new_session"] is True and seen["env"]["PYTHONUNBUFFERED"] == "1"
    assert Path(seen["stdout"].name) == spec.home / "node.log"
