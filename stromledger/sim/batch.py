"""Many seeded runs, checked, summed up: what `stromledger sim` prints and the seed sweeps in the tests use."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Callable, Iterable, Optional

from .checker import Violation, check
from .runner import SimResult, simulate
from .scenario import SimConfig


@dataclasses.dataclass
class Outcome:
    result: SimResult
    violations: list[Violation]


@dataclasses.dataclass
class Summary:
    runs: int = 0
    heights_expected: int = 0
    heights_decided: int = 0  # (run, height) pairs that every honest node decided
    decision_rounds: list[int] = dataclasses.field(default_factory=list)  # per decided (run, height)
    messages: int = 0
    dropped: int = 0
    evidence: int = 0  # pieces of evidence held by honest nodes
    violations: Counter = dataclasses.field(default_factory=Counter)
    failing_seeds: list[int] = dataclasses.field(default_factory=list)
    examples: list[tuple[int, Violation]] = dataclasses.field(default_factory=list)

    @property
    def rounds_mean(self) -> float:
        return sum(self.decision_rounds) / len(self.decision_rounds) if self.decision_rounds else 0.0

    @property
    def rounds_max(self) -> int:
        return max(self.decision_rounds, default=0)

    def add(self, outcome: Outcome, keep_examples: int = 5) -> None:
        r = outcome.result
        self.runs += 1
        self.heights_expected += r.config.heights
        honest = [n.id for n in r.honest_nodes()]
        rounds: dict[int, int] = {}
        deciders: Counter = Counter()
        for d in r.decisions:
            if d.node in honest:
                deciders[d.height] += 1
                rounds[d.height] = max(rounds.get(d.height, 0), d.round)
        for h, count in sorted(deciders.items()):
            if count >= len(honest):
                self.heights_decided += 1
                self.decision_rounds.append(rounds[h])
        self.messages += r.messages
        self.dropped += r.dropped
        self.evidence += sum(len(r.nodes[i].evidence) for i in honest)
        if outcome.violations:
            self.failing_seeds.append(r.config.seed)
            self.violations.update(v.kind for v in outcome.violations)
            for v in outcome.violations[: max(0, keep_examples - len(self.examples))]:
                self.examples.append((r.config.seed, v))


def run_checked(config: SimConfig) -> Outcome:
    """Simulate one run and check it."""
    result = simulate(config)
    return Outcome(result, check(result))


def run_seeds(base: SimConfig, seeds: Iterable[int],
              progress: Optional[Callable[[Outcome], None]] = None) -> Summary:
    """Run `base` once per seed, checking each run."""
    summary = Summary()
    for seed in seeds:
        outcome = run_checked(dataclasses.replace(base, seed=seed))
        summary.add(outcome)
        if progress is not None:
            progress(outcome)
    return summary
