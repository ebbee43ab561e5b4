"""A small real chain for the export tests: a genesis file, signed readings and schedules, seals built by the
cascade, commit certificates from 3 of 4 validators' precommits, and node stores holding it all.

Heights (period indices from G = the genesis period, 2026-11-21T10:00:00Z):
- G: readings of every meter point but one (MISSING), matched and one-sided schedules;
- G+1: readings but for one meter point (SUBSTITUTED) and a late reading of period G (version 2 of G);
- G+2: a meter operator's corrected reading (meter version 2) for period G+1 (version 2 of G+1);
- G+3: plain readings. Its seal carries the certificate of G+2, which makes G+2 final for export.

Each seal after G carries the certificate of the height before (`last_commit`), as a validator proposes it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable, Sequence

from stromledger.cascade import Ledger, make_batch, sign_reading, sign_schedule
from stromledger.cascade.messages import Batch
from stromledger.consensus import Precommit, ValidatorSet, build_certificate, sign_vote
from stromledger.consensus.messages import CommitCertificate
from stromledger.crypto import SigningKey
from stromledger.ids import make_eic, make_malo_id
from stromledger.periods import parse_utc
from stromledger.registry import (
    Assignment, BalancingGroup, ChainParams, GridArea, MeterOperator, MeterPoint, Registry, Validator, load_genesis,
    write_genesis,
)

CHAIN = "export-test"
START = int(parse_utc("2026-11-21T10:00:00Z").timestamp())
G = START // 900
A1, A2 = make_eic("11YEXPAREA----1"), make_eic("11YEXPAREA----2")
G1, G2, G3 = make_eic("11YEXPBG------1"), make_eic("11YEXPBG------2"), make_eic("11YEXPBG------3")
L1, L2 = make_eic("11YEXPLOSS----1"), make_eic("11YEXPLOSS----2")
GROUPS = (G1, G2, G3, L1, L2)


def malo(n: int) -> str:
    return make_malo_id(f"{4100000000 + n:010d}")


# malo number -> (kind, source, area, group, max power W, area_out, area_in)
POINTS = {
    1: ("consumer", "grid", A1, G1, 30_000, "", ""),
    2: ("consumer", "grid", A1, G2, 30_000, "", ""),
    3: ("prosumer", "pv", A1, G1, 15_000, "", ""),
    4: ("producer", "wind", A1, G2, 2_000_000, "", ""),
    5: ("consumer", "grid", A2, G3, 60_000, "", ""),
    6: ("prosumer", "battery", A2, G3, 10_000, "", ""),
    7: ("consumer", "grid", A2, G1, 11_000, "", ""),
    8: ("boundary", "grid", A1, "", 50_000_000, A1, A2),
    9: ("boundary", "grid", A2, "", 50_000_000, A2, ""),
}
MISSING_AT_G = malo(7)  # sends nothing for G (MISSING), its reading arrives late at G+1 (correction)
SKIPPED_AT_G1 = malo(5)  # sends nothing for G+1 (SUBSTITUTED from G)
CORRECTED_AT_G2 = malo(3)  # the meter operator corrects its G+1 value (meter version 2) at G+2


def validator_key(i: int) -> SigningKey:
    return SigningKey.from_label(f"export-validator-{i}")


def meter_key(m: str) -> SigningKey:
    return SigningKey.from_label(f"export-meter-{m}")


def group_key(g: str) -> SigningKey:
    return SigningKey.from_label(f"export-group-{g}")


OPERATOR = SigningKey.from_label("export-meter-operator")


def make_registry() -> Registry:
    params = ChainParams(CHAIN, G, 900, 60, 4, 192)
    validators = [Validator(f"validator-{i + 1}", validator_key(i).public, (A1, A2)[i % 2]) for i in range(4)]
    areas = [GridArea(A1, "Area One", "DSO One", L1), GridArea(A2, "Area Two", "DSO Two", L2)]
    groups = [BalancingGroup(g, f"Group {g[-4:]}", group_key(g).public) for g in GROUPS]
    points = [MeterPoint(malo(n), kind, source, area, group, "Metering Co", meter_key(malo(n)).public, power, out, into)
              for n, (kind, source, area, group, power, out, into) in POINTS.items()]
    switches = [Assignment(malo(2), G + 2, G3)]
    return Registry(params, validators, areas, groups, [MeterOperator("Metering Co", OPERATOR.public)], points,
                    switches)


def write_registry(directory: Path) -> tuple[Path, Registry]:
    """The genesis file of `make_registry()` and the registry loaded back from it."""
    path = write_genesis(make_registry(), directory)
    return path, load_genesis(path)


def values(period: int) -> dict[str, tuple[int, int]]:
    out = {}
    for n, (kind, _, _, _, _, _, _) in POINTS.items():
        k = period - G + 1
        if kind == "consumer":
            out[malo(n)] = (300 * n + 7 * k, 0)  # within every max power
        elif kind == "producer":
            out[malo(n)] = (3 * k, 400_000 + 11 * k)
        elif kind == "boundary":
            out[malo(n)] = (200_000 + 5 * n + k, 150_000 + k)
        else:
            out[malo(n)] = (500 + n + k, 1_234 + 13 * k)
    return out


def readings(registry: Registry, period: int, skip: Iterable[str] = (), version: int = 1,
             override: dict[str, tuple[int, int]] | None = None) -> list:
    vals = {**values(period), **(override or {})}
    skip = set(skip)
    return [sign_reading(meter_key(m), registry.chain_id, m, period, imp, exp, version=version)
            for m, (imp, exp) in sorted(vals.items()) if m not in skip]


def batches_for(registry: Registry, height: int) -> list[Batch]:
    chain = registry.chain_id
    if height == G:
        sched = [sign_schedule(group_key(G1), chain, G1, G2, G, 5_000),
                 sign_schedule(group_key(G2), chain, G1, G2, G, 5_000),
                 sign_schedule(group_key(G2), chain, G2, G3, G, 700)]  # one-sided: G3 never signs
        return [make_batch(OPERATOR, chain, readings(registry, G, skip=[MISSING_AT_G])),
                make_batch(group_key(G1), chain, (), sched)]
    if height == G + 1:
        late = [r for r in readings(registry, G) if r.malo_id == MISSING_AT_G]
        return [make_batch(OPERATOR, chain, readings(registry, G + 1, skip=[SKIPPED_AT_G1])),
                make_batch(OPERATOR, chain, late)]
    if height == G + 2:
        imp, exp = values(G + 1)[CORRECTED_AT_G2]
        fix = readings(registry, G + 1, version=2, override={CORRECTED_AT_G2: (imp + 40, exp + 2)})
        fix = [r for r in fix if r.malo_id == CORRECTED_AT_G2]
        return [make_batch(OPERATOR, chain, readings(registry, G + 2)), make_batch(OPERATOR, chain, fix)]
    if height == G + 3:
        return [make_batch(OPERATOR, chain, readings(registry, G + 3))]
    raise ValueError(height)


def certify(registry: Registry, height: int, seal_hash: bytes, signers: Sequence[int] = (0, 1, 2),
            round: int = 0) -> CommitCertificate:
    vset = ValidatorSet(registry.validator_keys())
    votes = [sign_vote(Precommit, validator_key(i), registry.chain_id, height, round, seal_hash) for i in signers]
    return build_certificate(height, round, seal_hash, votes, vset)


@dataclasses.dataclass
class Commit:
    height: int
    seal_bytes: bytes
    seal_hash: bytes
    certificate: CommitCertificate  # the one this node stored; the seal at height + 1 carries its own choice
    batches: list[Batch]
    rows: dict[int, list]  # period -> rows of its latest version after this commit
    state: bytes  # the ledger's settled state after this commit (what a node snapshots)


def run_chain(registry: Registry, heights: int = 4, *, signers: Sequence[int] = (0, 1, 2),
              reverse_batches: bool = False) -> list[Commit]:
    """Settle `heights` periods with a fresh Ledger, each certified by `signers` (and that certificate
    carried by the next seal); the proposer's batch order can be reversed (the seal must not depend on it)."""
    ledger = Ledger(registry)
    out = []
    for h in range(G, G + heights):
        batches = batches_for(registry, h)
        for b in (reversed(batches) if reverse_batches else batches):
            admission = ledger.admit(b, None)
            assert admission.refused is None, admission.refused
        outcome = ledger.propose(last_commit=out[-1].certificate.encode() if out else b"")
        ledger.commit(outcome.seal_bytes)
        rows = {r.period: list(ledger.rows(r.period)) for r in outcome.seal.results}
        out.append(Commit(h, outcome.seal_bytes, outcome.seal_hash, certify(registry, h, outcome.seal_hash, signers),
                          batches, rows, ledger.state.encode()))
    return out


