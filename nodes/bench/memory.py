"""A validator's settlement memory, measured in a fresh process (`python -m nodes.bench.memory N W P`).

One process per size, so nothing left on the heap by an earlier measurement counts. It builds a registry of
N meter points with a correction window of W periods, then settles P consecutive periods the way a
validator's ledger does (admit each period's batches, propose, commit), and prints JSON: the resident set
after start-up, after the registry, after each commit (batches of committed periods are forgotten by then),
and the peak. The settled state keeps W + 1 periods of entries (every meter point, every period a later
seal may still correct), so the RSS grows for W + 1 commits and then stays flat.

Signatures are not verified (synthetic.unverified): memory does not depend on it.
"""

from __future__ import annotations

import gc
import json
import sys

from .timing import proc_memory, stopwatch


def measure(meters: int, window: int, periods: int, batch_size: int = 10_000, seed: int = 1) -> dict:
    from stromledger.cascade import Ledger

    from .cascade import _batches
    from nodes.datagen.synthetic import make_synthetic

    start = proc_memory()
    with stopwatch() as lap:
        grid = make_synthetic(meters, seed=seed, shared_meter_keys=min(meters, 256), correction_window=window)
        reg = grid.registry
        _ = reg.hash
    del grid._meter_keys
    gc.collect()
    after_registry = proc_memory()
    ledger = Ledger(reg)
    series = []
    for i in range(periods):
        h = ledger.next_height
        checked = _batches(grid, h, batch_size, 0.01)
        for cb in checked:
            ledger.admit(cb, h + 1)
        del checked
        outcome = ledger.propose()
        ledger.commit(outcome.seal_bytes)
        del outcome
        gc.collect()
        m = proc_memory()
        with stopwatch() as enc:  # the snapshot a validator writes after every commit
            size = len(ledger.state.encode())
        series.append({"commit": i + 1, "periods_kept": len(ledger.state.entries), "rss_mb": m.get("VmRSS"),
                       "peak_mb": m.get("VmHWM"), "state_encode_s": enc.wall, "state_bytes": size})
    return {"meters": meters, "window": window, "periods": periods, "registry_s": lap.wall,
            "start_rss_mb": start.get("VmRSS"), "registry_rss_mb": after_registry.get("VmRSS"),
            "series": series, "peak_mb": proc_memory().get("VmHWM")}


def main(argv: list[str]) -> int:
    meters, window, periods = (int(x) for x in argv[:3])
    print(json.dumps(measure(meters, window, periods)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
