"""A two-area hierarchy for the chain tests: the tiny grid with explicit committees (six validators, each
area four of them, the network four), area ledgers that commit with real certificates, and checkpoints."""

from __future__ import annotations

from dataclasses import replace

from stromledger.cascade import Ledger, make_batch
from stromledger.chains.checkpoint import make_checkpoint
from stromledger.consensus.certificate import build_certificate
from stromledger.consensus.messages import Precommit, sign_vote
from stromledger.consensus.validators import ValidatorSet
from stromledger.crypto import sha256
from stromledger.registry import NETWORK, Registry, Validator, committee, view
from tests.cascade.tiny import A1, A2, Net, key, make_registry

NAMES = [f"validator-{i}" for i in range(1, 7)]
COMMITTEES = {A1: NAMES[0:4], A2: NAMES[2:6], NETWORK: NAMES[1:5]}


def make_genesis() -> Registry:
    base = make_registry()
    validators = [Validator(n, key(n).public, (A1, A1, A1, A2, A2, A2)[i]) for i, n in enumerate(NAMES)]
    areas = [replace(a, committee=tuple(COMMITTEES[a.eic])) for a in base.grid_areas.values()]
    return Registry(base.params, validators, areas, base.balancing_groups.values(), base.meter_operators.values(),
                    base.meter_points.values(), base.assignments, network_committee=COMMITTEES[NETWORK])


def certify(registry: Registry, scope: str, seal_bytes: bytes, height: int, signers=None) -> bytes:
    """A commit certificate of `seal_bytes` on the scope's chain, signed by `signers` (names; default its
    committee). The certificate indexes signers in the chain's committee order."""
    chain = view(registry, scope)
    members = [v.name for v in committee(registry, scope)]
    signers = members if signers is None else signers
    value_hash = sha256(seal_bytes)
    votes = [sign_vote(Precommit, key(n), chain.chain_id, height, 0, value_hash) for n in signers]
    vset = ValidatorSet.of([key(n).public for n in members])
    return build_certificate(height, 0, value_hash, votes, vset).encode()


class Area:
    """One area chain run by its committee, in process: propose, certify, commit, checkpoint."""

    def __init__(self, genesis: Registry, area: str):
        self.genesis, self.area = genesis, area
        self.registry = view(genesis, area)
        self.ledger = Ledger(self.registry)
        self.net = Net(genesis)  # readings are signed under the genesis chain id
        self.last_cert = b""

    def submit(self, readings) -> None:
        batch = make_batch(key("meter-operator"), self.registry.chain_id, readings)
        admission = self.ledger.admit(batch, None)
        assert admission.refused is None, admission.refused

    def seal(self) -> tuple[bytes, bytes]:
        """Propose and commit the next height; (checkpoint bytes, seal bytes)."""
        outcome = self.ledger.propose((), self.last_cert)
        cert = certify(self.genesis, self.area, outcome.seal_bytes, outcome.height)
        self.ledger.commit(outcome.seal_bytes)
        self.last_cert = cert
        cp = make_checkpoint(self.area, outcome.seal_bytes, cert, self.ledger.proof, self.registry,
                             self.ledger.state.changes)
        return cp.encode(), outcome.seal_bytes
