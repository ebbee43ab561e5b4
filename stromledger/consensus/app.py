"""What consensus needs from the application, and nothing more.

The machine never calls the application: it emits `RequestValue(height, round)` when this validator
proposes, and `ValidateValue(height, round, value)` once per distinct value of a height. The driver calls
the application (it may take its time, e.g. fetch batches first) and feeds the answers back as
`ValueReady(height, round, value)` and `ValueChecked(height, sha256(value), valid)`. An answer that comes
after the propose timeout is too late for that round's prevote (the node prevoted nil), but still counts
for deciding, and the verdict is cached for later rounds.

`Application` is the synchronous shape of that contract, used by the simulator's driver. The settlement
application (the cascade building and re-building PeriodSeals) implements it for the validator node.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Application(Protocol):
    def build_value(self, height: int, round: int) -> bytes:
        """The value this validator proposes at (height, round): for stromledger, the PeriodSeal of the
        period `height`. Deterministic validators return the same bytes in every round."""
        ...

    def validate(self, height: int, value: bytes) -> bool:
        """Whether `value` may be decided at `height`: for stromledger, whether rebuilding the seal from the
        same inputs gives byte-identical bytes. Must be deterministic across honest validators."""
        ...
