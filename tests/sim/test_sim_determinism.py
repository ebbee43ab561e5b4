"""Same seed, same run: the trace hash (over every event in processing order) proves it, also across
processes with different hash seeds. And the pure layers stay pure."""

import ast
import os
import subprocess
import sys
from pathlib import Path

from stromledger.sim import SimConfig, simulate

ROOT = Path(__file__).resolve().parents[2]
CONFIG = SimConfig(seed=11, validators=4, byzantine=1, faults="all")


def test_same_seed_same_trace():
    a, b = simulate(CONFIG), simulate(CONFIG)
    assert a.trace_hash == b.trace_hash
    assert [(d.node, d.height, d.value_hash, d.time) for d in a.decisions] == \
        [(d.node, d.height, d.value_hash, d.time) for d in b.decisions]
    assert (a.messages, a.dropped, a.events) == (b.messages, b.dropped, b.events)


def test_different_seeds_differ():
    hashes = {simulate(SimConfig(seed=s, validators=4, faults="drop")).trace_hash for s in range(4)}
    assert len(hashes) == 4


def test_same_trace_in_other_processes_whatever_their_hash_seed():
    code = ("from stromledger.sim import SimConfig, simulate; "
            "print(simulate(SimConfig(seed=11, validators=4, byzantine=1, faults='all')).trace_hash)")
    here = simulate(CONFIG).trace_hash
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == here


FORBIDDEN = {"trio", "libp2p", "sqlite3", "threading", "asyncio", "socket", "time", "datetime", "multiprocessing"}


def test_consensus_and_sim_import_no_io_and_read_no_clock():
    for package in ("consensus", "sim", "chains"):
        for path in sorted((ROOT / "stromledger" / package).glob("*.py")):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                for name in names:
                    assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                        and node.value.id == "random":
                    assert node.attr == "Random", f"{path.name} uses the unseeded random.{node.attr}"


def test_importing_the_simulator_loads_no_io_modules():
    code = ("import sys, stromledger.sim, stromledger.consensus; "
            "print(sorted(m for m in ('trio', 'libp2p', 'sqlite3', 'threading') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
