"""The validator's guards around consensus: what it checks before it signs at start-up, before a message
touches its write-ahead log, and before it answers a peer that is behind.

- `sign_guard_problem`: a validator refuses to sign when its sign guard cannot give its records back, is
  empty while its store holds commits, or is behind its store (a stored certificate carries this
  validator's signature above the guard's last record, as CometBFT's double-sign check looks at recent
  commits). Each of those means the guard was lost or restored from a backup, and signing could then
  contradict what the validator signed before. The operator may override it (`stromledger node run
  --resume-signing-after-restore`), which is logged; the guard's floor is then raised past every
  decided height so that it never signs one again.
- `admit_consensus`: decode and check a consensus message (size, author, proposer, signature) in a
  worker thread, before the WAL sees it.
- `WalBudget`: WAL bytes per height and per author are capped.
- `ReplyLimiter`: one commit answer per (peer, height) per interval, however often a peer replays an old
  message.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

from stromledger.codec import CodecError, decode
from stromledger.consensus.certificate import CommitCertificate
from stromledger.consensus.messages import Commit, Precommit, Prevote, Proposal, author, verify_signature
from stromledger.consensus.signguard import missing_guard_methods
from stromledger.consensus.validators import ValidatorSet

Validators = Union[ValidatorSet, Sequence[bytes], Callable[[int], Union[ValidatorSet, Sequence[bytes]]]]

MAX_VOTE_BYTES = 512  # a vote's encoding is about 170 bytes
WAL_BYTES_PER_HEIGHT = 64 * 1024 * 1024
WAL_BYTES_PER_AUTHOR = 16 * 1024 * 1024  # a few proposals of a large seal, and every vote
CERTIFICATES_CHECKED = 64  # recent stored certificates searched for this validator's signature


class StartRefused(Exception):
    """The validator must not start signing; the message says why and what the operator can do."""


def sign_guard_problem(guard, store, key: bytes, validators: Validators) -> Optional[str]:
    """Why signing with this guard is unsafe, in one line, or None. `validators`: the set of every height, or
    a function height -> that height's set (committee changes)."""
    set_at = validators if callable(validators) else (lambda h: validators)
    missing = missing_guard_methods(guard)
    if missing:
        return f"the sign guard cannot give its records back (it lacks {', '.join(missing)}())"
    last_height = store.last_height()
    if last_height is None:
        return None
    last = guard.last()
    recent = store.commits_from(max(0, last_height - CERTIFICATES_CHECKED + 1), CERTIFICATES_CHECKED)
    if last is None:
        if not any(key in ValidatorSet.of(set_at(c.height)) for c in recent):
            return None  # it only ever followed this chain (not a member at any recent height): nothing signed
        return (f"the sign guard is empty but the store holds commits up to height {last_height}: "
                f"the guard was lost or restored from a backup (or this validator only ever caught up)")
    for c in recent:
        me = ValidatorSet.of(set_at(c.height)).index(key)
        if c.height > last[0] and any(s.validator == me for s in CommitCertificate.decode(c.certificate).signatures):
            return (f"the stored certificate of height {c.height} carries this validator's signature but the "
                    f"sign guard's last record is at height {last[0]}: the guard is behind its store")
    return None


def check_sign_guard(guard, store, key: bytes, validators: Validators, next_height: int, override: bool,
                     log) -> None:
    """Raise StartRefused when `sign_guard_problem` finds one, unless the operator overrode it."""
    problem = sign_guard_problem(guard, store, key, validators)
    if problem is None:
        return
    if not override:
        raise StartRefused(f"refusing to sign: {problem}. If you restored this node from a backup and are sure "
                           f"it signed nothing since, start it once with --resume-signing-after-restore")
    log.warning("SIGN GUARD CHECK OVERRIDDEN by the operator (--resume-signing-after-restore): %s; "
                "nothing below height %d will be signed", problem, next_height)
    if not missing_guard_methods(guard):
        guard.prune_below(next_height)  # raises the floor: decided heights are never signed again


Admitted = Union[Proposal, Prevote, Precommit, Commit]


def admit_consensus(payload: bytes, validators: Validators, chain_id: str) -> tuple[Optional[Admitted], str, str]:
    """Decode and check a consensus payload: (message, "", "") or (None, reason, detail). Runs in a worker
    thread: a decode bomb or a signature check never stalls the event loop. `validators`: the set of every
    height, or a function height -> that height's set (each message is judged by its height's)."""
    try:
        msg = decode(payload)
    except CodecError as e:
        return None, e.reason, str(e)
    if isinstance(msg, Commit):
        return msg, "", ""  # the machine verifies its certificate
    if not isinstance(msg, (Proposal, Prevote, Precommit)):
        return None, "unexpected", type(msg).__name__
    kind = type(msg).__name__
    if not isinstance(msg, Proposal) and len(payload) > MAX_VOTE_BYTES:
        return None, "oversized", f"a {kind} of {len(payload)} bytes (at most {MAX_VOTE_BYTES})"
    if callable(validators):
        validators = ValidatorSet.of(validators(msg.height))
    index = validators.index(author(msg))
    if index is None:
        return None, "unknown_validator", f"{kind} signed by a key outside the validator set of height {msg.height}"
    if isinstance(msg, Proposal):
        if index != validators.proposer_index(msg.height, msg.round):
            return None, "wrong_proposer", f"validator {index} is not the proposer of round {msg.round}"
        if msg.pol_round >= msg.round:
            return None, "bad_pol_round", f"pol_round {msg.pol_round} is not below round {msg.round}"
    if not verify_signature(msg, chain_id):
        return None, "bad_signature", f"{kind} of height {msg.height} round {msg.round} from validator {index}"
    return msg, "", ""


class WalBudget:
    """How many bytes of consensus messages the WAL takes for one height, in all and per author."""

    def __init__(self, per_height: int = WAL_BYTES_PER_HEIGHT, per_author: int = WAL_BYTES_PER_AUTHOR):
        self.per_height, self.per_author = per_height, per_author
        self.height = -1
        self.total = 0
        self.by_author: dict[bytes, int] = {}

    def admit(self, height: int, who: bytes, size: int) -> bool:
        """Whether a message of `size` bytes by `who` at `height` may be logged (and count it if so)."""
        if height != self.height:
            self.height, self.total, self.by_author = height, 0, {}
        mine = self.by_author.get(who, 0)
        if self.total + size > self.per_height or mine + size > self.per_author:
            return False
        self.total += size
        self.by_author[who] = mine + size
        return True


class ReplyLimiter:
    """At most one commit answer per (peer, height) per `interval` seconds: a peer that replays an old
    message 300 times gets one answer, not 100 (each up to a few MB)."""

    def __init__(self, interval: float, capacity: int = 4096):
        self.interval, self.capacity = interval, capacity
        self._last: dict[tuple[bytes, int], float] = {}

    def allow(self, peer: bytes, height: int, now: float) -> bool:
        key = (peer, height)
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        self._last[key] = now
        if len(self._last) > self.capacity:  # forget the oldest answers
            for k in sorted(self._last, key=self._last.__getitem__)[: self.capacity // 2]:
                del self._last[k]
        return True
