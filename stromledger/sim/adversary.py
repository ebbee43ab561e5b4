"""Byzantine strategies beyond equivocating twins: an adaptive adversary that steers the network and its
validators into the states where the lock rules matter.

`selective-precommit` ("decided here, locked there"), per height, while the network is faulty:

- one honest validator, the victim (drawn per height from the seed), decides: it gets every precommit;
  the other honest validators lock on the same value but see too few precommits to decide (the adversary
  withholds the victim's own precommit from them, as an asynchronous network may, even when re-sent);
- the byzantine validators send their non-nil votes only to the victim and sign nil votes of the same
  round for everyone else (equivocation, so evidence is expected);
- once the victim has decided, its commit answers are withheld (the byzantine validators give none),
  honest proposals of that height are lost, and the byzantine validators vote for whatever is proposed
  (ignoring locks) and, when they propose, offer a fresh value instead of the valid one: only the lock
  keeps the locked validators from deciding it;
- right after the victim decides, the locked validators crash and restart 300 ms later from their sign
  guard and WAL: they must come back locked.

After the network heals, the byzantine validators keep their machine (no lock, fresh values) but route
nothing specially. Within the fault bound every property must hold. Beyond it (F >= n/3) the honest
validators that are not the victim are too few to stop a fresh value, and the checker finds agreement
violations.

`hidden-lock`, "locked here, proof-of-lock there", per height while the network is faulty: the victim
alone sees a polka (its own prevote is withheld from the others, the byzantine validators send it their
non-nil votes and nil ones to everyone else) and locks; then the others lock on another value in a round
whose prevotes the victim does not get in time (the byzantine precommits are nil, so nothing decides);
then the byzantine validators fall silent at that height for good. The height can only decide when the
victim unlocks on the others' newer proof-of-lock (L28: lockedRound <= vr).

`round-push`: the byzantine validators run the same lock-free machine and send, with every prevote, a nil
prevote 8 rounds ahead, for the whole run. Only a machine that skips rounds on f instead of f+1 messages
follows them; beyond the bound (F >= f+1) they push the honest validators from round to round and
liveness fails.
"""

from __future__ import annotations

import random
from typing import Callable, Optional

from stromledger.consensus import Consensus, Precommit, Prevote, Proposal, sign_vote
from stromledger.crypto import SigningKey

from .scenario import Crash

RESTART_MS = 300  # how long the adversary's crashed validator stays down
PUSH_ROUNDS = 8  # how far ahead a byzantine validator's extra nil prevote claims to be


class LockBreaker(Consensus):
    """A byzantine validator's machine: it never keeps a lock or a valid value. As proposer it always asks
    its application for a fresh value, and it prevotes every proposal its application accepts. It never
    decides on precommits (only on a commit an honest validator sends it), so it stays in the height to
    offer its fresh values to the validators that are locked."""

    def _decide_on_precommits(self) -> bool:
        return False

    def _start_round(self, round: int) -> None:
        self._valid_hash, self._valid_round = None, -1
        super()._start_round(round)

    def _prevote_on_proposal(self) -> bool:
        self._locked_hash, self._locked_round = None, -1
        return super()._prevote_on_proposal()


class Adversary:
    """Routes every broadcast (`route`), may withhold commit answers and crash validators (`on_decide`)."""

    def __init__(self, seed: int, honest: list[int], byzantine_keys: dict[bytes, SigningKey], chain_id: str,
                 faulty: Callable[[], bool]):
        self.seed, self.honest, self.byzantine_keys = seed, honest, byzantine_keys
        self.chain_id, self.faulty = chain_id, faulty
        self._signed: dict[tuple, object] = {}
        self._victims: dict[int, int] = {}

    def victim(self, height: int) -> Optional[int]:
        """The honest validator this height's attack singles out, drawn from the seed."""
        if not self.honest:
            return None
        if height not in self._victims:
            self._victims[height] = random.Random(f"stromledger-sim-victim/{self.seed}/{height}").choice(self.honest)
        return self._victims[height]

    def byzantine_key(self, msg) -> Optional[SigningKey]:
        return self.byzantine_keys.get(getattr(msg, "validator", None) or getattr(msg, "proposer", None))

    def on_decide(self, validator: int, height: int, round: int, now: int) -> list[Crash]:
        return []

    def commit_allowed(self, sender: int, sender_honest: bool, height: int) -> bool:
        return sender_honest  # byzantine validators never help a lagging validator

    def route(self, sender_validator: int, sender_honest: bool, msg, target_validator: int) -> list:
        return [msg]

    def _nil(self, key: SigningKey, kind: type, height: int, round: int):
        k = (key.public, kind, height, round)
        if k not in self._signed:
            self._signed[k] = sign_vote(kind, key, self.chain_id, height, round, None)
        return self._signed[k]


class RoundPush(Adversary):
    """`round-push` (see the module)."""

    def route(self, sender_validator: int, sender_honest: bool, msg, target_validator: int) -> list:
        key = self.byzantine_key(msg)
        if key is None or not isinstance(msg, Prevote):
            return [msg]
        return [msg, self._nil(key, Prevote, msg.height, msg.round + PUSH_ROUNDS)]


