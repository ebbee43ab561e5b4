"""Area checkpoints: an area chain's committed seal made self-verifying for the network chain.

`make_checkpoint` packs a committed AreaSeal with its certificate and the inclusion proofs of its boundary
meters; `verify_checkpoint(genesis, data)` checks it with the genesis alone and returns what the network
level uses (`Certified`): the area's results per period (cells, totals) and each boundary meter's settled
flow. A checkpoint of an area the genesis does not have, a seal of another chain or registry, a certificate
not signed by more than 2/3 of that area's committee, a result whose invariants fail, or a missing or wrong
tie-line proof is refused with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from stromledger import merkle
from stromledger.cascade.messages import PeriodResult, PeriodSeal, SettledReading
from stromledger.cascade.rejections import Reason, Rejection
from stromledger.cascade.rows import check_invariants
from stromledger.codec import CodecError
from stromledger.consensus.certificate import CertificateError, verify_certificate
from stromledger.consensus.messages import CommitCertificate
from stromledger.crypto import sha256
from stromledger.registry import Registry, RegistryChange, decode_change, registry_at, view, with_changes
from stromledger.registry.changes import trust_problem
from stromledger.registry.committee import committee_at

from .messages import Checkpoint, TieProof

# (period, malo_id) -> (leaf bytes, index, tree size, audit path), e.g. Ledger.proof
ProofSource = Callable[[int, str], tuple[bytes, int, int, list[bytes]]]


@dataclass(frozen=True, slots=True)
class Certified:
    """A verified checkpoint: what the network level needs of one area seal."""

    area: str
    height: int
    seal_hash: bytes
    results: dict[int, PeriodResult]  # period -> the area's result in this seal
    ties: dict[int, dict[str, tuple[int, int]]]  # period -> boundary MaLo-ID -> (import_wh, export_wh)
    data: bytes  # the checkpoint's bytes, to pass on


def make_checkpoint(area: str, seal_bytes: bytes, certificate: bytes, proof: ProofSource,
                    area_registry: Registry, history: tuple[RegistryChange, ...] = ()) -> Checkpoint:
    """The checkpoint of a committed area seal. `proof(period, malo)` gives a boundary meter's inclusion proof
    in the committed result of that period (e.g. the area ledger's `proof`, right after the commit);
    `history`: the area chain's committed registry changes (the ones in effect by its periods go along)."""
    seal = PeriodSeal.decode(seal_bytes)
    last = max([seal.height, *(r.period for r in seal.results)])
    changes = tuple(c for c in history if c.effective_period <= last and isinstance(c, RegistryChange))
    approved = tuple(c.encode() for c in history if c.effective_period <= last and not isinstance(c, RegistryChange))
    ties = []
    for r in seal.results:
        for malo in area_registry.boundary:
            leaf, index, size, path = proof(r.period, malo)
            ties.append(TieProof(r.period, leaf, index, size, tuple(path)))
    return Checkpoint(area, bytes(seal_bytes), bytes(certificate), tuple(ties), changes, approved)


def verify_checkpoint(genesis: Registry, data: bytes | Checkpoint) -> Certified | Rejection:
    try:
        cp = data if isinstance(data, Checkpoint) else Checkpoint.decode(data)
        raw = cp.encode() if isinstance(data, Checkpoint) else bytes(data)
    except CodecError as e:
        return Rejection(Reason.OVERSIZED if e.reason == "oversized" else Reason.MALFORMED, f"checkpoint: {e}")
    if cp.area not in genesis.grid_areas:
        return Rejection(Reason.UNKNOWN_SCOPE, f"checkpoint for {cp.area!r}, which is no grid area of the genesis")
    area = view(genesis, cp.area)
    try:
        seal = PeriodSeal.decode(cp.seal)
        cert = CommitCertificate.decode(cp.certificate)
    except CodecError as e:
        return Rejection(Reason.MALFORMED, f"checkpoint of {cp.area}: {e}")
    if seal.chain_id != area.chain_id or seal.registry_hash != area.hash:
        return Rejection(Reason.WRONG_CHAIN, f"checkpoint of {cp.area} carries a seal of chain {seal.chain_id!r} "
                                             f"(or another registry), expected {area.chain_id!r}")
    seal_hash = sha256(cp.seal)
    try:
        approved = [decode_change(a, approved_only=True) for a in cp.approved]
    except CodecError as e:
        return Rejection(Reason.MALFORMED, f"checkpoint of {cp.area}: approved change: {e}")
    # pinned by the registry version each certified result names; the committee changes (which the
    # certificate itself rests on) by their approvals, from the genesis committee on
    history = with_changes((), (*cp.changes, *approved))
    problem = trust_problem(area, history)
    if problem is not None:
        return Rejection(Reason.BAD_CERTIFICATE, f"checkpoint of {cp.area}: {problem}")
    try:
        verify_certificate(cert, seal_hash, committee_at(area, seal.height, history), area.chain_id, seal.height)
    except CertificateError as e:
        return Rejection(Reason.BAD_CERTIFICATE, f"checkpoint of {cp.area} height {seal.height}: {e.reason}: {e}")
    results = {}
    for r in seal.results:
        broken = check_invariants(registry_at(area, r.period, history), r)
        if broken is not None:
            return broken
        results[r.period] = r
    ties = _tie_flows(area, results, cp.ties)
    if isinstance(ties, Rejection):
        return ties
    return Certified(cp.area, seal.height, seal_hash, results, ties, raw)


def _tie_flows(area: Registry, results: dict[int, PeriodResult], proofs: tuple[TieProof, ...]
               ) -> dict[int, dict[str, tuple[int, int]]] | Rejection:
    def bad(what: str) -> Rejection:
        return Rejection(Reason.MALFORMED, f"checkpoint of {area.scope}: {what}")

    flows: dict[int, dict[str, tuple[int, int]]] = {p: {} for p in results}
    for t in proofs:
        r = results.get(t.period)
        if r is None:
            return bad(f"a tie-line proof for period {t.period}, which the seal has no result for")
        try:
            leaf = SettledReading.decode(t.leaf)
        except CodecError as e:
            return bad(f"tie-line leaf: {e}")
        mp = area.meter_points.get(leaf.malo_id)
        if leaf.period != t.period or mp is None or mp.kind != "boundary":
            return bad(f"leaf of {leaf.malo_id} period {leaf.period} is no boundary meter of the area")
        if t.size != r.meter_points or not merkle.verify_inclusion(r.merkle_root, t.leaf, t.index, t.size,
                                                                   list(t.path)):
            return bad(f"the proof of {leaf.malo_id} in period {t.period} does not verify against the root")
        if leaf.malo_id in flows[t.period]:
            return bad(f"{leaf.malo_id} proved twice for period {t.period}")
        flows[t.period][leaf.malo_id] = (leaf.import_wh, leaf.export_wh)
    for p, got in flows.items():
        if len(got) != len(area.boundary):
            return bad(f"period {p}: {len(got)} tie-line proofs, the area has {len(area.boundary)} boundary meters")
    return flows


def canonical_checkpoints(pool) -> dict[bytes, bytes | None]:
    """Area seal hash -> the checkpoint's bytes with the area chain's canonical certificate: the one the
    area's next seal carries as `last_commit` (each member's own certificate of a height may differ; exports
    must not). None where the next area seal's checkpoint is not here yet."""
    pool = list(pool)
    canonical: dict[tuple[str, bytes], bytes] = {}
    for cp in pool:
        seal = PeriodSeal.decode(Checkpoint.decode(cp.data).seal)
        if seal.last_commit:
            canonical[cp.area, bytes(seal.previous)] = bytes(seal.last_commit)
    out: dict[bytes, bytes | None] = {}
    for cp in pool:
        cert = canonical.get((cp.area, cp.seal_hash))
        if cert is None:
            out[cp.seal_hash] = None
        else:
            c = Checkpoint.decode(cp.data)
            out[cp.seal_hash] = Checkpoint(c.area, c.seal, cert, c.ties, c.changes, c.approved).encode()
    return out

