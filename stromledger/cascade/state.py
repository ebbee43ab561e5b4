"""The settled state: what a node must remember from committed seals to build the next one.

In memory, bounded by the meter points (not by the correction window):
- `last`: every meter point's entry (rows.VER .. rows.RSIG) in the last committed period (`height`), as
  columns indexed by registry position (history.Columns): substitution reads it for the next period;
- `baseline[malo_id]`: the last register reading (period, 1.8.0, 2.8.0) of periods that left the window;
- `batches[digest]`: (settled through height, last period in the batch) for batches listed by a seal that
  still hold something for a later period;
- `conflicts[period]`: conflicting readings already reported as evidence, so none is reported twice;
- `start`: the first period of the window (what a later seal may still correct, plus the last period);
- `changes`: every committed registry change, in (effective period, digest) order: with the registry they
  give the registry version of any period (registry/changes.py). Never pruned (master data is small).

Every committed version of every period in the window, the latest PeriodResults and the fully settled batches
are read through `history` (history.History): a node's store (nodes/history.py), or a `MemoryHistory`.
The state asks the history only about periods in [start, height], so both give the same seals.

`encode()` gives canonical bytes (msgpack, everything sorted) for a node to persist: the in-memory part, plus
the history when it is a MemoryHistory; `decode` restores it (a store-backed state needs its history).
The state can also be recomputed from the committed seals and their batches (ledger.replay).
"""

from __future__ import annotations

from typing import Iterator, Mapping

import msgpack

from stromledger.registry import Registry, decode_change, registry_at, with_changes
from stromledger.registry.changes import AnyChange

from .checks import correctable_from
from .history import Columns, History, Layout, MemoryHistory
from .messages import PeriodResult
from .rows import REG, REXP, RIMP, RVER, MeterRow, entry_rows

STATE_FORMAT = "stromledger/state/2"
ZERO_HASH = bytes(32)


class StateError(ValueError):
    pass