def fill_store(store, commits: list[Commit], *, period_rows: bool = True, state: bool = False) -> None:
    """Store commits and batches as a validator would; with `period_rows`, also the rows of each result, with
    `state` the settled-state snapshot after each commit."""
    from stromledger.cascade.messages import PeriodSeal
    from stromledger.export import encode_period_rows

    for c in commits:
        for b in c.batches:
            data = b.encode()
            periods = {r.period for r in b.readings} | {s.period for s in b.schedules}
            store.put_batch(b.digest(), data, 0, sorted(periods))
        store.put_commit(c.height, c.certificate.round, c.seal_bytes, c.seal_hash, c.certificate.encode(), 0)
        seal = PeriodSeal.decode(c.seal_bytes)
        for r in seal.results:
            if period_rows:
                store.put_period_result(r.period, r.version, c.height,
                                        encode_period_rows(r.period, r.version, c.rows[r.period]))
        if state:
            store.put_state(c.height, c.state)


def final_exports(registry: Registry, commits: list[Commit]) -> dict[tuple[int, int], dict[str, bytes]]:
    """Every export of the chain by (period, version) but the last height's (not final yet): built from the
    seals, the certificates the following seals carry, and the rows."""
    from stromledger.cascade.messages import PeriodSeal
    from stromledger.export import build_export

    out = {}
    latest: dict[int, list] = {}
    for c, following in zip(commits, commits[1:]):
        cert = CommitCertificate.decode(PeriodSeal.decode(following.seal_bytes).last_commit)
        for r in PeriodSeal.decode(c.seal_bytes).results:
            out[r.period, r.version] = build_export(registry, c.seal_bytes, cert, r.period, c.rows[r.period],
                                                    latest.get(r.period))
        latest.update(c.rows)
    return out


def write_samples(directory: Path) -> list[Path]:
    """The sample exports under docs/samples/: this chain's genesis (genesis/) and its final exports
    (exports/<period>/v1, v2 and exports/index.jsonl), as a validator writes them."""
    import shutil

    from stromledger.export import write_export

    directory = Path(directory)
    for old in ("genesis", "exports"):
        shutil.rmtree(directory / old, ignore_errors=True)
    _, registry = write_registry(directory / "genesis")
    paths = [write_export(directory, files) for _, files in sorted(final_exports(registry, run_chain(registry)).items())]
    (directory / "exports" / ".index.lock").unlink(missing_ok=True)
    return paths


if __name__ == "__main__":  # python tests/export/export_chain.py docs/samples  (after an export format change)
    import sys

    for p in write_samples(Path(sys.argv[1])):
        print(p)
