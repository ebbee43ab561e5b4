"""`bench cascade`: building, validating and committing the PeriodSeal of N meter points.

What is timed, per size N (one reading per meter point, batches of `batch_size`):
  build      `build_seal(registry, state, h, checked_batches)`: what `Ledger.propose` runs on the proposer
  validate   `rebuild_seal(seal_bytes, registry, state, batches)`: what `Ledger.validate` runs on every other
             validator (decode, invariants of the proposed results, full rebuild, byte comparison)
  commit     `SettledState.apply`: what `Ledger.commit` does with the cached outcome
  persist    what `Validator._on_decide` does after the commit: the period's rows (`Ledger.rows`), the settled
             state snapshot (`SettledState.encode`), the stored rows (`encode_period_rows`) and both written to
             a real SQLite store (`put_commit`, then `put_period_result` and `put_state` in one durable
             transaction)
  export     then (at h > g, unless export=False) `export_committed` of height h - 1: the billing export files
             of the height before (final once this seal carries its commit certificate, as the validator
             exports h - 1 when h commits)
Heights g (the first, genesis), g + 1 and g + 2 (steady state: a share `skip` of the meters sent nothing
and is substituted from the period before) are built; g + 2 is the headline. The export of g (at g + 1) is
the registry's first and is reported apart; the export of g + 1 (at g + 2) is the steady state.

Signatures are NOT part of this benchmark: the validator verifies every signature once, when a batch is
admitted (`check_batch`, see `bench ingest`), and caches the CheckedBatch by digest; `build_seal` and
`rebuild_seal` given CheckedBatches re-verify nothing (given raw Batches they would call check_batch
again). So the readings here carry a placeholder signature (64 bytes, not Ed25519) and their CheckedBatch
is made with `synthetic.unverified` (every static check, no Ed25519): no 1M real signatures to generate.
"""

from __future__ import annotations

import gc
import tempfile
from hashlib import sha512
from pathlib import Path
from typing import Callable

from stromledger import merkle
from stromledger.cascade import Batch, Reading, SettledState, build_seal, rebuild_seal
from stromledger.cascade.checks import NO_SIG
from stromledger.cascade.rows import check_invariants, entry_rows, leaf_bytes, summarize
from nodes.datagen.synthetic import key_for, make_synthetic, unverified
from nodes.gc_policy import settled_collector

from .timing import proc_memory, reset_peak_rss, stopwatch, timed

TARGET_METERS = 1_000_000
TARGET_SECONDS = 10.0
EXPORT_PER_BUILD = 2.0  # issue 11: the period-close export in at most twice the seal build time


def _batches(grid, period: int, batch_size: int, skip: float, profile_period: int | None = None) -> list:
    """Each period's readings as CheckedBatches. Every reading gets its own 64-byte placeholder signature
    (a hash, not an Ed25519 signature), so the settled state holds one signature object per entry, as it
    does with real readings. `profile_period`: take the energies of that period instead (bench history)."""
    reg = grid.registry
    keys = {m: mp.meter_key for m, mp in reg.meter_points.items()}
    tag = f"/{period}".encode()
    values = grid.values(period if profile_period is None else profile_period, skip=skip)
    readings = [Reading(m, period, 1, False, imp, exp, keys[m], sha512(m.encode() + tag).digest())
                for m, imp, exp in values]
    chain, submitter = reg.chain_id, grid.submitter.public
    batches = [Batch(chain, submitter, tuple(readings[i:i + batch_size]), (), (), (), NO_SIG)
               for i in range(0, len(readings), batch_size)]
    return [unverified(reg, b) for b in batches]


def _mb(before: dict, after: dict, key: str = "VmHWM") -> float | None:
    if key in after and "VmRSS" in before:
        return after[key] - before["VmRSS"]
    return None


