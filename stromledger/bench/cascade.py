"""`bench cascade`: building, validating and committing the PeriodSeal of N meter points.

What is timed, per size N (one reading per meter point, batches of `batch_size`):
  build      `build_seal(registry, state, h, checked_batches)`: what `Ledger.propose` runs on the proposer
  validate   `rebuild_seal(seal_bytes, registry, state, batches)`: what `Ledger.validate` runs on every other
             validator (decode, invariants of the proposed results, full rebuild, byte comparison)
  commit     `SettledState.apply`: what `Ledger.commit` does with the cached outcome
  persist    what `Validator._on_decide` does after the commit: the period's rows (`Ledger.rows`), the settled
             state snapshot (`SettledState.encode`), the stored rows (`encode_period_rows`) and both written to
             a real SQLite store (`put_period_result`, `put_state`, one durable transaction)
Height g (the first, genesis) and g + 1 (steady state: a share `skip` of the meters sent nothing and is
substituted from g) are both built; g + 1 is the headline.

Signatures are NOT part of this benchmark: the validator verifies every signature once, when a batch is
admitted (`check_batch`, see `bench ingest`), and caches the CheckedBatch by digest; `build_seal` and
`rebuild_seal` given CheckedBatches re-verify nothing (given raw Batches they would call check_batch
again). So the readings here carry a fixed placeholder signature and their CheckedBatch is made with
`synthetic.unverified` (every static check, no Ed25519), which saves generating 1M real signatures.
"""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path
from typing import Callable

from stromledger import merkle
from stromledger.cascade import Batch, Reading, SettledState, build_seal, rebuild_seal
from stromledger.cascade.checks import NO_SIG
from stromledger.cascade.rows import check_invariants, entry_rows, leaf_bytes, summarize
from stromledger.cascade.synthetic import key_for, make_synthetic, unverified

from .timing import proc_memory, reset_peak_rss, stopwatch

TARGET_METERS = 1_000_000
TARGET_SECONDS = 10.0
PLACEHOLDER_SIG = bytes(range(64))


def _batches(grid, period: int, batch_size: int, skip: float) -> list:
    reg = grid.registry
    keys = {m: mp.meter_key for m, mp in reg.meter_points.items()}
    readings = [Reading(m, period, 1, False, imp, exp, keys[m], PLACEHOLDER_SIG)
                for m, imp, exp in grid.values(period, skip=skip)]
    chain, submitter = reg.chain_id, grid.submitter.public
    batches = [Batch(chain, submitter, tuple(readings[i:i + batch_size]), (), NO_SIG)
               for i in range(0, len(readings), batch_size)]
    return [unverified(reg, b) for b in batches]


def _mb(before: dict, after: dict, key: str = "VmHWM") -> float | None:
    if key in after and "VmRSS" in before:
        return after[key] - before["VmRSS"]
    return None


def certificate(reg, height: int, seal_hash: bytes, seed: int) -> bytes:
    """A real commit certificate of the synthetic validators (quorum of precommits) for the store."""
    from stromledger.consensus.certificate import build_certificate
    from stromledger.consensus.messages import Precommit, sign_vote
    from stromledger.consensus.validators import ValidatorSet

    keys = [key_for(seed, f"validator-{i + 1}") for i in range(len(reg.validators))]
    vset = ValidatorSet.of([k.public for k in keys])
    votes = [sign_vote(Precommit, k, reg.chain_id, height, 0, seal_hash) for k in keys[:vset.quorum]]
    return build_certificate(height, 0, seal_hash, votes, vset).encode()


def _height(reg, state: SettledState, height: int, checked: list, db_dir: Path, seed: int) -> dict:
    from stromledger.export import encode_period_rows
    from stromledger.store import Store

    by_digest = {c.digest: c for c in checked}
    gc.collect()
    before = proc_memory()
    peak_reset = reset_peak_rss()
    with stopwatch() as build:
        outcome = build_seal(reg, state, height, checked)
    with stopwatch() as validate:
        rebuilt = rebuild_seal(outcome.seal_bytes, reg, state, by_digest)
    if getattr(rebuilt, "seal_bytes", None) != outcome.seal_bytes:
        raise RuntimeError(f"the rebuilt seal differs: {rebuilt}")
    during = proc_memory()
    with stopwatch() as commit:
        state.apply(reg, outcome)
    with stopwatch() as rows_lap:
        rows = {r.period: (r.version, list(state.rows(reg, r.period))) for r in outcome.seal.results}
    with stopwatch() as snap_lap:
        snapshot = state.encode()
    with stopwatch() as rows_enc:
        encoded = {p: encode_period_rows(p, v, rs) for p, (v, rs) in rows.items()}
    cert = certificate(reg, height, outcome.seal_hash, seed)
    store = Store(db_dir / "ledger.sqlite3")
    try:
        with stopwatch() as write:
            store.put_commit(height, 0, outcome.seal_bytes, outcome.seal_hash, cert, 0)
            with store.transaction():
                for p, (v, _) in rows.items():
                    store.put_period_result(p, v, height, encoded[p])
                store.put_state(height, snapshot)
    finally:
        store.close()
    result = outcome.seal.result(height)
    n = result.meter_points
    return {
        "height": height,
        "meter_points": n,
        "measured": result.measured,
        "substituted": result.substituted,
        "missing": result.missing,
        "batches": len(checked),
        "seal_bytes": len(outcome.seal_bytes),
        "build_s": build.wall,
        "validate_s": validate.wall,
        "commit_s": commit.wall,
        "persist": {
            "rows_s": rows_lap.wall,  # on the validator's event loop (nodes/validator.py _on_decide)
            "state_encode_s": snap_lap.wall,  # on the validator's event loop too
            "encode_rows_s": rows_enc.wall,
            "sqlite_write_s": write.wall,
            "state_bytes": len(snapshot),
            "rows_bytes": sum(map(len, encoded.values())),
        },
        "persist_s": rows_lap.wall + snap_lap.wall + rows_enc.wall + write.wall,
        "build_cpu_s": build.cpu,
        "validate_cpu_s": validate.cpu,
        "build_us_per_mp": build.wall * 1e6 / n,
        "validate_us_per_mp": validate.wall * 1e6 / n,
        "rss_before_mb": before.get("VmRSS"),
        "build_validate_peak_extra_mb": _mb(before, during) if peak_reset else None,
    }


