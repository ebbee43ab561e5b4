"""Every `stromledger bench` runs at a tiny size and prints JSON with the machine and its results. No timing is
asserted: benchmarks report numbers, they never pass or fail on them."""

from __future__ import annotations

import json
import os

import pytest

from nodes.cli import main

MACHINE_KEYS = {"cpu", "cores", "ram_gib", "python", "pynacl", "libsodium", "load_avg"}


def _bench(capsys, *args: str) -> dict:
    assert main(["bench", *args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert MACHINE_KEYS <= doc["machine"].keys()
    assert doc["bench"] == args[0] and isinstance(doc["targets"], list)
    return doc["results"]


def test_ingest(capsys):
    r = _bench(capsys, "ingest", "--readings", "300", "--batch-size", "100", "--repeat", "1")
    assert [row["workers"] for row in r["rows"]] == list(range(1, (os.cpu_count() or 1) + 1))
    for row in r["rows"]:
        assert row["accepted"] == 300
        assert row["raw_verify_per_s"] > 0 and row["ingest_per_s"] > 0 and row["ratio"] > 0
    assert r["stage_costs_us_per_reading"]["ed25519_verify"] > 0
    assert "parallel_capacity" in r


def test_cascade(capsys, tmp_path):
    r = _bench(capsys, "cascade", "--sizes", "200,400", "--batch-size", "150", "--save", str(tmp_path / "c.json"))
    assert [c["meter_points"] for c in r["curve"]] == [200, 400]
    steady = r["runs"][-1]["steady"]
    assert steady["meter_points"] == 400 and steady["substituted"] + steady["measured"] + steady["missing"] == 400
    assert {"build_s", "validate_s", "commit_s", "persist_s"} <= steady.keys()
    assert steady["export_s"] is not None  # height g exported once g + 1 carries its certificate
    assert steady["export_per_build"] == steady["export_s"] / steady["build_s"]  # issue 11: at most 2 at 1M
    assert r["curve"][-1]["export_per_build"] == steady["export_per_build"]
    assert main(["bench", "plot", str(tmp_path / "c.json"), "--out", str(tmp_path)]) == 0
    png = (tmp_path / "cascade_seconds.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_merkle(capsys):
    r = _bench(capsys, "merkle", "--leaves", "1000", "--proofs", "20", "--repeat", "1")
    assert r["proof_path_len"] == 10 and r["proof_bytes"] == 320
    assert r["root_s"] > 0 and r["raw_sha256_leaves_per_s"] > 0


def test_sim(capsys):
    r = _bench(capsys, "sim", "--validators", "4", "--heights", "3", "--seeds", "1")
    run = r["runs"][0]
    assert run["decisions"] == run["decisions_expected"] == 12 and run["violations"] == 0
    assert r["heights_per_s_best"] > 0


def test_consensus_in_memory_and_p2p(capsys):
    r = _bench(capsys, "consensus", "--memory", "4", "--p2p", "4", "--heights", "1", "--warmup", "0",
               "--period-seconds", "2", "--meters", "20")
    assert [(x["transport"], x["validators"]) for x in r["runs"]] == [("memory", 4), ("p2p", 4)]
    for x in r["runs"]:
        assert x["proposal_to_commit_s"]["n"] == 4 and x["gate_to_all_committed_s"]["median"] is not None
        assert x["readings_per_height"] > 0


def test_devnet_in_process_memory(capsys, tmp_path):
    saved = tmp_path / "d.json"
    r = _bench(capsys, "devnet", "--meters", "", "--inprocess", "300", "--window", "2", "--save", str(saved))
    (m,) = r["inprocess"]
    assert m["meters"] == 300 and len(m["series"]) == 4
    assert m["per_100k"]["registry_mb"] is not None and m["state_bytes"] > 0
    assert main(["bench", "show", str(saved)]) == 0
    assert "settlement memory" in capsys.readouterr().out


def test_refuses_bad_arguments(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "cascade", "--sizes", "ten"])
    assert e.value.code == 2


def test_country(capsys):
    r = _bench(capsys, "country", "--areas", "2,3", "--groups", "3", "--network-validators", "4", "--meters", "300",
               "--area-sizes", "300,1000", "--heights", "1", "--seeds", "1")
    assert [x["areas"] for x in r["rows"]] == [2, 3]
    assert all(x["cells"] == 3 * x["areas"] and x["consensus_median_ms"] > 0 for x in r["rows"])
    assert [x["measured"] for x in r["per_area"]] == [True, False]


def test_attack(capsys):
    r = _bench(capsys, "attack", "--inputs", "200", "--bomb-mib", "1", "--duplicates", "20")
    assert r["fuzz"]["crashes"] == 0 and r["fuzz"]["non_canonical_accepted"] == 0
    assert all(b["verdict"].startswith("refused") for b in r["bombs"]) and r["baseline"]["verdict"] == "ok"
    assert r["duplicates"]["held"] == 1 and r["duplicates"]["listed"] == 1


def test_history(tmp_path):
    # in this process (the command runs each window in two fresh processes: fill, then restart and settle)
    from nodes.bench.history import fill_store, measure

    for window in (4, 5760):  # the default window: a correction at its far end
        directory = tmp_path / str(window)
        directory.mkdir()
        filled = fill_store(300, window, 1, str(directory))
        row = measure(300, window, 1, str(directory), late=5)
        assert filled["bytes_per_settled_reading"] > 0 and row["rss_mb"] > 0
        first = row["series"][0]
        assert first["corrected_version"] == 2 and first["corrected_meter_points"] == 5
        assert first["state_bytes"] < 200 and first["store_reads"]["entry"] >= 5  # the corrections read single meter points
