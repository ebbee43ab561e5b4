"""`stromledger init` and `stromledger status`: node homes for every role, the key checks, the config round
trip, and status on a home without a running node, with a fabricated status.json and with a real seal in
its store (read through the Store, and read-only while a "node" holds the store's lock)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nodes.cli import main
from nodes.home import load_config, parse_peer
from nodes.setup import InitError, copy_genesis, home_status, init_home, node_liveness
from stromledger.cascade import Ledger, make_batch, sign_reading
from nodes.datagen.devnet_genesis import devnet_key, make_devnet_genesis, meter_label
from stromledger.cascade.messages import PeriodSeal
from stromledger.consensus import Precommit, ValidatorSet, build_certificate, sign_vote
from stromledger.keys import read_key_file, write_key_file
from stromledger.registry import load_genesis
from stromledger.store import Store

CHAIN = "devnet-test-init"
START = 1_800_000_000  # a 10 s period boundary


@pytest.fixture(scope="module")
def genesis(tmp_path_factory):
    directory = tmp_path_factory.mktemp("genesis")
    return make_devnet_genesis(directory, 4, 2, 24, 10, 7, genesis_start=START, chain_id=CHAIN)


@pytest.fixture(scope="module")
def registry(genesis):
    return load_genesis(genesis)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Key files (mode 0600) of devnet labels."""
    directory = tmp_path_factory.mktemp("keys")
    out = {}
    for label in ("validator-1", "validator-4", "meter-operator-2", "bg-operator-1", "bg-operator-2", "outsider"):
        path = directory / f"{label}.key"
        write_key_file(path, devnet_key(label))
        out[label] = path
    return out


def peer(label: str, port: int):
    return parse_peer(f"{devnet_key(label).public.hex()}@/ip4/127.0.0.1/tcp/{port}")


def mode(path) -> int:
    return path.stat().st_mode & 0o777


# -- init -----------------------------------------------------------------------------------------------------


def test_init_validator_home(tmp_path, genesis, registry, keys):
    home = tmp_path / "val"
    peers = [peer(f"validator-{i}", 41000 + i) for i in range(1, 5)]
    result = init_home(home, "validator", genesis, key_file=keys["validator-4"], peers=peers,
                       listen="/ip4/0.0.0.0/tcp/7411")
    assert result.key_origin == "copied" and result.public_key == devnet_key("validator-4").public
    config = load_config(home)
    assert (config.role, config.name, config.listen) == ("validator", "validator-4", "/ip4/0.0.0.0/tcp/7411")
    assert [p.key for p in config.peers] == [p.key for p in peers]
    assert mode(config.key_path) == 0o600
    assert read_key_file(config.key_path).public == devnet_key("validator-4").public
    assert load_genesis(config.genesis_path).hash == registry.hash  # the genesis and its CSV were copied
    assert (home / "devnet-meter-points.csv").is_file() and config.data_dir.is_dir()
    assert config.to_toml() == result.config.to_toml()  # round trip


def test_init_meter_point_and_balancing_group_homes(tmp_path, genesis, registry, keys):
    mp = init_home(tmp_path / "mp", "meter-point", genesis, key_file=keys["meter-operator-2"], feed="simulated",
                   seed=3, peers=[peer("validator-1", 41001)])
    assert load_config(tmp_path / "mp").meter_point == {"feed": "simulated", "seed": 3}
    assert mp.config.name == "SmartMeter Service GmbH"  # the operator's name in the genesis
    assert any("devnet only" in w for w in mp.warnings)

    bg = init_home(tmp_path / "bg", "balancing-group", genesis, key_file=keys["bg-operator-2"])
    own = [g.eic for g in registry.balancing_groups.values() if g.operator_key == devnet_key("bg-operator-2").public]
    assert load_config(tmp_path / "bg").balancing_group == {"groups": own, "schedules": "none"}
    assert any("no --peer" in w for w in bg.warnings)


def test_init_with_a_given_key_and_the_default_feed(tmp_path, genesis):
    result = init_home(tmp_path / "mp", "meter-point", genesis, key=devnet_key("meter-operator-1"))
    assert result.key_origin == "given"
    assert result.config.meter_point == {"feed": "inbox"}  # never made-up readings unless asked
    assert mode(result.config.key_path) == 0o600