def certificate(reg, height: int, seal_hash: bytes, seed: int) -> bytes:
    """A real commit certificate of the synthetic validators (quorum of precommits), canonical bytes."""
    from stromledger.consensus.certificate import build_certificate
    from stromledger.consensus.messages import Precommit, sign_vote
    from stromledger.consensus.validators import ValidatorSet

    keys = [key_for(seed, f"validator-{i + 1}") for i in range(len(reg.validators))]
    vset = ValidatorSet.of([k.public for k in keys])
    votes = [sign_vote(Precommit, k, reg.chain_id, height, 0, seal_hash) for k in keys[:vset.quorum]]
    return build_certificate(height, 0, seal_hash, votes, vset).encode()


def _certificate_ok(reg, height: int):
    """What a validator checks of a proposed seal's last_commit: a valid certificate of height - 1."""
    from stromledger.consensus.certificate import CertificateError, verify_certificate
    from stromledger.consensus.messages import CommitCertificate

    def ok(data: bytes) -> bool:
        try:
            cert = CommitCertificate.decode(data)
            verify_certificate(cert, cert.value_hash, reg.validator_keys(), reg.chain_id, height - 1)
            return True
        except (ValueError, CertificateError):
            return False

    return ok


def _height(reg, state: SettledState, height: int, checked: list, store, last_commit: bytes, seed: int,
            export_dir: Path | None = None) -> tuple[dict, bytes]:
    """Build, validate, commit and persist one height; export height - 1 (final now: this seal carries its
    certificate) when `export_dir` is given. Returns the measurements and this height's certificate."""
    from stromledger.export import encode_period_rows, export_committed
    from nodes.export_drain import drain_in_thread

    by_digest = {c.digest: c for c in checked}
    gc.collect()
    before = proc_memory()
    peak_reset = reset_peak_rss()
    with stopwatch() as build:
        outcome = build_seal(reg, state, height, checked, (), last_commit)
    with stopwatch() as validate:
        rebuilt = rebuild_seal(outcome.seal_bytes, reg, state, by_digest, None,
                               _certificate_ok(reg, height) if last_commit else None)
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
    with stopwatch() as write:
        store.put_commit(height, 0, outcome.seal_bytes, outcome.seal_hash, cert, 0)
        with store.transaction():
            for p, (v, _) in rows.items():
                store.put_period_result(p, v, height, encoded[p])
            store.put_state(height, snapshot)
    export_s = export_cpu_s = None
    if export_dir is not None:  # what the validator then does with write_exports on (Validator._on_decide)
        with stopwatch() as export_lap:
            export_committed(store, reg, height - 1, export_dir, drain_in_thread, state.changes)
        export_s, export_cpu_s = export_lap.wall, export_lap.cpu
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
            "periods_kept": len(state.entries),  # the snapshot holds every kept period
            "rows_bytes": sum(map(len, encoded.values())),
        },
        "persist_s": rows_lap.wall + snap_lap.wall + rows_enc.wall + write.wall,
        "export_s": export_s,  # billing export files (CSV, JSONL, MSCONS, manifest) of height - 1
        "export_cpu_s": export_cpu_s,
        # issue 11: the export at most twice the seal build, measured in the same run (wall and CPU)
        "export_per_build": None if export_s is None else export_s / build.wall,
        "export_cpu_per_build_cpu": None if export_cpu_s is None else export_cpu_s / build.cpu,
        "build_cpu_s": build.cpu,
        "validate_cpu_s": validate.cpu,
        "build_us_per_mp": build.wall * 1e6 / n,
        "validate_us_per_mp": validate.wall * 1e6 / n,
        "rss_before_mb": before.get("VmRSS"),
        "build_validate_peak_extra_mb": _mb(before, during) if peak_reset else None,
    }, cert


