"""`bench history`: a validator's settled history on disk at N meter points and correction windows of W periods.

Per window W, in a fresh process (`python -m nodes.bench.history N W K`, so no earlier heap counts):
  fill      the store is filled synthetically as a validator that settled up to height h0 would have left
            it, with the periods the run reads: the period rows (with their leaf index) of h0, of the K
            periods a day before the K heights settled (substitution reads them, when the window holds a
            day) and of the K periods at the far end of the window that the run corrects; one seal at h0
            holding the results of those, and the state snapshot at h0. The other periods of the window
            are left out: nothing reads them, and a full two-month window at 100k meter points is about
            90 GB (bytes per settled reading x meter points x W)
  restart   open the store and restore the settled state (`SettledState.decode` over `StoreHistory`): what
            `Validator._restore_ledger` does before a node serves
  commit    K heights h0 + 1 ..: every meter point's reading but a share `skip` (substituted from the day
            before, read from the store), plus `late` corrections (a higher meter version) for the oldest
            period the seal may still correct (h - W); build (`Ledger.propose`), apply (`Ledger.commit`) and
            persist (the commit, the new versions' rows + index, settled batches and the snapshot in one
            transaction: `Validator._persist_commit`)
and it reports the resident set (VmRSS) after the registry, after the restart and after every commit, the
peak (VmHWM), the times, the snapshot's bytes and the bytes on disk per settled reading. Memory must not grow
with W (target: flat within 10 %), nor persistence time.

Signatures are not verified (synthetic.unverified): the history does not depend on them.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
from hashlib import sha512
from pathlib import Path
from typing import Callable

from .timing import median, proc_memory, stopwatch

DAY_PERIODS = 96


def _profile_period(grid, period: int) -> int:
    """The period of the first simulated day whose energies stand in for `period`: the synthetic profiles
    are computed from genesis up to the period asked for, which would grow with the window and be measured
    as the validator's memory."""
    return grid.registry.genesis_period + 1 + period % DAY_PERIODS


def _entries(grid, period: int) -> dict[str, tuple]:
    """The settled entries of a period in which every meter point's reading was measured."""
    from stromledger.cascade.messages import MEASURED

    tag = f"/{period}".encode()
    return {m: (1, MEASURED, imp, exp, 1, False, imp, exp, sha512(m.encode() + tag).digest())
            for m, imp, exp in grid.values(_profile_period(grid, period))}


def fill(store, grid, h0: int, periods: list[int], corrected: list[int]) -> dict:
    """Write the synthetic history (see the module doc); returns what was written."""
    from stromledger.cascade import PeriodSeal, SettledState
    from stromledger.cascade.checks import correctable_from
    from stromledger.cascade.rows import entry_rows, summarize
    from stromledger.crypto import sha256
    from stromledger.export.period_data import encode_period_rows_indexed

    from nodes.history import StoreHistory

    reg = grid.registry
    wanted = sorted(set(periods) | {h0})
    # the last period and the ones the run corrects have their results in the seal at h0 (a correction reads
    # the result it makes the next version of); the commit goes first, the rows refer to it
    with_result = sorted(set(corrected) | {h0})
    results = tuple(summarize(reg, p, 1, entry_rows(reg, p, _entries(grid, p))) for p in with_result)
    seal_bytes = PeriodSeal(reg.chain_id, reg.hash, h0, bytes(32), (), results, (), (), (), b"").encode()
    store.put_commit(h0, 0, seal_bytes, sha256(seal_bytes), b"\x00", 0)
    rows_bytes = 0
    for p in wanted:
        data, index = encode_period_rows_indexed(p, 1, entry_rows(reg, p, _entries(grid, p)))
        rows_bytes += len(data) + len(index)
        with store.transaction(durable=False):
            store.put_period_result(p, 1, h0, data)
            store.put_period_index(p, 1, index)
    state = SettledState.genesis(reg, StoreHistory(store, reg))
    state.height, state.seal_hash = h0, sha256(seal_bytes)
    state.floor = correctable_from(reg, h0 + 1)
    state.start = min(state.floor, h0)
    store.put_state(h0, state.encode())
    return {"periods_filled": len(wanted), "rows_bytes": rows_bytes}


def _plan(meters: int, window: int, commits: int, seed: int):
    from nodes.datagen.synthetic import make_synthetic

    grid = make_synthetic(meters, seed=seed, shared_meter_keys=min(meters, 256), correction_window=window)
    g = grid.registry.genesis_period
    h0 = g + window + DAY_PERIODS + commits + 1  # the window is full, and lies after genesis
    far_ends = [h0 + 1 + k - window for k in range(commits)]
    return grid, h0, far_ends


def fill_store(meters: int, window: int, commits: int, directory: str, seed: int = 1) -> dict:
    """The first process: write the synthetic store (see the module doc)."""
    from stromledger.store import Store

    grid, h0, far_ends = _plan(meters, window, commits, seed)
    with stopwatch() as lap:
        with Store(Path(directory) / "ledger.sqlite3") as store:
            day_before = [h0 + 1 + k - DAY_PERIODS for k in range(commits)]
            filled = fill(store, grid, h0, day_before + far_ends, far_ends)
            with store.db.read() as conn:  # everything into the database file, to count its pages only
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            db_bytes = store.db.size()[0]
    return {**filled, "fill_s": lap.wall, "db_bytes_filled": db_bytes,
            "bytes_per_settled_reading": db_bytes / (filled["periods_filled"] * meters)}


