"""The settled state: what a node must remember from committed seals to build the next one.

Kept compact, as dicts of tuples and ints:
- `entries[period][malo_id]`: the settled entry tuple (rows.VER .. rows.RSIG) of every meter point, for the
  periods a later seal may still correct (the correction window) and the last period (for substitution);
- `results[period]`: the latest PeriodResult of those periods (its version; its schedules are reused);
- `baseline[malo_id]`: the last register reading (period, 1.8.0, 2.8.0) of periods that left the window;
- `batches[digest]`: (settled through height, last period in the batch) for batches still relevant;
- `conflicts[period]`: conflicting readings already reported as evidence, so none is reported twice;
- `changes`: every committed registry change, in (effective period, digest) order: with the registry they
  give the registry version of any period (registry/changes.py). Never pruned (master data is small).

`encode()` gives canonical bytes (msgpack, everything sorted) for a node to persist; `decode` restores it.
The state can also be recomputed from the committed seals and their batches (ledger.replay).
"""

from __future__ import annotations

from typing import Iterator

import msgpack

from stromledger.registry import Registry, RegistryChange, registry_at, with_changes

from .checks import correctable_from
from .messages import PeriodResult
from .rows import REG, REXP, RIMP, RVER, MeterRow, entry_rows

STATE_FORMAT = "stromledger/state/1"
ZERO_HASH = bytes(32)


class StateError(ValueError):
    pass


class SettledState:
    __slots__ = ("registry_hash", "height", "seal_hash", "entries", "results", "baseline", "batches", "conflicts",
                 "changes")

    def __init__(self, registry_hash: bytes):
        self.registry_hash = registry_hash
        self.height: int | None = None  # the last committed height
        self.seal_hash = ZERO_HASH  # hash of the last committed seal
        self.entries: dict[int, dict[str, tuple]] = {}
        self.results: dict[int, PeriodResult] = {}
        self.baseline: dict[str, tuple[int, int, int]] = {}
        self.batches: dict[bytes, tuple[int, int]] = {}
        self.conflicts: dict[int, set[tuple]] = {}
        self.changes: tuple[RegistryChange, ...] = ()

    @classmethod
    def genesis(cls, registry: Registry) -> SettledState:
        return cls(registry.hash)

    def next_height(self, registry: Registry) -> int:
        return registry.genesis_period if self.height is None else self.height + 1

    def rows(self, registry: Registry, period: int) -> Iterator[MeterRow]:
        """The rows of the latest committed result of `period` (which must still be in the window)."""
        if period not in self.entries:
            raise KeyError(f"period {period} is not in the settled window")
        return entry_rows(self.registry_at(registry, period), period, self.entries[period])

    def registry_at(self, registry: Registry, period: int) -> Registry:
        """The registry version of `period` under the committed changes."""
        return registry_at(registry, period, self.changes)

    # -- applying a committed seal -----------------------------------------------------------------------

    def apply(self, registry: Registry, outcome) -> None:
        """Apply the outcome of building or validating the seal that consensus committed (settle.Outcome)."""
        seal = outcome.seal
        if seal.height != self.next_height(registry) or seal.previous != self.seal_hash:
            raise StateError(f"seal for height {seal.height} does not follow height {self.height}")
        h = seal.height
        for period, changes in outcome.changes.items():
            if period == h:
                self.entries[h] = dict(changes)  # the state never shares a dict with an outcome
            else:
                self.entries[period].update(changes)
        for r in seal.results:
            self.results[r.period] = r
        self.batches.update(outcome.progress)
        for period, keys in outcome.conflicts.items():
            self.conflicts.setdefault(period, set()).update(keys)
        if outcome.registry_changes:
            self.changes = with_changes(self.changes, outcome.registry_changes)
        self.height = h
        self.seal_hash = outcome.seal_hash
        self._prune(registry)

    def _prune(self, registry: Registry) -> None:
        """Forget what no later seal can change: periods before the next correction window (keeping the last
        period, which substitution reads), their register readings folded into `baseline`."""
        lo = correctable_from(registry, self.height + 1)
        keep = min(lo, self.height)
        for period in sorted(p for p in self.entries if p < keep):
            for malo, e in self.entries.pop(period).items():
                if e[RVER]:
                    if e[REG]:
                        self.baseline[malo] = (period, e[RIMP], e[REXP])
                    else:
                        self.baseline.pop(malo, None)  # an interval reading breaks the register chain
            self.results.pop(period, None)
            self.conflicts.pop(period, None)
        for digest in [d for d, (_, last) in self.batches.items() if last < lo]:
            del self.batches[digest]

    # -- canonical bytes ---------------------------------------------------------------------------------

    def encode(self) -> bytes:
        # the committed changes are appended only when there are any: states without them keep their bytes
        changes = [[c.encode() for c in self.changes]] if self.changes else []
        return msgpack.packb([
            STATE_FORMAT,
            self.registry_hash,
            self.height,
            self.seal_hash,
            [[p, [[m, *self.entries[p][m]] for m in sorted(self.entries[p])]] for p in sorted(self.entries)],
            [[p, self.results[p].to_wire()] for p in sorted(self.results)],
            [[m, *self.baseline[m]] for m in sorted(self.baseline)],
            [[d, *self.batches[d]] for d in sorted(self.batches)],
            [[p, sorted(list(k) for k in self.conflicts[p])] for p in sorted(self.conflicts) if self.conflicts[p]],
            *changes,
        ], use_bin_type=True)

    @classmethod
    def decode(cls, data: bytes) -> SettledState:
        try:
            obj = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True, max_map_len=0,
                                  max_ext_len=0)
            changes = obj.pop() if len(obj) == 10 else []
            fmt, registry_hash, height, seal_hash, entries, results, baseline, batches, conflicts = obj
            if fmt != STATE_FORMAT:
                raise StateError(f"unknown state format {fmt!r}")
            s = cls(registry_hash)
            s.height = height
            s.seal_hash = seal_hash
            s.entries = {p: {row[0]: tuple(row[1:]) for row in rows} for p, rows in entries}
            s.results = {p: PeriodResult.from_wire(wire) for p, wire in results}
            s.baseline = {m: (p, i, e) for m, p, i, e in baseline}
            s.batches = {d: (pt, last) for d, pt, last in batches}
            s.conflicts = {p: {tuple(k) for k in keys} for p, keys in conflicts}
            s.changes = tuple(RegistryChange.decode(c) for c in changes)
        except StateError:
            raise
        except Exception as e:  # any shape error in foreign bytes
            raise StateError(f"not a settled state: {e}") from None
        if s.encode() != bytes(data):
            raise StateError("settled state bytes are not canonical")
        return s

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SettledState) and self.encode() == other.encode()

    def __repr__(self) -> str:
        return f"SettledState(height={self.height}, periods={sorted(self.entries)})"

