"""Light-client verification, pure: does a validator's LightReply prove that these readings were settled
exactly as they were sent? Needs nothing but the registry (genesis) and the reply.

The chain of evidence, each link checked:
1. the commit certificate: more than 2/3 of the chain's committee of that height precommitted the seal's hash
   (the genesis committee, or the one the committee changes the reply carries installed, each approved by
   the committee before it);
2. the seal: sha256 of the seal bytes is the certificate's value hash; it names this chain and registry and
   the certificate's height; it contains the period result of the requested period at the reply's version,
   and that result's own invariants hold;
3. per meter point, the Merkle inclusion proof of its leaf (a SettledReading) against that result's root;
4. the leaf settles exactly the reading that was sent: the same meter version, register flag, values and
   signature (and, for interval readings, the settled energy is those values), in the registry's grid area
   and balancing group.

`verify_commit` (links 1-2) is shared with the balancing-group node, which checks every seal it follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

from stromledger import merkle
from stromledger.cascade import CORRECTED, MEASURED, QUALITY_NAMES, PeriodSeal, Reading, SettledReading, check_invariants
from stromledger.cascade.messages import PeriodResult
from stromledger.codec import CodecError
from stromledger.consensus import CertificateError, CommitCertificate, verify_certificate
from stromledger.crypto import sha256
from stromledger.registry import Registry, chain_id, decode_change, registry_at, view, with_changes
from stromledger.registry.changes import trust_problem

from .protocol import LightReply


class LightError(ValueError):
    """A reply (or commit) that proves nothing: `reason` is a short code, the message says what is wrong."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def verify_commit(registry: Registry, seal_bytes: bytes, certificate: CommitCertificate,
                  height: Optional[int] = None, changes: Sequence[bytes] = ()) -> PeriodSeal:
    """The seal that `certificate` commits, after checking both against the genesis; LightError otherwise.
    `changes`: the chain's committee changes in effect by then (canonical bytes): the certificate is checked
    against the committee they installed, each approved by the one before it, from the genesis committee on."""
    h = certificate.height if height is None else height
    keys = registry.validator_keys()
    if changes:
        try:
            history = with_changes((), [decode_change(c, approved_only=True) for c in changes])
        except CodecError as e:
            raise LightError("malformed_change", str(e)) from None
        problem = trust_problem(registry, history)
        if problem is not None:
            raise LightError("bad_committee_change", problem)
        keys = registry_at(registry, h, history).validator_keys()
    try:
        verify_certificate(certificate, sha256(seal_bytes), keys, registry.chain_id, h)
    except CertificateError as e:
        raise LightError(f"certificate_{e.reason}", str(e)) from None
    try:
        seal = PeriodSeal.decode(seal_bytes)
    except CodecError as e:
        raise LightError("malformed_seal", str(e)) from None
    if seal.chain_id != registry.chain_id or seal.registry_hash != registry.hash:
        raise LightError("wrong_chain", f"the seal is for chain {seal.chain_id!r} or another registry")
    if seal.height != h:
        raise LightError("wrong_height", f"the certificate is for height {h}, the seal for {seal.height}")
    return seal


@dataclass(frozen=True)
class Failure:
    malo_id: str
    what: str

    def __str__(self) -> str:
        return f"MaLo {self.malo_id}: {self.what}"


@dataclass
class LightCheck:
    """The outcome for one period: which readings are proven settled as sent, which are proven not settled
    yet (`waiting`: the proven version settles no reading or an older meter version, so a later version may
    still settle what was sent), and what really differs for the rest (`failures`)."""

    period: int
    height: int
    version: int
    verified: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    waiting: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.waiting


def period_result(registry: Registry, seal: PeriodSeal, period: int, version: int) -> PeriodResult:
    result = seal.result(period)
    if result is None:
        raise LightError("no_result", f"the seal at height {seal.height} has no result for period {period}")
    if result.version != version:
        raise LightError("wrong_version", f"the seal holds version {result.version} of period {period}, the reply "
                                          f"claims version {version}")
    if result.registry_version != registry.version:
        # settled under a registry version with changes this node does not hold (docs/registry.md): the
        # certificate vouches for the totals; the registry-dependent re-check needs the changes
        return result
    broken = check_invariants(registry, result)
    if broken is not None:
        raise LightError("invariant_violated", str(broken))
    return result


def chain_registry(genesis: Registry, seal_bytes: bytes) -> Registry:
    """The registry a seal is to be checked with: the view of the genesis area chain whose id it names, else
    the genesis itself. Every candidate comes from the genesis, so a seal can only pick a committee the
    genesis gives that chain; verify_commit then checks chain id, registry hash and certificate."""
    try:
        cid = PeriodSeal.decode(seal_bytes).chain_id
    except CodecError:
        return genesis
    for area in genesis.grid_areas:
        if chain_id(genesis, area) == cid:
            return view(genesis, area)
    return genesis


