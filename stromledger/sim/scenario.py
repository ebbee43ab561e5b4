"""What a simulated run is: its parameters (`SimConfig`) and the faults its seed draws (`FaultPlan`).

Faults happen only in the window [0, heal_at): after it the network delivers every message within the
normal delay, partitions are healed and every crashed validator has restarted. Byzantine equivocators stay
byzantine for the whole run.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Optional

from stromledger.consensus.config import ConsensusConfig

FAULT_KINDS = ("none", "drop", "partition", "crash", "all")
BYZANTINE_MODES = ("split", "both")
STRATEGIES = ("equivocate", "selective-precommit", "hidden-lock", "round-push")  # see stromledger.sim.adversary

# Timeouts for simulated networks of 5-60 ms delay: a round without faults takes ~100-300 ms.
SIM_CONSENSUS = ConsensusConfig(propose_ms=1000, propose_delta_ms=250, prevote_ms=500, prevote_delta_ms=250,
                                precommit_ms=500, precommit_delta_ms=250, resend_ms=600, future_heights=2,
                                commit_window=64)


@dataclasses.dataclass(frozen=True)
class SimConfig:
    seed: int
    validators: int = 4
    byzantine: int = 0  # equivocating validators, each run as two twins sharing one key
    byzantine_mode: Optional[str] = None  # "split" (each twin talks to one half), "both"; None: drawn
    strategy: str = "equivocate"  # what byzantine validators do: twins, or the adversary of sim.adversary
    faults: str = "none"
    heights: int = 6
    first_height: int = 1_994_728
    height_interval_ms: int = 2_000  # height h is due at (h - first_height) * interval; 0: all at once
    value_bytes: int = 256
    reject_every: int = 0  # > 0: about 1 height in this many has a bad round-0 value (RejectingApp)
    # Per mille of new proposals each honest validator judges incomplete (per value) and, independently,
    # untimely (per receipt): the time- and holding-dependent judgements of docs/consensus.md, drawn at random
    picky_permille: int = 0
    consensus: ConsensusConfig = SIM_CONSENSUS
    chain_id: str = "stromledger-sim"
    delay_ms: tuple[int, int] = (5, 60)
    slow_permille: int = 20  # messages that take up to slow_ms longer (reordering), also after healing
    slow_ms: int = 300
    app_ms: tuple[int, int] = (1, 40)  # how long the application takes to build or validate a value
    # > 0: a committee change (registry/committee.py) from height first_height + rotate_at on: validator 0 is
    # replaced by one more honest validator, which follows the chain without signing until then
    rotate_at: int = 0
    # rounds a height may take after healing; None: byzantine + 4, plus picky_permille / 25 (a picky validator
    # refuses honest proposals by chance, so a proposal a quorum takes may need more rounds)
    liveness_rounds: Optional[int] = None

    def __post_init__(self) -> None:
        if self.faults not in FAULT_KINDS:
            raise ValueError(f"faults must be one of {', '.join(FAULT_KINDS)}, got {self.faults!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.byzantine_mode not in (None, *BYZANTINE_MODES):
            raise ValueError(f"byzantine_mode must be one of {', '.join(BYZANTINE_MODES)}")
        if self.validators < 1 or not 0 <= self.byzantine <= self.validators or self.heights < 1:
            raise ValueError("need validators >= 1, 0 <= byzantine <= validators, heights >= 1")
        if self.rotate_at < 0:
            raise ValueError("rotate_at must be 0 (no committee change) or a height offset > 0")

    @property
    def rounds_allowed(self) -> int:
        return self.liveness_rounds if self.liveness_rounds is not None else \
            self.byzantine + 4 + self.picky_permille // 25


@dataclasses.dataclass(frozen=True)
class Crash:
    validator: int
    at: int
    restart_at: int
    replay_wal: bool  # the restarted node replays the messages it had received for its height


@dataclasses.dataclass(frozen=True)
class Partition:
    start: int
    end: int
    side: frozenset[int]  # validator indices on one side; the rest are on the other


@dataclasses.dataclass(frozen=True)
class FaultPlan:
    heal_at: int
    loss_permille: int
    dup_permille: int
    app_slow_permille: int  # application answers that come after the propose timeout
    partitions: tuple[Partition, ...]
    crashes: tuple[Crash, ...]
    byzantine: tuple[int, ...]  # validator indices
    byzantine_mode: str
    half_a: frozenset[int]  # honest validators that the "A" twins talk to in split mode


def draw_plan(config: SimConfig) -> FaultPlan:
    """The faults of a run, drawn from its seed (a stream of its own, apart from the network's)."""
    rng = random.Random(f"stromledger-sim-plan/{config.seed}")
    n = config.validators
    byzantine = tuple(sorted(rng.sample(range(n), config.byzantine)))
    honest = [i for i in range(n) if i not in byzantine]
    shuffled = honest[:]
    rng.shuffle(shuffled)
    half_a = frozenset(shuffled[: (len(shuffled) + 1) // 2])
    mode = config.byzantine_mode or rng.choice(BYZANTINE_MODES)
    kind = config.faults
    span = max(config.height_interval_ms * config.heights, 4_000)
    heal_at = 0 if kind == "none" else rng.randint(2_000, span)
    loss = dup = slow = 0
    partitions: list[Partition] = []
    crashes: list[Crash] = []
    if kind in ("drop", "all"):
        loss, dup, slow = rng.randint(50, 300), rng.randint(0, 50), 20
    if kind in ("partition", "all"):
        for _ in range(rng.randint(1, 2)):
            start = rng.randint(0, heal_at - 1_000)
            side = frozenset(rng.sample(range(n), rng.randint(1, n - 1))) if n > 1 else frozenset()
            partitions.append(Partition(start, rng.randint(start + 500, heal_at), side))
    if kind in ("crash", "all") and honest:
        # A restart without its WAL keeps its lock (from the sign guard) but may lose the locked value:
        # an amnesia fault. Only validators within the fault bound may suffer it; the others replay.
        amnesiac = set(rng.sample(honest, min(len(honest), max(0, (n - 1) // 3 - config.byzantine))))
        for _ in range(rng.randint(1, 3)):
            at = rng.randint(0, heal_at - 500)
            v = rng.choice(honest)
            crashes.append(Crash(v, at, min(heal_at, at + rng.randint(200, 4_000)),
                                 v not in amnesiac or rng.random() < 0.5))
    if config.strategy in ("selective-precommit", "hidden-lock") and kind == "none":
        heal_at = rng.randint(span // 2, span)  # the adversary needs a faulty network to act in
    return FaultPlan(heal_at, loss, dup, slow, tuple(partitions), tuple(crashes), byzantine, mode, half_a)


def round_time(consensus: ConsensusConfig, first_round: int, rounds: int) -> int:
    """The longest that `rounds` rounds from `first_round` take on timeouts alone, in ms."""
    return sum(consensus.propose_timeout(r) + consensus.prevote_timeout(r) + consensus.precommit_timeout(r)
               for r in range(first_round, first_round + rounds))


def height_budget(config: SimConfig, round_at_heal: int) -> int:
    """How long one height may take once the network has healed: `rounds_allowed` rounds from the highest
    round an honest node had reached by then, plus a lagging node's catch-up (its third message of the
    height draws the commit) and the network and application delays."""
    c = config.consensus
    catch_up = c.propose_timeout(round_at_heal + config.rounds_allowed) + (c.answer_every + 1) * c.resend_ms
    delays = 4 * (config.delay_ms[1] + config.slow_ms + config.app_ms[1]) + 20  # + StartHeight skew
    return round_time(c, round_at_heal, config.rounds_allowed) + catch_up + delays
