"""`bench country`: from gate closure to the national result, as the number of area chains grows.

Per count K of areas (default 10, 100, 860: Germany has about 860 grid areas):
  checkpoint  one area's committed AreaSeal made a Checkpoint (`chains.make_checkpoint`) and its size; the
              seal has `groups` cells (balancing groups active in the area) and two tie lines
  verify      `verify_checkpoint` of all K (each: the area committee's certificate of 5 of 7 real Ed25519
              precommits, the results' invariants, the tie-line Merkle proofs): what every network
              validator does as checkpoints arrive, before the deadline
  build       `build_network_seal` from the K checkpoints (the proposer), `validate` = rebuild on the others
  consensus   the network committee (16 validators) deciding that seal in the seeded simulator: real
              consensus machines and signatures, 5-60 ms network delays, the value's size, and the
              measured validate time as the application's answer time
Then per area size (meter points) what one area validator carries: Ed25519 verification of every reading
(µs per reading, this machine) and rebuilding the AreaSeal (µs per meter point, measured with `bench
cascade`'s code at `meters`), spread over a 15-minute period, and the latency they add after gate closure.
Sizes beyond what was measured are linear extrapolations, and the tables say so.
"""

from __future__ import annotations

from typing import Callable

from stromledger.cascade import Ledger
from stromledger.chains.checkpoint import make_checkpoint, verify_checkpoint
from stromledger.chains.network import NetworkState, build_network_seal, rebuild_network_seal
from stromledger.consensus.certificate import build_certificate
from stromledger.consensus.messages import Precommit, sign_vote
from stromledger.consensus.validators import ValidatorSet
from stromledger.crypto import SigningKey
from stromledger.ids import make_malo_id
from stromledger.registry import (
    BalancingGroup, ChainParams, GridArea, MeterOperator, MeterPoint, Registry, Validator, committee, view,
)
from nodes.datagen.synthetic import eic_for

from .sim import _verify_us
from .timing import median, stopwatch

PERIOD_SECONDS = 900
GENESIS = 1_994_728
AREA_COMMITTEE = 7


def _key(label: str) -> SigningKey:
    return SigningKey.from_label(f"bench-country/{label}")


def country(areas: int, groups: int, network_validators: int) -> Registry:
    """K areas in a ring (a tie line to the next area, one to outside), `groups` consumers per area (one per
    group), committees of 7 drawn round-robin from the network's validators."""
    group_ids = [eic_for("BCG", g) for g in range(groups)]
    loss_ids = [eic_for("BCL", a) for a in range(areas)]
    area_ids = [eic_for("BCA", a) for a in range(areas)]
    names = [f"validator-{i}" for i in range(network_validators)]
    validators = [Validator(n, _key(n).public, area_ids[i % areas]) for i, n in enumerate(names)]
    grid_areas = [GridArea(a, f"area {i}", f"dso {i}", loss_ids[i],
                           tuple(names[(i + j) % network_validators] for j in range(AREA_COMMITTEE)))
                  for i, a in enumerate(area_ids)]
    bgs = [BalancingGroup(g, g, _key(g).public) for g in group_ids + loss_ids]
    operator = MeterOperator("metering", _key("metering").public)
    points, n = [], 0

    def mp(kind, area, group, out="", into=""):
        nonlocal n
        n += 1
        malo = make_malo_id(f"{5_000_000_000 + n:010d}")
        points.append(MeterPoint(malo, kind, "grid", area, group, operator.name, _key(malo).public, 10_000_000,
                                 out, into))

    for i, a in enumerate(area_ids):
        for g in group_ids:
            mp("consumer", a, g)
        if areas > 1:
            mp("boundary", a, "", a, area_ids[(i + 1) % areas])
        mp("boundary", a, "", "", a)
    return Registry(ChainParams("bench-country", GENESIS, PERIOD_SECONDS, 60, 4, 96), validators, grid_areas, bgs,
                    [operator], points, network_committee=names)


def _checkpoints(genesis: Registry) -> list[bytes]:
    """Every area's AreaSeal of the genesis height (no readings: every meter point missing, the cells are
    all there) with a real certificate of 5 of its 7 committee members."""
    out = []
    for area in genesis.grid_areas:
        reg = view(genesis, area)
        ledger = Ledger(reg)
        outcome = ledger.propose()
        ledger.commit(outcome.seal_bytes)
        members = [v.name for v in committee(genesis, area)]
        vset = ValidatorSet.of([_key(n).public for n in members])
        votes = [sign_vote(Precommit, _key(n), reg.chain_id, GENESIS, 0, outcome.seal_hash)
                 for n in members[:vset.quorum]]
        cert = build_certificate(GENESIS, 0, outcome.seal_hash, votes, vset).encode()
        out.append(make_checkpoint(area, outcome.seal_bytes, cert, ledger.proof, reg).encode())
    return out