def verify_light_reply(registry: Registry, reply: LightReply, period: int,
                       sent: Mapping[str, Reading]) -> LightCheck:
    """Check a reply to LightRequest(period, sorted(sent)) against the readings that were sent (the latest
    version of each meter point's reading). Raises LightError if the reply as a whole proves nothing (bad
    certificate, wrong seal, no result for the period); otherwise returns each meter point's verdict."""
    if reply.height < period:
        raise LightError("wrong_height", f"period {period} cannot be settled by the seal at height {reply.height}")
    if not registry.scope:  # a genesis: the reply's seal is of the meter points' area chain
        registry = chain_registry(registry, reply.seal)
    seal = verify_commit(registry, reply.seal, reply.certificate, reply.height, reply.changes)
    result = period_result(registry, seal, period, reply.version)
    if reply.size != result.meter_points:
        raise LightError("wrong_size", f"the reply claims {reply.size} leaves, the result has {result.meter_points}")
    check = LightCheck(period, reply.height, reply.version)
    proofs = {}
    for p in reply.proofs:
        if p.malo_id in proofs:
            raise LightError("duplicate_proof", f"two proofs for {p.malo_id}")
        proofs[p.malo_id] = p
    for malo_id in sorted(sent):
        proof = proofs.get(malo_id)
        if proof is None:
            what = "no inclusion proof in the reply: the meter point is not settled in this period"
        elif not merkle.verify_inclusion(result.merkle_root, proof.leaf, proof.index, result.meter_points,
                                         list(proof.path)):
            what = f"the inclusion proof does not match the root of period {period} version {reply.version}"
        else:
            known = result.registry_version == registry.version
            what = leaf_difference(registry, period, proof.leaf, sent[malo_id], registry_known=known)
            if what is not None and not_settled_yet(registry, period, proof.leaf, sent[malo_id],
                                                    registry_known=known):
                check.waiting.append(Failure(malo_id, what))
                continue
        if what is None:
            check.verified.append(malo_id)
        else:
            check.failures.append(Failure(malo_id, what))
    return check


def not_settled_yet(registry: Registry, period: int, leaf_bytes: bytes, reading: Reading, *,
                    registry_known: bool = True) -> bool:
    """True if the proven leaf of the right meter point, area and group settles no reading or an older meter
    version than `reading`: a later version of the period (a correction) may still settle it as sent. Any
    other difference is final. `registry_known`: as for leaf_difference."""
    try:
        leaf = SettledReading.decode(leaf_bytes)
    except CodecError:
        return False
    mp = registry.meter_points.get(reading.malo_id)
    group_ok = not registry_known or leaf.balancing_group == registry.group_of(reading.malo_id, period)
    return (mp is not None and leaf.malo_id == reading.malo_id and leaf.period == period
            and leaf.grid_area == mp.grid_area and group_ok and leaf.reading_version < reading.version)


def leaf_difference(registry: Registry, period: int, leaf_bytes: bytes, reading: Reading, *,
                    registry_known: bool = True) -> Optional[str]:
    """None if the proven leaf settles exactly `reading`, else what differs (for the log). `registry_known`
    False: the period settled under a registry version with changes this node does not hold (a supplier
    switch, docs/registry.md): the leaf's balancing group is then not compared, its values still are."""
    try:
        leaf = SettledReading.decode(leaf_bytes)
    except CodecError as e:
        return f"the leaf is not a SettledReading: {e}"
    m = reading.malo_id
    if leaf.malo_id != m or leaf.period != period:
        return f"the leaf is for {leaf.malo_id} in period {leaf.period}"
    mp = registry.meter_points.get(m)
    if mp is None:
        return "not in the registry"
    diffs = []
    if leaf.grid_area != mp.grid_area:
        diffs.append(f"grid area {leaf.grid_area}, registry {mp.grid_area}")
    group = registry.group_of(m, period)
    if registry_known and leaf.balancing_group != group:
        diffs.append(f"balancing group {leaf.balancing_group!r}, registry {group!r}")
    if leaf.reading_version == 0:
        diffs.append(f"no reading settled ({QUALITY_NAMES.get(leaf.quality, leaf.quality)}, "
                     f"{leaf.import_wh}/{leaf.export_wh} Wh), sent version {reading.version}")
        return "; ".join(diffs)
    if leaf.reading_version != reading.version:
        diffs.append(f"settled meter version {leaf.reading_version}, sent version {reading.version}")
    if leaf.register != reading.register:
        diffs.append(f"settled as {'register' if leaf.register else 'interval'} reading, sent as "
                     f"{'register' if reading.register else 'interval'}")
    if (leaf.reading_import, leaf.reading_export) != (reading.import_wh, reading.export_wh):
        diffs.append(f"settled values import {leaf.reading_import} / export {leaf.reading_export} Wh, sent "
                     f"{reading.import_wh} / {reading.export_wh} Wh")
    if leaf.reading_sig != reading.sig:
        diffs.append("the settled signature is not the one sent")
    if not reading.register:
        if leaf.quality not in (MEASURED, CORRECTED):
            diffs.append(f"quality {QUALITY_NAMES.get(leaf.quality, leaf.quality)}")
        if (leaf.import_wh, leaf.export_wh) != (reading.import_wh, reading.export_wh):
            diffs.append(f"settled energy import {leaf.import_wh} / export {leaf.export_wh} Wh, sent "
                         f"{reading.import_wh} / {reading.export_wh} Wh")
    return "; ".join(diffs) or None


def latest_readings(readings: Sequence[Reading], period: int) -> dict[str, Reading]:
    """Per meter point, the highest-version reading of `period` among `readings` (what the seal should hold)."""
    out: dict[str, Reading] = {}
    for r in readings:
        if r.period == period and (r.malo_id not in out or r.version >= out[r.malo_id].version):
            out[r.malo_id] = r
    return out


__all__ = ["Failure", "LightCheck", "LightError", "latest_readings", "leaf_difference", "not_settled_yet",
           "period_result", "verify_commit", "verify_light_reply"]