def breakdown(reg, state: SettledState, period: int, repeat: int = 2) -> dict:
    """Where a build's time goes, by re-running its parts on the committed entries of `period` (best of
    `repeat`): rows from entries, leaf encoding, the Merkle root, all totals (summarize = leaves + root +
    totals), invariants."""
    entries = state.entries[period]
    rows = list(entry_rows(reg, period, entries))
    leaves = [leaf_bytes(period, r) for r in rows]
    result = summarize(reg, period, 1, rows)
    parts = {
        "entry_rows_s": lambda: list(entry_rows(reg, period, entries)),
        "leaf_bytes_s": lambda: [leaf_bytes(period, r) for r in rows],
        "merkle_root_s": lambda: merkle.root(leaves),
        "summarize_s": lambda: summarize(reg, period, 1, rows),
        "check_invariants_s": lambda: check_invariants(reg, result),
    }
    return {name: timed(fn, repeat)[0].wall for name, fn in parts.items()}


def run_size(meters: int, batch_size: int = 10_000, skip: float = 0.01, seed: int = 1, export: bool = True,
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
    # the collector on the validator's schedule (nodes/gc_policy.py: the loaded registry frozen, full
    # collections rare), as a validator process builds, commits and exports
    with tempfile.TemporaryDirectory(prefix="stromledger-bench-cascade-") as tmp, settled_collector():
        from stromledger.store import Store

        store = Store(Path(tmp) / "ledger.sqlite3")
        last_commit = b""
        try:
            for h in (g, g + 1, g + 2):
                progress(f"{meters} meter points: readings for height {h}")
                with stopwatch() as lap:
                    checked = _batches(grid, h, batch_size, skip)
                setup[f"readings_{h - g}_s"] = lap.wall
                progress(f"{meters} meter points: build, validate, commit height {h}"
                         + (f", export height {h - 1}" if export and h > g else ""))
                measured, last_commit = _height(reg, state, h, checked, store, last_commit, seed,
                                                Path(tmp) / "node" if export and h > g else None)
                heights.append(measured)
                del checked
        finally:
            store.close()
        progress(f"{meters} meter points: breakdown")
        parts = breakdown(reg, state, g + 2)
    steady = heights[-1]
    # the first export of the registry (height g at g + 1) makes what is kept with the registry version
    # (period_data.kind_source); the steady state (g + 1 at g + 2) finds it
    first = {k: heights[1][k] for k in ("build_s", "build_cpu_s", "export_s", "export_cpu_s", "export_per_build",
                                        "export_cpu_per_build_cpu")}
    return {"meter_points": meters, "setup": setup, "heights": heights, "steady": steady, "first_export": first,
            "breakdown": parts, "rss_after_mb": proc_memory().get("VmRSS")}


def run_cascade(sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000), batch_size: int = 10_000,
                skip: float = 0.01, seed: int = 1, export: bool = True,
                progress: Callable[[str], None] = lambda s: None) -> dict:
    runs = []
    for n in sizes:
        runs.append(run_size(n, batch_size, skip, seed, export, progress))
        gc.collect()
    base = runs[0]["steady"]
    curve = []
    for r in runs:
        s = r["steady"]
        curve.append({
            "meter_points": r["meter_points"],
            "build_s": s["build_s"], "validate_s": s["validate_s"], "commit_s": s["commit_s"],
            "persist_s": s["persist_s"], "export_s": s["export_s"], "export_per_build": s.get("export_per_build"),
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
    for r in at_target:
        s = r["steady"]
        if s.get("export_per_build") is not None:
            targets.append({"name": f"export of {r['meter_points']:,} meter points / seal build, same run (wall)",
                            "target": f"<= {EXPORT_PER_BUILD:g}", "measured": round(s["export_per_build"], 2),
                            "met": s["export_per_build"] <= EXPORT_PER_BUILD})
    if not at_target:  # extrapolate linearly from the largest size, and say so
        s = runs[-1]["steady"]
        est = max(s["build_us_per_mp"], s["validate_us_per_mp"]) * TARGET_METERS / 1e6
        targets.append({"name": f"build or validate 1,000,000 meter points (EXTRAPOLATED from "
                                f"{runs[-1]['meter_points']:,})", "target": f"<= {TARGET_SECONDS:g} s",
                        "measured": round(est, 2), "met": est <= TARGET_SECONDS})
    return {"sizes": list(sizes), "batch_size": batch_size, "skip": skip, "runs": runs, "curve": curve,
            "targets": targets}