def _network_consensus_ms(validators: int, value_bytes: int, app_ms: int, heights: int, seeds: int) -> dict:
    """With the node's default timeouts (a propose timeout of 3 s covers validating a large network seal)."""
    from stromledger.consensus.config import ConsensusConfig
    from stromledger.sim import SimConfig, simulate

    latencies = []
    for seed in range(seeds):
        config = SimConfig(seed=seed, validators=validators, heights=heights, height_interval_ms=60_000,
                           value_bytes=value_bytes, app_ms=(app_ms, app_ms + 1), consensus=ConsensusConfig())
        result = simulate(config)
        honest = {n.id for n in result.honest_nodes()}
        last: dict[int, int] = {}
        for d in result.decisions:
            if d.node in honest:
                last[d.height] = max(last.get(d.height, 0), d.time - (d.height - config.first_height) * 60_000)
        latencies += list(last.values())
    return {"median_ms": median(latencies), "max_ms": max(latencies, default=None)}


def run_country(areas=(10, 100, 860), groups: int = 50, network_validators: int = 16, meters: int = 20_000,
                heights: int = 4, seeds: int = 2, area_sizes=(100_000, 1_000_000, 5_000_000),
                progress: Callable[[str], None] = lambda s: None) -> dict:
    rows = []
    for k in areas:
        progress(f"{k} areas: genesis and {k} area seals with certificates")
        genesis = country(k, groups, network_validators)
        checkpoints = _checkpoints(genesis)
        with stopwatch() as verify_lap:
            certified = [verify_checkpoint(genesis, c) for c in checkpoints]
        state = NetworkState.genesis(genesis)
        with stopwatch() as build_lap:
            outcome = build_network_seal(genesis, state, GENESIS, [], certified)
        by_hash = {c.seal_hash: c for c in certified}
        with stopwatch() as validate_lap:
            rebuilt = rebuild_network_seal(outcome.seal_bytes, genesis, NetworkState.genesis(genesis), {}, by_hash)
        if getattr(rebuilt, "seal_bytes", None) != outcome.seal_bytes:
            raise RuntimeError(f"the rebuilt network seal differs: {rebuilt}")
        progress(f"{k} areas: {network_validators} network validators deciding a {len(outcome.seal_bytes)}-byte "
                 "seal (simulated)")
        app_ms = max(1, round(validate_lap.wall * 1000))
        consensus = _network_consensus_ms(network_validators, len(outcome.seal_bytes), app_ms, heights, seeds)
        rows.append({
            "areas": k,
            "cells": len(outcome.seal.result(GENESIS).cells),
            "checkpoint_bytes_mean": sum(map(len, checkpoints)) // k,
            "verify_all_s": verify_lap.wall,
            "verify_per_checkpoint_ms": verify_lap.wall * 1000 / k,
            "build_s": build_lap.wall,
            "validate_s": validate_lap.wall,
            "network_seal_bytes": len(outcome.seal_bytes),
            "consensus_median_ms": consensus["median_ms"],
            "consensus_max_ms": consensus["max_ms"],
            # after the network deadline: the proposer builds, the others validate, then the votes
            "deadline_to_seal_ms": None if consensus["median_ms"] is None else
            build_lap.wall * 1000 + consensus["median_ms"],
        })
    progress(f"one area validator: Ed25519 per reading and rebuilding an AreaSeal of {meters} meter points")
    from .cascade import run_cascade

    cascade = run_cascade(sizes=(meters,), batch_size=min(10_000, meters), skip=0.01, export=False)
    steady = cascade["runs"][-1]["steady"]
    settle_us = max(steady["build_s"], steady["validate_s"]) * 1e6 / meters
    verify_us = _verify_us()
    per_area = []
    for n in area_sizes:
        per_area.append({
            "meter_points": n,
            "measured": n <= meters,
            "readings_per_s": n / PERIOD_SECONDS,
            "verify_cores": n / PERIOD_SECONDS * verify_us / 1e6,
            "settle_s_per_period": n * settle_us / 1e6,
            "settle_cores": n * settle_us / 1e6 / PERIOD_SECONDS,
            "area_seal_after_gate_s": 2 * n * settle_us / 1e6,  # the proposer builds, the others rebuild
        })
    return {"groups": groups, "network_validators": network_validators, "area_committee": AREA_COMMITTEE,
            "rows": rows, "area_meters_measured": meters, "settle_us_per_meter": settle_us,
            "ed25519_verify_us": verify_us, "per_area": per_area}