def test_a_copied_key_is_0600_even_when_the_source_is_not(tmp_path, genesis):
    loose = tmp_path / "loose.key"
    write_key_file(loose, devnet_key("validator-1"))
    os.chmod(loose, 0o644)
    result = init_home(tmp_path / "val", "validator", genesis, key_file=loose)
    assert mode(result.config.key_path) == 0o600
    read_key_file(result.config.key_path)  # the node can open it


@pytest.mark.parametrize("role,label,hint", [
    ("validator", "outsider", ""),
    ("validator", "meter-operator-2", "meter-point"),
    ("meter-point", "validator-1", "validator"),
    ("balancing-group", "validator-1", "validator"),
])
def test_an_unregistered_key_is_refused_and_nothing_is_written(tmp_path, genesis, keys, role, label, hint):
    home = tmp_path / "home"
    with pytest.raises(InitError) as e:
        init_home(home, role, genesis, key_file=keys[label])
    assert f"not registered as a {role}" in str(e.value) and devnet_key(label).public.hex() in str(e.value)
    assert hint in str(e.value)
    assert not home.exists()


def test_groups_of_another_operator_are_refused(tmp_path, genesis, registry, keys):
    foreign = next(g.eic for g in registry.balancing_groups.values()
                   if g.operator_key == devnet_key("bg-operator-2").public)
    with pytest.raises(InitError, match="is operated by key"):
        init_home(tmp_path / "bg", "balancing-group", genesis, key_file=keys["bg-operator-1"], groups=[foreign])
    with pytest.raises(InitError, match="not a balancing group"):
        init_home(tmp_path / "bg", "balancing-group", genesis, key_file=keys["bg-operator-1"],
                  groups=["11YNOSUCHGROUP-X"])


def test_bad_settings_are_refused(tmp_path, genesis, keys):
    home = tmp_path / "val"
    with pytest.raises(InitError, match="not a TCP multiaddr"):
        init_home(home, "validator", genesis, key_file=keys["validator-1"], listen="0.0.0.0:7411")
    with pytest.raises(InitError, match="not a validator"):
        init_home(home, "validator", genesis, key_file=keys["validator-1"], peers=[peer("outsider", 1)])
    with pytest.raises(InitError, match="--feed is a meter-point option"):
        init_home(home, "validator", genesis, key_file=keys["validator-1"], feed="inbox")
    with pytest.raises(InitError, match="--feed must be"):
        init_home(home, "meter-point", genesis, key_file=keys["meter-operator-2"], feed="carrier-pigeon")
    with pytest.raises(InitError, match="not a usable genesis"):
        init_home(home, "validator", genesis.parent / "missing.toml", key_file=keys["validator-1"])
    assert not home.exists()


def test_an_existing_home_is_never_overwritten(tmp_path, genesis, keys):
    home = tmp_path / "val"
    init_home(home, "validator", genesis, key_file=keys["validator-1"])
    before = (home / "config.toml").read_text()
    with pytest.raises(InitError, match="already a node home"):
        init_home(home, "validator", genesis, key_file=keys["validator-4"])
    assert (home / "config.toml").read_text() == before


def test_a_generated_key_is_kept_until_the_genesis_lists_it(tmp_path, genesis, registry):
    home = tmp_path / "new-validator"
    with pytest.raises(InitError, match="new key was generated"):
        init_home(home, "validator", genesis)
    key_path = home / "node.key"
    assert mode(key_path) == 0o600 and not (home / "config.toml").exists()
    new_key = read_key_file(key_path)

    # the genesis maintainer adds the key (here: replacing validator-4), the operator runs init again
    from stromledger.registry import Registry, Validator, write_genesis

    vals = [Validator(v.name, new_key.public if v.name == "validator-4" else v.public_key, v.grid_area)
            for v in registry.validators]
    updated = write_genesis(Registry(registry.params, vals, registry.grid_areas.values(),
                                     registry.balancing_groups.values(), registry.meter_operators.values(),
                                     registry.meter_points.values(), registry.assignments), tmp_path / "g2")
    result = init_home(home, "validator", updated)
    assert result.key_origin == "existing" and result.public_key == new_key.public
    assert result.config.name == "validator-4"


