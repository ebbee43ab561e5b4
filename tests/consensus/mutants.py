"""Named mutants of the consensus machine, applied by the test harness (pytest's monkeypatch), never by a
flag in production code. Each breaks one rule that safety, liveness or accountability rests on; the
simulator or a scripted scenario must notice every one (tests/consensus/test_consensus_mutants.py)."""

from __future__ import annotations

import dataclasses

from stromledger.consensus import MemorySignGuard, Precommit
from stromledger.consensus.machine import Consensus
from stromledger.consensus.signguard import PROPOSE, check_record_args
from stromledger.consensus.validators import ValidatorSet


def ignore_lock(mp) -> None:
    """Paper lines 22/28: prevote a proposal whatever the lock."""
    orig = Consensus._prevote_on_proposal

    def mutant(self):
        saved = self._locked_hash, self._locked_round
        self._locked_hash, self._locked_round = None, -1
        try:
            return orig(self)
        finally:
            self._locked_hash, self._locked_round = saved
    mp.setattr(Consensus, "_prevote_on_proposal", mutant)


def ignore_locked_round_le_vr(mp) -> None:
    """Line 28 without `lockedRound <= vr`: a proof-of-lock from a later round no longer unlocks."""
    orig = Consensus._prevote_on_proposal

    def mutant(self):
        held = self._proposals.get(self.round) if self.step == PROPOSE else None
        saved = self._locked_round
        if held is not None and held[0].pol_round >= 0 and self._locked_round >= 0:
            self._locked_round = max(saved, held[0].pol_round + 1)
        try:
            return orig(self)
        finally:
            self._locked_round = saved
    mp.setattr(Consensus, "_prevote_on_proposal", mutant)


def forget_lock_on_restart(mp) -> None:
    """A restarted machine restores its round and votes but not its lock."""
    orig = Consensus._restore

    def mutant(self, records):
        orig(self, records)
        self._locked_hash, self._locked_round = None, -1
        self._valid_hash, self._valid_round = None, -1
    mp.setattr(Consensus, "_restore", mutant)


def skip_on_f(mp) -> None:
    """Line 55 on f instead of f+1 validators in higher rounds."""
    orig = Consensus._skip_rounds

    def mutant(self):
        self.validators.skip -= 1
        try:
            return orig(self)
        finally:
            self.validators.skip += 1
    mp.setattr(Consensus, "_skip_rounds", mutant)


def quorum_off_by_one(mp) -> None:
    """2f instead of 2f+1 for every quorum of the machine."""
    orig = Consensus.__init__

    def mutant(self, *a, **kw):
        orig(self, *a, **kw)
        self.validators = ValidatorSet(self.validators.keys)  # its own copy, so certificates stay strict
        self.validators.quorum -= 1
    mp.setattr(Consensus, "__init__", mutant)


def decide_on_f_plus_1(mp) -> None:
    """Line 49 on f+1 precommits for a value."""
    orig = Consensus._add_vote

    def mutant(self, v, index):
        counted = orig(self, v, index)
        vs = self._precommits.get(v.round)
        if counted and isinstance(v, Precommit) and v.value_hash is not None \
                and vs.count(v.value_hash) == self.validators.skip < self.validators.quorum:
            self._commit_candidates.append((v.round, v.value_hash))
        return counted
    mp.setattr(Consensus, "_add_vote", mutant)


def no_evidence(mp) -> None:
    """Conflicting votes are counted but never turned into evidence."""
    mp.setattr(Consensus, "_record_evidence", lambda self, ev: None)


def guard_records_nothing(mp) -> None:
    """A sign guard that says yes to everything and remembers nothing."""
    def mutant(self, height, round, step, value_hash):
        check_record_args(height, round, step, value_hash)
        return True
    mp.setattr(MemorySignGuard, "check_and_record", mutant)


def judgement_as_validity(mp) -> None:
    """The holding-dependent completeness judgement (docs/consensus.md, "Complete and timely proposals") taken
    as validity: cached per value and applied by every rule, as a time-dependent valid() would be."""
    orig = Consensus._on_verdict

    def mutant(self, event):
        return orig(self, dataclasses.replace(event, valid=event.valid and event.complete, complete=True))
    mp.setattr(Consensus, "_on_verdict", mutant)


MUTANTS = {f.__name__: f for f in (ignore_lock, ignore_locked_round_le_vr, forget_lock_on_restart, skip_on_f,
                                   quorum_off_by_one, decide_on_f_plus_1, no_evidence, guard_records_nothing,
                                   judgement_as_validity)}
