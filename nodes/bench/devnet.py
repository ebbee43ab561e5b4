"""`bench devnet`: meter points settled per period end to end, and memory per node per 100k meter points.

Two measurements:

processes   the real devnet of `nodes/devnet.py` (every node its own OS process on 127.0.0.1: validators,
            meter-point light nodes feeding simulated readings of every meter point, balancing-group
            nodes), one run per size. From the validators' status files: each commit's milliseconds after
            gate closure; from their stores after the run: per period the meter points settled and how many
            from readings that came in through the light nodes (measured); from /proc/<pid>/status: every
            node's peak resident memory (VmHWM). Memory per 100k meter points is the slope between the
            smallest and the largest size (a node's fixed cost, Python and libp2p, cancels out).
in-process  a validator's settlement memory in a fresh process per size (`nodes.bench.memory`): the
            registry, and the settled state of each period the correction window keeps, at sizes the
            devnet's light nodes cannot feed on this machine (1M).

This module sits above everything it measures: it imports the node layer (nodes/) lazily.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from .timing import median, proc_memory

DOMAIN_WINDOW = 96  # correction_window_periods suggested in docs/domain.md (one day of 15-minute periods)


def _status_commit(status: dict) -> tuple[int, int] | None:
    last = status.get("last_commit")
    if isinstance(last, dict) and isinstance(last.get("height"), int) \
            and isinstance(last.get("ms_after_gate_closure"), int):
        return last["height"], last["ms_after_gate_closure"]
    return None


def run_processes(meters: int, periods: int = 3, period_seconds: int = 10, validators: int = 4, seed: int = 1,
                  workdir: str | None = None, keep: bool = False,
                  progress: Callable[[str], None] = lambda s: None) -> dict:
    from nodes.devnet import DevnetOptions, create_devnet, read_status, start_nodes, stop_nodes
    from stromledger.store import Store

    base = Path(tempfile.mkdtemp(prefix=f"stromledger-bench-devnet-{meters}-", dir=workdir))
    options = DevnetOptions(validators=validators, meters=meters, periods=periods, period_seconds=period_seconds,
                            seed=seed)
    devnet = create_devnet(base / "devnet", options, now=int(time.time()))
    heights = list(devnet.heights)
    progress(f"devnet of {meters} meter points in {base}: {len(devnet.nodes)} node processes, "
             f"{periods} periods of {period_seconds} s")
    procs = start_nodes(devnet)
    memory: dict[str, dict] = {}
    ms_after: dict[tuple[str, int], int] = {}
    outcome = "timeout"
    deadline = devnet.deadline()
    try:
        while time.time() < deadline:
            for p in procs:
                m = proc_memory(p.pid)
                if m:
                    memory[p.spec.name] = {"role": p.spec.role, **m}
            if any(p.exit_code() is not None for p in procs):
                outcome = "died"
                break
            done = True
            for v in devnet.validators:
                status = read_status(v)
                seen = _status_commit(status)
                if seen is not None:
                    ms_after.setdefault((v.name, seen[0]), seen[1])
                done &= (v.name, heights[-1]) in ms_after
            if done:
                outcome = "done"
                break
            time.sleep(0.25)
    finally:
        for p in procs:  # the high-water mark, just before the nodes stop
            m = proc_memory(p.pid)
            if m:
                memory[p.spec.name] = {"role": p.spec.role, **m}
        stop_nodes(procs)
    per_height = []
    for h in heights:
        seals, result = set(), None
        for v in devnet.validators:
            with Store.open_home(v.home) as store:  # the network chain's
                c = store.get_commit(h)
            if c is not None:
                seals.add(bytes(c.value_hash))
        if seals:  # meter points are counted by the area chains (the first validator's)
            result = _area_totals(devnet.validators[0].home, devnet.registry, h)
        ms = sorted(x for (name, hh), x in ms_after.items() if hh == h)
        per_height.append({
            "height": h,
            "committed_by": sum(1 for v in devnet.validators if (v.name, h) in ms_after) if ms else 0,
            "same_seal": len(seals) == 1,
            "meter_points": result["meter_points"] if result else 0,
            "measured": result["measured"] if result else 0,
            "substituted": result["substituted"] if result else 0,
            "ms_after_gate_closure": ms,
        })
    if not keep:
        shutil.rmtree(base, ignore_errors=True)
    roles: dict[str, list[float]] = {}
    for name, m in memory.items():
        roles.setdefault(m["role"], []).append(m.get("VmHWM", 0.0))
    return {
        "meters": meters,
        "validators": validators,
        "periods": periods,
        "period_seconds": period_seconds,
        "outcome": outcome,
        "directory": str(base) if keep else None,
        "per_height": per_height,
        "measured_per_period_median": median([x["measured"] for x in per_height]),
        "ms_after_gate_median": median([x for h in per_height for x in h["ms_after_gate_closure"]]),
        "peak_rss_mb": {role: {"max": max(v), "mean": sum(v) / len(v), "nodes": len(v)} for role, v in roles.items()},
        "nodes": memory,
    }


def run_inprocess(meters: int, window: int = 4, periods: int | None = None,
                  progress: Callable[[str], None] = lambda s: None) -> dict:
    periods = periods if periods is not None else window + 2
    progress(f"in-process validator memory: {meters} meter points, window {window}, {periods} periods")
    out = subprocess.run([sys.executable, "-m", "nodes.bench.memory", str(meters), str(window), str(periods)],
                         capture_output=True, text=True, check=True)
    m = json.loads(out.stdout)
    series = m["series"]
    registry_mb = m["registry_rss_mb"] - m["start_rss_mb"]
    grow = [s for s in series if s["periods_kept"] < window] or series[:2]
    if len(grow) >= 2:
        per_period = (grow[-1]["rss_mb"] - grow[0]["rss_mb"]) / (grow[-1]["periods_kept"] - grow[0]["periods_kept"])
    else:
        per_period = series[0]["rss_mb"] - m["registry_rss_mb"]
    scale = 100_000 / meters
    last = series[-1]
    return {
        **m,
        "registry_mb": registry_mb,
        "per_kept_period_mb": per_period,
        "per_100k": {
            "registry_mb": registry_mb * scale,
            "per_kept_period_mb": per_period * scale,
            "peak_mb": m["peak_mb"] * scale,
            "peak_above_start_mb": (m["peak_mb"] - m["start_rss_mb"]) * scale,
            # EXTRAPOLATED: the state keeps `window` periods; a day's window keeps 96
            "state_at_domain_window_mb": per_period * scale * DOMAIN_WINDOW,
        },
        # the snapshot the validator encodes (on its event loop) and stores after every commit, at the full
        # window, and per kept period (it grows with the window)
        "state_encode_s": last["state_encode_s"],
        "state_encode_s_per_kept_period": last["state_encode_s"] / max(1, last["periods_kept"]),
        "state_bytes": last["state_bytes"],
    }


def run_devnet(meters: tuple[int, ...] = (1_000, 10_000), periods: int = 3, period_seconds: int = 10,
               validators: int = 4, inprocess: tuple[int, ...] = (100_000, 1_000_000), window: int = 4,
               workdir: str | None = None, keep: bool = False,
               progress: Callable[[str], None] = lambda s: None) -> dict:
    runs = [run_processes(n, periods, period_seconds, validators, workdir=workdir, keep=keep, progress=progress)
            for n in meters]
    mem = [run_inprocess(n, window, progress=progress) for n in inprocess]
    slope = {}
    if len(runs) >= 2:
        lo, hi = runs[0], runs[-1]
        for role in hi["peak_rss_mb"]:
            if role in lo["peak_rss_mb"]:
                slope[role] = {k: (hi["peak_rss_mb"][role][k] - lo["peak_rss_mb"][role][k])
                               / (hi["meters"] - lo["meters"]) * 100_000 for k in ("max", "mean")}
    return {"processes": runs, "inprocess": mem, "peak_mb_per_100k_by_role": slope, "window": window,
            "domain_window": DOMAIN_WINDOW}


def _area_totals(home, registry, height: int) -> dict:
    """Meter points, measured and substituted of `height` summed over the area chains' committed seals."""
    from stromledger.cascade import PeriodSeal
    from stromledger.store import Store

    from nodes.chains import chain_store_path

    out = {"meter_points": 0, "measured": 0, "substituted": 0}
    for area in registry.grid_areas:
        with Store(chain_store_path(home / "data", area)) as store:
            c = store.get_commit(height)
        r = PeriodSeal.decode(c.value).result(height) if c is not None else None
        if r is not None:
            for k in out:
                out[k] += getattr(r, k)
    return out