def test_a_meter_point_file_outside_the_genesis_directory_is_copied_beside_it(tmp_path, genesis, registry, keys):
    elsewhere = tmp_path / "chain" / "genesis.toml"
    elsewhere.parent.mkdir()
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "points.csv").write_bytes((genesis.parent / "devnet-meter-points.csv").read_bytes())
    elsewhere.write_text(genesis.read_text().replace('path = "devnet-meter-points.csv"', 'path = "../csv/points.csv"'))
    assert load_genesis(elsewhere).hash == registry.hash
    home = tmp_path / "home"
    home.mkdir()
    copy = copy_genesis(elsewhere, home)
    assert 'path = "points.csv"' in copy.read_text() and load_genesis(copy).hash == registry.hash


def test_init_command(tmp_path, genesis, keys, capsys):
    home = tmp_path / "bg"
    code = main(["init", "--role", "balancing-group", "--home", str(home), "--genesis", str(genesis), "--key",
                 str(keys["bg-operator-1"]), "--schedules", "simulated", "--peer",
                 f"{devnet_key('validator-1').public.hex()}@/ip4/127.0.0.1/tcp/41001"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert f"created balancing-group home {home}" in out.out and "stromledger node run --home" in out.out
    assert load_config(home).balancing_group["schedules"] == "simulated"

    code = main(["init", "--role", "validator", "--home", str(tmp_path / "v"), "--genesis", str(genesis), "--key",
                 str(keys["outsider"])])
    assert code == 1 and "init refused" in capsys.readouterr().err
    assert main(["init", "--role", "validator", "--home", str(tmp_path / "v"), "--genesis", str(genesis),
                 "--peer", "nonsense"]) == 2


# -- status -----------------------------------------------------------------------------------------------------


@pytest.fixture
def validator_home(tmp_path, genesis, keys):
    return init_home(tmp_path / "val", "validator", genesis, key_file=keys["validator-1"]).config


def test_status_of_a_node_that_never_ran(validator_home, capsys):
    doc = home_status(validator_home.home, now=START)
    assert doc["node"] == {"state": "never started", "running": False}
    assert doc["ledger"] is None and doc["chain_id"] == CHAIN
    assert not (validator_home.home / "data" / "ledger.sqlite3").exists()  # status created nothing
    assert main(["status", "--home", str(validator_home.home)]) == 1
    out = capsys.readouterr().out
    assert "never started" in out and "no database yet" in out


def test_status_of_something_that_is_not_a_home(tmp_path, capsys):
    assert main(["status", "--home", str(tmp_path)]) == 2
    assert "not a node home" in capsys.readouterr().err


def write_status(config, **fields):
    doc = {"role": config.role, "name": config.name, "pid": os.getpid(), "updated_at": START, "rejections": {},
           **fields}
    config.status_path.write_text(json.dumps(doc))


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_liveness_from_status_json():
    assert node_liveness({"pid": os.getpid(), "updated_at": START}, START + 5)["state"] == "running"
    assert node_liveness({"pid": os.getpid(), "updated_at": START}, START + 600)["state"] == "stale"
    assert node_liveness({"pid": dead_pid(), "updated_at": START}, START + 5)["state"] == "stopped"
    assert node_liveness({"pid": "x"}, START)["state"] == "stopped"


def test_status_with_a_fabricated_status_file(validator_home, registry, capsys):
    v2 = registry.validators[1].public_key.hex()
    write_status(validator_home, listen="/ip4/127.0.0.1/tcp/41001", height=START // 10 + 3, round=1, step=2,
                 period="2026-...", commits=2, last_height=START // 10 + 2, peer_keys=[v2, "ab" * 32], peers=1,
                 evidence=0, batches={"received": 5, "pending": 1},
                 last_commit={"height": START // 10 + 2, "period": "p", "seal_hash": "cd" * 32, "round": 0,
                              "ms_after_gate_closure": 120},
                 rejections={"bad_signature": 2}, custom_counter={"a": 1})
    doc = home_status(validator_home.home, now=START + 3)
    assert doc["node"]["state"] == "running" and doc["node"]["age_s"] == 3
    assert doc["peer_names"] == ["validator-2", f"{'ab' * 8} (unknown)"]
    assert main(["status", "--home", str(validator_home.home)]) in (0, 1)  # its wall clock decides freshness
    out = capsys.readouterr().out
    for text in ("validator-2", "bad_signature: 2", "120 ms after gate closure", "custom_counter", "a 1",
                 "1 waiting for a seal"):
        assert text in out


def make_chain(registry, heights: int = 2):
    """Real commits: meter readings in batches from a meter operator, seals built by the cascade,
    certificates from 3 of the 4 devnet validators."""
    ledger = Ledger(registry)
    vset = ValidatorSet(registry.validator_keys())
    operators = {o.name: devnet_key(f"meter-operator-{i + 1}") for i, o in enumerate(registry.meter_operators.values())}
    commits = []
    for h in range(registry.genesis_period, registry.genesis_period + heights):
        for name, op in operators.items():
            readings = []
            for m in registry.malo_order:
                mp = registry.meter_points[m]
                if mp.meter_operator == name:
                    wh = registry.max_wh(m) // 7 + h % 5
                    readings.append(sign_reading(devnet_key(meter_label(m)), registry.chain_id, m, h,
                                                 wh if mp.kind != "producer" else 0, wh if mp.kind != "consumer" else 0))
            assert ledger.admit(make_batch(op, registry.chain_id, readings), None).refused is None
        outcome = ledger.propose()
        ledger.commit(outcome.seal_bytes)
        votes = [sign_vote(Precommit, devnet_key(f"validator-{i}"), registry.chain_id, h, 0, outcome.seal_hash)
                 for i in (1, 2, 3)]
        cert = build_certificate(h, 0, outcome.seal_hash, votes, vset)
        commits.append((h, outcome.seal_bytes, outcome.seal_hash, cert.encode()))
    return commits


def fill(home, commits):
    with Store.open_home(home) as store:
        for h, seal, seal_hash, cert in commits:
            store.put_commit(h, 0, seal, seal_hash, cert, START + 60)
        store.put_evidence("duplicate_vote", commits[-1][0], b"evidence bytes", START + 61)


def test_status_reads_the_last_seal_from_the_store(validator_home, registry, capsys):
    commits = make_chain(registry)
    fill(validator_home.home, commits)
    h, seal_bytes, seal_hash, _ = commits[-1]
    seal = PeriodSeal.decode(seal_bytes)
    doc = home_status(validator_home.home, now=START)
    ledger = doc["ledger"]
    assert ledger["access"] == "store" and ledger["stats"]["commits"] == 2
    last = ledger["latest_commit"]
    assert (last["height"], last["seal_hash"], last["certificate"], last["signatures"]) == (h, seal_hash.hex(),
                                                                                           "valid", 3)
    own = last["results"][-1]
    assert own["period"] == h and own["measured"] == len(registry.meter_points)
    result = seal.result(h)
    assert {g["group"]: (g["inj"], g["wd"], g["fpi"], g["fpe"], g["imb"]) for g in own["groups"]} == {
        g.group: (g.inj, g.wd, g.fpi, g.fpe, g.imb) for g in result.groups}
    assert {a["area"]: a["loss"] for a in own["areas"]} == {a.area: a.loss for a in result.areas}
    assert own["net_export"] == result.net_export and sum(own["mix"].values()) > 0
    assert [e["kind"] for e in ledger["evidence"]] == ["duplicate_vote"]

    assert main(["status", "--home", str(validator_home.home), "--json"]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed["ledger"]["latest_commit"]["seal_hash"] == seal_hash.hex()
    assert main(["status", "--home", str(validator_home.home)]) == 1
    out = capsys.readouterr().out
    for text in (seal_hash.hex(), "certificate valid", "balancing groups", "grid areas", "generation mix",
                 "duplicate_vote", f"{result.groups[0].inj:,}"):
        assert text in out


def test_status_reads_read_only_while_the_node_holds_the_store(validator_home, registry):
    fill(validator_home.home, make_chain(registry, 1))
    with Store.open_home(validator_home.home) as running_node:  # holds the process lock, as a node does
        doc = home_status(validator_home.home, now=START)
        assert doc["ledger"]["access"].startswith("read-only")
        assert doc["ledger"]["latest_commit"]["certificate"] == "valid"
        assert doc["ledger"]["stats"]["commits"] == 1
        running_node.put_commit(10**9, 0, b"x", bytes(32), b"", 0)  # the node keeps writing meanwhile


def test_status_reports_a_forged_certificate(validator_home, registry):
    h, seal, seal_hash, _ = make_chain(registry, 1)[0]
    vset = ValidatorSet(registry.validator_keys())
    votes = [sign_vote(Precommit, devnet_key("validator-1"), registry.chain_id, h, 0, seal_hash)]
    cert = build_certificate(h, 0, seal_hash, votes, vset)  # one signature of four: not more than 2/3
    with Store.open_home(validator_home.home) as store:
        store.put_commit(h, 0, seal, seal_hash, cert.encode(), START)
    last = home_status(validator_home.home, now=START)["ledger"]["latest_commit"]
    assert last["certificate"].startswith("INVALID") and "insufficient" in last["certificate"]


def meter_file_named_node_key(genesis, directory):
    """The same chain, its meter-point file renamed node.key."""
    hostile = directory / "genesis.toml"
    directory.mkdir()
    (directory / "node.key").write_bytes((genesis.parent / "devnet-meter-points.csv").read_bytes())
    hostile.write_text(genesis.read_text().replace('path = "devnet-meter-points.csv"', 'path = "node.key"'))
    return hostile


def test_init_never_writes_over_a_file_in_the_home(tmp_path, genesis, keys):
    # a genesis whose meter-point file is named node.key would have replaced the node's registered key
    hostile = meter_file_named_node_key(genesis, tmp_path / "g")
    home = tmp_path / "val"
    home.mkdir()
    (home / "node.key").write_bytes(keys["validator-1"].read_bytes())
    os.chmod(home / "node.key", 0o600)
    before = (home / "node.key").read_bytes()
    with pytest.raises(InitError, match="would overwrite"):
        init_home(home, "validator", hostile)
    assert (home / "node.key").read_bytes() == before and not (home / "config.toml").exists()
    code = main(["init", "--role", "validator", "--home", str(tmp_path / "v2"), "--genesis", str(hostile),
                 "--key", str(keys["validator-1"])])
    assert code == 1 and not (tmp_path / "v2").exists()


def test_genesis_adopt_never_writes_over_the_node_key(tmp_path, genesis, keys):
    from nodes.setup import adopt_genesis
    home = init_home(tmp_path / "val", "validator", genesis, key_file=keys["validator-1"]).config.home
    before = (home / "node.key").read_bytes()
    with pytest.raises(InitError, match="would overwrite"):
        adopt_genesis(home, meter_file_named_node_key(genesis, tmp_path / "g"), "x")
    assert (home / "node.key").read_bytes() == before and not (home / "data.x").exists()


@pytest.mark.parametrize("content", ["[1]", "null", '{"public_key": 5}', '{"public_key": "00"}', "\xff\xfe",
                                     '{"format": "stromledger-ed25519-v1", "type": "ed25519", "public_key": "'
                                     + "00" * 32 + '", "seed": "zz"}'])
def test_malformed_key_files_are_one_line_errors(tmp_path, genesis, capsys, content):
    path = tmp_path / "bad.key"
    path.write_bytes(content.encode("latin-1"))
    os.chmod(path, 0o600)
    for code, args in ((2, ["keys", "show", str(path)]), (2, ["keys", "show", "--check", str(path)]),
                       (1, ["init", "--role", "validator", "--home", str(tmp_path / "h"), "--genesis", str(genesis),
                            "--key", str(path)])):
        assert main(args) == code
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and "bad.key" in err, err


def test_init_with_a_key_readable_by_others_says_so(tmp_path, genesis, capsys):
    loose = tmp_path / "loose.key"
    write_key_file(loose, devnet_key("validator-1"))
    os.chmod(loose, 0o644)
    assert main(["init", "--role", "validator", "--home", str(tmp_path / "v"), "--genesis", str(genesis),
                 "--key", str(loose)]) == 0
    err = capsys.readouterr().err
    assert "readable by others (mode 644)" in err and err.count("\n") == 2  # and the no --peer warning