class SelectivePrecommit(Adversary):
    """The network and the byzantine validators' routing for `selective-precommit` (see the module)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.decided: dict[int, int] = {}  # height -> the round in which the victim decided it

    def on_decide(self, validator: int, height: int, round: int, now: int) -> list[Crash]:
        """Note the victim's decision; then crash the locked validators for a moment (each restarts from
        its sign guard and WAL), so that what they restore of their lock is put to the test."""
        if validator != self.victim(height) or height in self.decided:
            return []
        self.decided[height] = round
        if not self.faulty():
            return []
        locked = [v for v in self.honest if v != validator]
        return [Crash(v, now + 1 + i, now + RESTART_MS + i, replay_wal=True) for i, v in enumerate(locked)]

    def commit_allowed(self, sender: int, sender_honest: bool, height: int) -> bool:
        """The victim's commit answers are lost while the network is faulty; byzantine ones never help."""
        return super().commit_allowed(sender, sender_honest, height) \
            and not (self.faulty() and sender == self.victim(height))

    def route(self, sender_validator: int, sender_honest: bool, msg, target_validator: int) -> list:
        """What `target_validator` receives when `sender_validator` broadcasts `msg`."""
        key = self.byzantine_key(msg)
        out = [msg]
        if not self.faulty():
            return out
        victim = self.victim(msg.height)
        to_victim = target_validator == victim
        decided = self.decided.get(msg.height)
        if decided is not None and sender_honest and isinstance(msg, Proposal) and sender_validator != victim:
            return []  # lost: the next proposer may be a byzantine one
        if to_victim or isinstance(msg, Proposal) or msg.value_hash is None:
            return out
        if decided is not None and msg.round > decided:
            return out  # the rounds after the victim's decision run in the open
        if key is not None:
            out[0] = self._nil(key, type(msg), msg.height, msg.round)  # the others get a nil vote
        elif sender_validator == victim and isinstance(msg, Precommit):
            return []  # withheld: without it the others see too few precommits for the value to decide
        return out



class HiddenLock(Adversary):
    """`hidden-lock` (see the module): the victim locks on a value nobody else saw a polka for, the others
    lock on another one that the victim missed, then the byzantine validators fall silent for that height,
    for good. Only a victim that unlocks on the newer proof-of-lock (L28, lockedRound <= vr) lets the
    height decide."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.victim_lock: dict[int, tuple[int, bytes]] = {}  # height -> (round, value hash) it locked
        self.victim_round: dict[int, int] = {}
        self.others_locked: dict[int, set[int]] = {}  # height -> honest non-victims locked elsewhere
        self.silent: set[int] = set()  # heights at which the byzantine validators say nothing any more

    def _observe(self, sender: int, msg) -> None:
        h = msg.height
        if isinstance(msg, Proposal):
            return
        if sender == self.victim(h):
            self.victim_round[h] = max(self.victim_round.get(h, 0), msg.round)
            if isinstance(msg, Precommit) and msg.value_hash is not None and self.faulty():
                self.victim_lock.setdefault(h, (msg.round, msg.value_hash))
        elif h in self.victim_lock and isinstance(msg, Precommit) and msg.value_hash is not None \
                and msg.value_hash != self.victim_lock[h][1] and sender in self.honest:
            others = self.others_locked.setdefault(h, set())
            others.add(sender)
            if len(others) == len(self.honest) - 1:
                self.silent.add(h)

    def route(self, sender_validator: int, sender_honest: bool, msg, target_validator: int) -> list:
        self._observe(sender_validator, msg)
        h = msg.height
        key = None if sender_honest else self.byzantine_key(msg)  # relays by honest nodes pass unchanged
        if not sender_honest and h in self.silent:
            return []  # silent for good: the honest validators must decide this height without them
        if not self.faulty() or h in self.silent:
            return [msg]
        victim = self.victim(h)
        non_nil_vote = not isinstance(msg, Proposal) and msg.value_hash is not None
        if h not in self.victim_lock:  # phase 1: only the victim sees the polka
            if key is not None and non_nil_vote and target_validator != victim:
                return [self._nil(key, type(msg), h, msg.round)]
            if sender_validator == victim and isinstance(msg, Prevote) and non_nil_vote \
                    and target_validator != victim:
                return []
            return [msg]
        # phase 2: the others lock on another value in a round the victim misses; nothing decides it
        if key is not None and isinstance(msg, Precommit) and non_nil_vote:
            return [self._nil(key, Precommit, h, msg.round)]
        if target_validator == victim and isinstance(msg, Prevote) and non_nil_vote \
                and msg.round > self.victim_lock[h][0] and msg.round >= self.victim_round.get(h, 0):
            return []
        return [msg]


ADVERSARIES = {"selective-precommit": SelectivePrecommit, "round-push": RoundPush, "hidden-lock": HiddenLock}
