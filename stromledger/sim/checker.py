"""The checker, run on every simulated run. Each property failure is a typed `Violation`.

- agreement: no two honest nodes decide different values for one height (nor one node twice);
- validity: every value an honest node decides is one the honest application accepts, and its commit
  certificate verifies against the validators of its height (the genesis set, or after a committee change
  the rotated one: `SimConfig.rotate_at`);
- liveness: after the network heals, each honest node decides each height within `height_budget` of the
  moment the height could go ahead (healed, due, and the previous height decided by that node);
- double_sign: no honest validator signed two different messages for one (height, round, type);
- evidence: every pair of conflicting votes that an honest node had in hand at one height produced
  DuplicateVoteEvidence on that node, and every piece of evidence verifies.
"""

from __future__ import annotations

import dataclasses

from stromledger.consensus import CertificateError, EvidenceError, verify_certificate, verify_evidence

from .runner import SimResult
from .scenario import height_budget

KINDS = ("agreement", "validity", "liveness", "double_sign", "evidence", "cross_level")


@dataclasses.dataclass(frozen=True)
class Violation:
    kind: str
    height: int
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} at height {self.height}: {self.detail}"


def check(result: SimResult) -> list[Violation]:
    return (_agreement(result) + _validity(result) + _liveness(result) + _double_signing(result)
            + _evidence(result))


def _honest_decisions(result: SimResult):
    honest = {n.id for n in result.honest_nodes()}
    return [d for d in result.decisions if d.node in honest]


def _agreement(result: SimResult) -> list[Violation]:
    out = []
    first: dict[int, tuple[int, bytes]] = {}
    for d in _honest_decisions(result):
        seen = first.setdefault(d.height, (d.node, d.value_hash))
        if seen[1] != d.value_hash:
            out.append(Violation("agreement", d.height, f"node {d.node} decided {d.value_hash.hex()[:12]}, "
                                                        f"node {seen[0]} decided {seen[1].hex()[:12]}"))
    return out


def _validity(result: SimResult) -> list[Violation]:
    out = []
    cfg = result.config
    for d in _honest_decisions(result):
        judge = result.nodes[d.node].app
        if not judge.validate(d.height, d.value):
            out.append(Violation("validity", d.height, f"node {d.node} decided a value the application rejects"))
        try:
            verify_certificate(d.commit.certificate, d.value_hash, result.keys_at(d.height), cfg.chain_id,
                               height=d.height)
        except CertificateError as e:
            out.append(Violation("validity", d.height, f"node {d.node}'s certificate: {e}"))
    return out


def _liveness(result: SimResult) -> list[Violation]:
    cfg, plan = result.config, result.plan
    nodes = result.honest_nodes()
    round_at_heal = max((n.round_at_heal for n in nodes), default=0)
    budget = height_budget(cfg, round_at_heal)
    decided = {(d.node, d.height): d.time for d in result.decisions}
    out = []
    for node in nodes:
        previous = 0
        for h in range(cfg.first_height, cfg.first_height + cfg.heights):
            ready = max(plan.heal_at, (h - cfg.first_height) * cfg.height_interval_ms, previous)
            at = decided.get((node.id, h))
            if at is None or at > ready + budget:
                late = "never" if at is None else f"at {at} ms"
                out.append(Violation("liveness", h, f"node {node.id} decided {late}; "
                                                    f"bound {ready + budget} ms (ready {ready} ms)"))
                break  # later heights of this node follow from this one
            previous = at
    return out


def _double_signing(result: SimResult) -> list[Violation]:
    out = []
    for (validator, h, r, kind), digests in sorted(result.honest_signed.items()):
        if len(digests) > 1:
            name = ("proposal", "prevote", "precommit")[kind]
            out.append(Violation("double_sign", h, f"honest validator {validator} signed {len(digests)} "
                                                   f"different {name}s in round {r}"))
    return out


def _evidence(result: SimResult) -> list[Violation]:
    out = []
    for node in result.honest_nodes():
        for ev in node.evidence.values():
            try:
                verify_evidence(ev, result.keys_at(ev.height), result.config.chain_id)
            except EvidenceError as e:
                out.append(Violation("evidence", ev.height, f"node {node.id} holds invalid evidence: {e}"))
    reported = set()
    for node_id, key, h, r, kind in result.conflicts_seen:
        node = result.nodes[node_id]
        if (node_id, key, h, r, kind) in reported:
            continue
        if not any((ev.validator, ev.height, ev.round, ev.kind) == (key, h, r, kind)
                   for ev in node.evidence.values()):
            reported.add((node_id, key, h, r, kind))
            out.append(Violation("evidence", h, f"node {node_id} saw conflicting "
                                                f"{('', 'prevote', 'precommit')[kind]}s in round {r} "
                                                f"without recording evidence"))
    return out
