"""Tendermint BFT consensus, sans-I/O: `Consensus.handle(event) -> list[action]`. See docs/consensus.md."""

from .app import Application
from .certificate import CertificateError, build_certificate, certificate_holds, verify_certificate
from .config import ConsensusConfig
from .events import (Action, Broadcast, CommitReceived, Decide, Event, EvidenceFound, ProposalReceived, Rejected,
                     RequestValue, ScheduleTimeout, SendCommit, StartHeight, TimeoutFired, TimeoutKind,
                     ValidateValue, ValueChecked, ValueReady, VoteReceived, event_for)
from .evidence import DuplicateVoteEvidence, EvidenceError, make_evidence, verify_evidence
from .machine import Consensus
from .messages import (Commit, CommitCertificate, CommitSig, Precommit, Prevote, Proposal, sign_proposal, sign_vote,
                       value_hash, verify_signature)
from .signguard import MemorySignGuard, SignGuard, SignRecord, Step
from .validators import ValidatorSet

__all__ = [
    "Action", "Application", "Broadcast", "CertificateError", "Commit", "CommitCertificate", "CommitReceived",
    "CommitSig", "Consensus", "ConsensusConfig", "Decide", "DuplicateVoteEvidence", "Event", "EvidenceError",
    "EvidenceFound", "MemorySignGuard", "Precommit", "Prevote", "Proposal", "ProposalReceived", "Rejected",
    "RequestValue", "ScheduleTimeout", "SendCommit", "SignGuard", "SignRecord", "StartHeight", "Step",
    "TimeoutFired", "TimeoutKind", "ValidateValue", "ValidatorSet", "ValueChecked", "ValueReady", "VoteReceived",
    "build_certificate", "certificate_holds", "event_for", "make_evidence", "sign_proposal", "sign_vote", "value_hash",
    "verify_certificate", "verify_evidence", "verify_signature",
]