def breakdown(reg, state: SettledState, period: int) -> dict:
    """Where a build's time goes, by re-running its parts on the committed entries of `period`: rows from
    entries, leaf encoding, the Merkle root, all totals (summarize = leaves + root + totals), invariants."""
    entries = state.entries[period]
    with stopwatch() as rows_lap:
        rows = list(entry_rows(reg, period, entries))
    with stopwatch() as leaves_lap:
        leaves = [leaf_bytes(period, r) for r in rows]
    with stopwatch() as root_lap:
        merkle.root(leaves)
    with stopwatch() as sum_lap:
        result = summarize(reg, period, 1, rows)
    with stopwatch() as inv_lap:
        check_invariants(reg, result)
    return {"entry_rows_s": rows_lap.wall, "leaf_bytes_s": leaves_lap.wall, "merkle_root_s": root_lap.wall,
            "summarize_s": sum_lap.wall, "check_invariants_s": inv_lap.wall}


def run_size(meters: int, batch_size: int = 10_000, skip: float = 0.01, seed: int = 1,
             progress: Callable[[str], None] = lambda s: None) -> dict:
    setup = {}
    progress(f"{meters} meter points: registry")
    with stopwatch() as lap:
        grid = make_synthetic(meters, seed=seed, shared_meter_keys=min(meters, 256))
        reg = grid.registry
        _ = reg.hash
    setup["registry_s"] = lap.wall
    g = reg.genesis_period
    state = SettledState.genesis(reg)
    heights = []
    with tempfile.TemporaryDirectory(prefix="stromledger-bench-cascade-") as tmp:
        for h in (g, g + 1):
            progress(f"{meters} meter points: readings for height {h}")
            with stopwatch() as lap:
                checked = _batches(grid, h, batch_size, skip)
            setup[f"readings_{h - g}_s"] = lap.wall
            progress(f"{meters} meter points: build, validate, commit height {h}")
            heights.append(_height(reg, state, h, checked, Path(tmp) / f"h{h - g}", seed))
            del checked
        progress(f"{meters} meter points: breakdown")
        parts = breakdown(reg, state, g + 1)
    steady = heights[-1]
    return {"meter_points": meters, "setup": setup, "heights": heights, "steady": steady, "breakdown": parts,
            "rss_after_mb": proc_memory().get("VmRSS")}


def run_cascade(sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000), batch_size: int = 10_000,
                skip: float = 0.01, seed: int = 1, progress: Callable[[str], None] = lambda s: None) -> dict:
    runs = []
    for n in sizes:
        runs.append(run_size(n, batch_size, skip, seed, progress))
        gc.collect()
    base = runs[0]["steady"]
    curve = []
    for r in runs:
        s = r["steady"]
        curve.append({
            "meter_points": r["meter_points"],
            "build_s": s["build_s"], "validate_s": s["validate_s"], "commit_s": s["commit_s"],
            "persist_s": s["persist_s"],
            "build_us_per_mp": s["build_us_per_mp"], "validate_us_per_mp": s["validate_us_per_mp"],
            # near-linear: the cost per meter point stays flat (1.0 = exactly linear from the smallest size)
            "build_linearity": s["build_us_per_mp"] / base["build_us_per_mp"],
            "validate_linearity": s["validate_us_per_mp"] / base["validate_us_per_mp"],
        })
    targets = []
    at_target = [r for r in runs if r["meter_points"] >= TARGET_METERS]
    for r in at_target:
        s = r["steady"]
        worst = max(s["build_s"], s["validate_s"])
        targets.append({"name": f"build or validate a seal of {r['meter_points']:,} meter points, one core",
                        "target": f"<= {TARGET_SECONDS:g} s", "measured": round(worst, 2),
                        "met": worst <= TARGET_SECONDS})
    if not at_target:  # extrapolate linearly from the largest size, and say so
        s = runs[-1]["steady"]
        est = max(s["build_us_per_mp"], s["validate_us_per_mp"]) * TARGET_METERS / 1e6
        targets.append({"name": f"build or validate 1,000,000 meter points (EXTRAPOLATED from "
                                f"{runs[-1]['meter_points']:,})", "target": f"<= {TARGET_SECONDS:g} s",
                        "measured": round(est, 2), "met": est <= TARGET_SECONDS})
    return {"sizes": list(sizes), "batch_size": batch_size, "skip": skip, "runs": runs, "curve": curve,
            "targets": targets}