class SettledState:
    __slots__ = ("registry_hash", "height", "seal_hash", "start", "floor", "last", "baseline", "batches", "conflicts",
                 "history", "_layout", "changes")

    def __init__(self, registry_hash: bytes, history: History | None = None):
        self.registry_hash = registry_hash
        self.height: int | None = None  # the last committed height
        self.seal_hash = ZERO_HASH  # hash of the last committed seal
        self.start: int | None = None  # the first period the window keeps (None before the first commit)
        self.floor = 0  # the first period the next seal may correct: batches ending before it are forgotten
        self.last: Columns | None = None  # the entries of period `height`
        self.baseline: dict[str, tuple[int, int, int]] = {}
        self.batches: dict[bytes, tuple[int, int]] = {}
        self.conflicts: dict[int, set[tuple]] = {}
        self.history: History = history if history is not None else MemoryHistory()
        self._layout: Layout | None = None
        self.changes: tuple[AnyChange, ...] = ()  # any kind (registry/changes.py CHANGE_TYPES)

    @classmethod
    def genesis(cls, registry: Registry, history: History | None = None) -> SettledState:
        s = cls(registry.hash, history)
        s.use_registry(registry)
        return s

    def use_registry(self, registry: Registry) -> None:
        """Tell the history how to find each period's registry version (it follows the committed changes)."""
        self.history.use_registry(lambda period: registry_at(registry, period, self.changes))

    def next_height(self, registry: Registry) -> int:
        return registry.genesis_period if self.height is None else self.height + 1

    # -- reading the window ------------------------------------------------------------------------------

    def kept(self, period: int) -> bool:
        """Is `period` in the window (a seal may read or correct it)?"""
        return self.height is not None and self.start <= period <= self.height

    def entry(self, period: int, malo: str) -> tuple | None:
        """The meter point's settled entry in `period`, None if the period is not kept."""
        if not self.kept(period):
            return None
        if period == self.height:
            return self.last.get(malo)
        return self.history.entry(period, malo)

    def period_entries(self, period: int) -> Mapping[str, tuple]:
        """Every meter point's settled entry in `period` (KeyError if the period is not kept)."""
        if self.kept(period):
            found = self.last if period == self.height else self.history.entries(period)
            if found is not None:
                return found
        raise KeyError(f"period {period} is not in the settled window")

    def result(self, period: int) -> PeriodResult | None:
        return self.history.result(period) if self.kept(period) else None

    def batch_progress(self, digest: bytes) -> tuple[int, int] | None:
        """(settled through height, last period) of a batch a committed seal listed and the window still holds."""
        got = self.batches.get(digest)
        if got is None:
            got = self.history.batch(digest)
            if got is not None and got[1] < self.floor:
                return None
        return got

    def settled_through(self, digest: bytes) -> int:
        """The height that last settled something of the batch, -1 if none did."""
        got = self.batch_progress(digest)
        return -1 if got is None else got[0]

    def rows(self, registry: Registry, period: int) -> Iterator[MeterRow]:
        """The rows of the latest committed result of `period` (which must still be in the window)."""
        return entry_rows(self.registry_at(registry, period), period, self.period_entries(period))

    def registry_at(self, registry: Registry, period: int) -> Registry:
        """The registry version of `period` under the committed changes."""
        return registry_at(registry, period, self.changes)

    @property
    def entries(self) -> _Window:
        """period -> entries, for every kept period (read-only; reads the history)."""
        return _Window(self)

    @property
    def results(self) -> _Results:
        """period -> latest PeriodResult, for every kept period (read-only; reads the history)."""
        return _Results(self)

    # -- applying a committed seal -----------------------------------------------------------------------

    def apply(self, registry: Registry, outcome) -> None:
        """Apply the outcome of building or validating the seal that consensus committed (settle.Outcome)."""
        seal = outcome.seal
        if seal.height != self.next_height(registry) or seal.previous != self.seal_hash:
            raise StateError(f"seal for height {seal.height} does not follow height {self.height}")
        h = seal.height
        for r in seal.results:
            self.history.record(h, r, outcome.versions[r.period])
        settled = {}
        for digest, progress in outcome.progress.items():
            if progress[0] >= progress[1]:
                settled[digest] = progress  # nothing left in it for a later seal
                self.batches.pop(digest, None)
            else:
                self.batches[digest] = progress
        self.history.record_batches(h, settled)
        for period, keys in outcome.conflicts.items():
            self.conflicts.setdefault(period, set()).update(keys)
        if outcome.registry_changes:
            self.changes = with_changes(self.changes, outcome.registry_changes)
        # changes take effect from a later period, never retroactively: `h` settled under its own version
        self.last = Columns(self._layout_of(self.registry_at(registry, h)), outcome.changes[h])
        self.height = h
        self.seal_hash = outcome.seal_hash
        if self.start is None:
            self.start = h
        self._prune(registry)

    def _layout_of(self, registry: Registry) -> Layout:
        if self._layout is None or self._layout.order != registry.malo_order:
            self._layout = Layout(registry.malo_order)
        return self._layout

    def _prune(self, registry: Registry) -> None:
        """Forget what no later seal can change: periods before the next correction window (keeping the last
        period, which substitution reads), their register readings folded into `baseline`."""
        keep = min(correctable_from(registry, self.height + 1), self.height)
        for period in range(self.start, keep):
            for malo, e in (self.history.entries(period) or {}).items():
                if e[RVER]:
                    if e[REG]:
                        self.baseline[malo] = (period, e[RIMP], e[REXP])
                    else:
                        self.baseline.pop(malo, None)  # an interval reading breaks the register chain
            self.conflicts.pop(period, None)
        if keep > self.start:
            self.start = keep
        lo = self.floor = correctable_from(registry, self.height + 1)
        self.history.forget_before(self.start, lo)
        for digest in [d for d, (_, last) in self.batches.items() if last < lo]:
            del self.batches[digest]

    def restore_last(self, registry: Registry) -> None:
        """Rebuild `last` from the history (after `decode` with a store-backed history)."""
        if self.height is not None:
            found = self.history.entries(self.height)
            if found is None:
                raise StateError(f"the history holds no rows of the last committed period {self.height}")
            layout = self._layout_of(self.registry_at(registry, self.height))
            same = isinstance(found, Columns) and found.layout.order == layout.order
            self.last = found if same else Columns(layout, found)

    # -- canonical bytes ---------------------------------------------------------------------------------

    def encode(self) -> bytes:
        # the committed changes are appended only when there are any: states without them keep their bytes
        changes = [[c.encode() for c in self.changes]] if self.changes else []
        return msgpack.packb([
            STATE_FORMAT,
            self.registry_hash,
            self.height,
            self.seal_hash,
            self.start,
            self.floor,
            [[m, *self.baseline[m]] for m in sorted(self.baseline)],
            [[d, *self.batches[d]] for d in sorted(self.batches)],
            [[p, sorted(list(k) for k in self.conflicts[p])] for p in sorted(self.conflicts) if self.conflicts[p]],
            self.history.snapshot(),
            *changes,
        ], use_bin_type=True)

    @staticmethod
    def changes_in(data: bytes) -> tuple[AnyChange, ...]:
        """The committed registry changes in `encode()` bytes, without restoring the state (whose history may
        be in a store). Raises StateError on bytes that are not a settled state."""
        try:
            # Only the format and the changes are read; the other fields (the baseline of every meter point,
            # ...) are skipped without building their objects.
            u = msgpack.Unpacker(raw=False, use_list=True, strict_map_key=True, max_map_len=0, max_ext_len=0,
                                 max_buffer_size=max(len(data), 1))
            u.feed(data)
            n = u.read_array_header()
            if n not in (10, 11) or u.unpack() != STATE_FORMAT:
                raise StateError("not a settled state of this format")
            for _ in range(9):
                u.skip()
            changes = tuple(decode_change(c) for c in u.unpack()) if n == 11 else ()
            try:
                u.skip()
            except msgpack.OutOfData:
                return changes
            raise StateError("not a settled state: extra data after it")
        except StateError:
            raise
        except Exception as e:  # any shape error in foreign bytes
            raise StateError(f"not a settled state: {e}") from None

    @classmethod
    def decode(cls, data: bytes, history: History | None = None,
               registry: Registry | None = None) -> SettledState:
        """Restore a state from `encode()` bytes. A state whose history lives in a store needs that history
        (and the registry, to rebuild `last` from it); a MemoryHistory comes with the bytes."""
        try:
            obj = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True, max_map_len=0,
                                  max_ext_len=0)
            changes = obj.pop() if len(obj) == 11 else []
            fmt, registry_hash, height, seal_hash, start, floor, baseline, batches, conflicts, window = obj
            if fmt != STATE_FORMAT:
                raise StateError(f"unknown state format {fmt!r}")
            if window is None and history is None:
                raise StateError("this state's history is in a node store: decode it with that store's history")
            s = cls(registry_hash, history if window is None else MemoryHistory.from_snapshot(window))
            s.height = height
            s.seal_hash = seal_hash
            s.start = start
            s.floor = floor
            s.baseline = {m: (p, i, e) for m, p, i, e in baseline}
            s.batches = {d: (pt, last) for d, pt, last in batches}
            s.conflicts = {p: {tuple(k) for k in keys} for p, keys in conflicts}
            s.changes = tuple(decode_change(c) for c in changes)
        except StateError:
            raise
        except Exception as e:  # any shape error in foreign bytes
            raise StateError(f"not a settled state: {e}") from None
        if s.encode() != bytes(data):
            raise StateError("settled state bytes are not canonical")
        if height is not None:
            if window is not None:
                found = s.history.entries(height)
                if found is None:
                    raise StateError(f"the state holds no rows of its last period {height}")
                s.last = Columns(Layout(tuple(sorted(found))), found)
            elif registry is not None:
                s.use_registry(registry)
                s.restore_last(registry)
            else:
                raise StateError("a store-backed state needs the registry to restore its last period")
        return s

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SettledState) and self.encode() == other.encode() and \
            dict(self.last or {}) == dict(other.last or {})

    def __repr__(self) -> str:
        return f"SettledState(height={self.height}, window={self.start}..{self.height})"


class _Window(Mapping[int, Mapping[str, tuple]]):
    """The kept periods' entries as a read-only mapping (tests, benchmarks, tools)."""

    def __init__(self, state: SettledState):
        self._s = state

    def __getitem__(self, period: int) -> Mapping[str, tuple]:
        return self._s.period_entries(period)

    def __iter__(self) -> Iterator[int]:
        s = self._s
        return iter(()) if s.height is None else iter(range(s.start, s.height + 1))

    def __len__(self) -> int:
        s = self._s
        return 0 if s.height is None else s.height + 1 - s.start

    def __contains__(self, period: object) -> bool:
        return isinstance(period, int) and self._s.kept(period)


class _Results(Mapping[int, PeriodResult]):
    def __init__(self, state: SettledState):
        self._s = state

    def __getitem__(self, period: int) -> PeriodResult:
        r = self._s.result(period)
        if r is None:
            raise KeyError(period)
        return r

    def __iter__(self) -> Iterator[int]:
        return iter(p for p in _Window(self._s) if self._s.result(p) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)