def measure(meters: int, window: int, commits: int, directory: str, skip: float = 0.01, late: int = 100,
            batch_size: int = 10_000, seed: int = 1) -> dict:
    """The second process: a validator restarting on the filled store and settling `commits` heights."""
    from stromledger.cascade import Batch, Ledger, Reading, SettledState
    from stromledger.cascade.checks import NO_SIG
    from stromledger.store import Store
    from nodes.datagen.synthetic import unverified

    from nodes.history import StoreHistory

    from .cascade import _batches

    start_rss = proc_memory()
    grid, h0, _ = _plan(meters, window, commits, seed)
    reg = grid.registry
    _ = reg.hash
    del grid._meter_keys
    gc.collect()
    registry_rss = proc_memory()
    grid.values(_profile_period(grid, h0))  # the data generator's profiles, before the validator's memory
    gc.collect()
    generator_rss = proc_memory()
    with stopwatch() as restart:
        store = Store(Path(directory) / "ledger.sqlite3")
        history = StoreHistory(store, reg)
        state = SettledState.decode(store.latest_state()[1], history, reg)
        ledger = Ledger(reg, state)
    gc.collect()
    after_restart = proc_memory()
    keys = {m: mp.meter_key for m, mp in reg.meter_points.items()}
    series = []
    for _ in range(commits):
        h = ledger.next_height
        checked = _batches(grid, h, batch_size, skip, _profile_period(grid, h))
        oldest = h - window
        fixes = [Reading(m, oldest, 2, False, imp + 1, exp, keys[m], sha512(m.encode() + b"/fix").digest())
                 for m, imp, exp in grid.values(_profile_period(grid, oldest))[:late]]
        if fixes:
            checked.append(unverified(reg, Batch(reg.chain_id, grid.submitter.public, tuple(fixes), (), (), (),
                                                 NO_SIG)))
        for cb in checked:
            ledger.admit(cb, None)
        del checked
        reads = dict(history.reads)
        with stopwatch() as build:
            outcome = ledger.propose()
        with stopwatch() as apply:
            ledger.commit(outcome.seal_bytes)
        with stopwatch() as persist:
            store.put_commit(h, 0, outcome.seal_bytes, outcome.seal_hash, b"\x00", 0)
            with store.transaction():
                written = history.persist()
                snapshot = ledger.state.encode()
                store.put_state(h, snapshot)
            history.saved(written)
        corrected = outcome.seal.result(oldest)
        del outcome
        gc.collect()
        series.append({"height": h, "build_s": build.wall, "apply_s": apply.wall, "persist_s": persist.wall,
                       "corrected_version": corrected.version if corrected else None,
                       "corrected_meter_points": corrected.corrected if corrected else 0,
                       "store_reads": {k: history.reads[k] - reads[k] for k in reads},
                       "state_bytes": len(snapshot), "rss_mb": proc_memory().get("VmRSS")})
    end = proc_memory()
    store.close()
    return {
        "meters": meters, "window": window, "commits": commits, "skip": skip, "late": late,
        "restart_s": restart.wall,
        "start_rss_mb": start_rss.get("VmRSS"), "registry_rss_mb": registry_rss.get("VmRSS"),
        "generator_rss_mb": generator_rss.get("VmRSS"), "restart_rss_mb": after_restart.get("VmRSS"),
        "rss_mb": end.get("VmRSS"), "peak_mb": end.get("VmHWM"),
        "build_s": median([s["build_s"] for s in series]), "apply_s": median([s["apply_s"] for s in series]),
        "persist_s": median([s["persist_s"] for s in series]),
        "series": series,
    }


def _child(*args) -> dict:
    out = subprocess.run([sys.executable, "-m", "nodes.bench.history", *map(str, args)], capture_output=True,
                         text=True, check=False, env=os.environ.copy())
    if out.returncode != 0:
        raise RuntimeError(f"bench history {args[0]} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_history(meters: int = 100_000, windows: tuple[int, ...] = (4, 96, 960, 5760), commits: int = 3,
                skip: float = 0.01, late: int = 100, directory: str | None = None,
                progress: Callable[[str], None] = lambda s: None) -> dict:
    """Per window, one process fills a store and a fresh one restarts on it and settles; the headline is the
    spread of the resident set across windows."""
    rows = []
    for w in windows:
        tmp = tempfile.mkdtemp(prefix="bench-history-", dir=directory)
        try:
            progress(f"history: {meters} meter points, window {w} periods: filling the store")
            filled = _child("fill", meters, w, commits, tmp)
            progress(f"history: {meters} meter points, window {w} periods: restart and {commits} commits")
            rows.append({**filled, **_child("run", meters, w, commits, tmp, skip, late)})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    rss = [r["rss_mb"] for r in rows if r.get("rss_mb")]
    persist = [r["persist_s"] for r in rows]
    spread = (max(rss) - min(rss)) / min(rss) if rss else None
    return {
        "rows": rows,
        "targets": [
            {"name": f"resident memory across windows {', '.join(map(str, windows))} at {meters} meter points, "
                     "(max - min) / min", "target": "<= 0.10", "measured": None if spread is None else round(spread, 3),
             "met": spread is not None and spread <= 0.10},
            {"name": "commit persistence time, largest window / smallest", "target": "<= 1.5 (flat)",
             "measured": round(persist[-1] / persist[0], 2) if persist and persist[0] else None,
             "met": bool(persist and persist[0] and persist[-1] / persist[0] <= 1.5)},
        ],
    }


def main(argv: list[str]) -> int:
    mode, meters, window, commits, directory = argv[0], int(argv[1]), int(argv[2]), int(argv[3]), argv[4]
    if mode == "fill":
        print(json.dumps(fill_store(meters, window, commits, directory)))
    else:
        print(json.dumps(measure(meters, window, commits, directory, float(argv[5]), int(argv[6]))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
