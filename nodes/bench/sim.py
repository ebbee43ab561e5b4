"""`bench sim`: how fast the seeded simulator runs a simulated day (96 heights of 15 minutes) of N validators.

Each run is `stromledger.sim.simulate(SimConfig(...))` (the real consensus machines, real Ed25519 signatures,
a virtual clock) followed by the checker (`stromledger.sim.check`), timed separately. Every delivered
consensus message is signature-checked by its receiver, and the checker verifies every decided commit
certificate, so raw Ed25519 verification (measured in the same run) gives a lower bound for both.
"""

from __future__ import annotations

from typing import Callable

from stromledger.crypto import SigningKey, verify

from .timing import median, stopwatch


def _verify_us(samples: int = 1000) -> float:
    key = SigningKey.from_label("bench-sim")
    payload = bytes(120)  # about a vote's body
    sig = key.sign("nodes/bench/1", "bench", payload)
    with stopwatch() as lap:
        for _ in range(samples):
            verify(key.public, sig, "nodes/bench/1", "bench", payload)
    return lap.wall * 1e6 / samples


def run_sim(validators: int = 16, heights: int = 96, seeds: int = 3, interval_ms: int = 900_000,
            faults: str = "none", progress: Callable[[str], None] = lambda s: None) -> dict:
    from stromledger.sim import SimConfig, check, simulate

    runs = []
    for seed in range(seeds):
        progress(f"seed {seed}: {validators} validators, {heights} heights, faults {faults}")
        config = SimConfig(seed=seed, validators=validators, heights=heights, height_interval_ms=interval_ms,
                           faults=faults)
        with stopwatch() as sim_lap:
            result = simulate(config)
        with stopwatch() as check_lap:
            violations = check(result)
        honest = [n.id for n in result.honest_nodes()]
        decided = {(d.node, d.height) for d in result.decisions if d.node in honest}
        runs.append({
            "seed": seed,
            "simulate_s": sim_lap.wall,
            "check_s": check_lap.wall,
            "heights_per_s": heights / sim_lap.wall,
            "heights_per_s_checked": heights / (sim_lap.wall + check_lap.wall),
            "events": result.events,
            "events_per_s": result.events / sim_lap.wall,
            "messages": result.messages,
            "decisions": len(decided),
            "decisions_expected": len(honest) * heights,
            "violations": len(violations),
            "rounds_max": max((d.round for d in result.decisions), default=0),
            "simulated_hours": result.end_time / 3_600_000,
        })
    verify_us = _verify_us()
    best = max(runs, key=lambda r: r["heights_per_s"])
    quorum = validators - (validators - 1) // 3
    # lower bound of one run: every delivered message verified once, every decided certificate checked
    crypto_s = (best["messages"] + best["decisions"] * quorum) * verify_us / 1e6
    return {
        "validators": validators,
        "heights": heights,
        "interval_ms": interval_ms,
        "faults": faults,
        "runs": runs,
        "heights_per_s_median": median([r["heights_per_s"] for r in runs]),
        "heights_per_s_best": best["heights_per_s"],
        "day_s_best": best["simulate_s"],
        "day_checked_s_best": best["simulate_s"] + best["check_s"],
        "ed25519_verify_us": verify_us,
        "ed25519_lower_bound_s": crypto_s,  # of simulate + check of the best run
        "crypto_share": crypto_s / (best["simulate_s"] + best["check_s"]),
    }
