"""The settled history of an area chain in its store: the cascade's `History` (stromledger/cascade/history.py)
over the period rows a validator writes per (period, version) anyway.

- A new version arrives with `record` (from SettledState.apply, under the ledger lock) and waits in memory
  until `persist` writes it, in the commit's store transaction: its rows (`period_results`, what exports and
  light proofs read), their leaf index (`period_index`) and the batches it settled (`batch_progress`).
  Writes are O(meter points of the seal's results), whatever the window.
- Reads: one meter point's entry is one indexed blob read (store.period_leaf); a whole period (substitution
  reads the day before, a correction re-summarises its period) is decoded once and kept in a small cache.
- Memory: the unsaved versions of the last commit, `CACHED_PERIODS` decoded periods, and one int per
  period of the window (its latest version).

Thread-safety: readers run under the ledger lock; `persist` runs in a worker thread after the commit and only
drops what it has written, so a reader sees every version either unsaved or on disk.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Mapping

from stromledger.cascade import PeriodResult, PeriodSeal
from stromledger.cascade.rows import entry_rows
from stromledger.cascade.history import Columns, Layout
from stromledger.export.period_data import (
    decode_leaf_item, decode_period_leaves, encode_period_rows_indexed, period_entries,
)
from stromledger.registry import Registry
from stromledger.store import Store


def retention_problem(retain_periods: int, correction_window: int) -> str | None:
    """Why `[history] retain_periods` cannot be used with this correction window, or None: 0 keeps
    everything; otherwise it must outlast the window and the export of the height before (which reads the
    previous versions of what it corrects)."""
    least = correction_window + 2
    if retain_periods and retain_periods < least:
        return (f"[history] retain_periods = {retain_periods} is shorter than the correction window "
                f"({correction_window} periods) + 2: set at least {least}, or 0 to keep every settled version")
    return None


CACHED_PERIODS = 2  # decoded whole periods kept (the day before for substitution, a corrected period)
CACHED_RESULTS = 64
CACHED_LAYOUTS = 64


class StoreHistory:
    def __init__(self, store: Store, registry: Registry, cached_periods: int = CACHED_PERIODS):
        self.store = store
        self.registry_of: Callable[[int], Registry] = lambda period: registry  # the state sets the real one
        self._layouts: dict[int, tuple[Registry, Layout]] = {}  # id(registry version) -> its row layout
        self._period_layouts: OrderedDict[int, Layout] = OrderedDict()  # period -> its layout (recent periods)
        self.cached_periods = cached_periods
        self._unsaved: dict[tuple[int, int], tuple[int, PeriodResult, Mapping[str, tuple]]] = {}
        self._unsaved_batches: dict[bytes, tuple[int, int]] = {}
        self._versions: dict[int, int | None] = {}  # period -> latest version (None: no rows), as read
        self._periods: OrderedDict[tuple[int, int], Mapping[str, tuple]] = OrderedDict()
        self._results: OrderedDict[tuple[int, int], PeriodResult] = OrderedDict()
        self.reads = {"entry": 0, "period": 0, "result": 0}  # store reads, for benchmarks and tests

    def use_registry(self, registry_of: Callable[[int], Registry]) -> None:
        self.registry_of = registry_of

    def layout(self, period: int) -> Layout:
        """The row layout of `period`: its registry version's meter points in registry order (a period's rows
        and their leaf index are written in that order)."""
        # A settled period's registry version never changes (changes take effect only after the height that
        # commits them), so its layout is remembered per period: point reads stay O(1) however many changes.
        layout = self._period_layouts.get(period)
        if layout is not None:
            return layout
        reg = self.registry_of(period)
        got = self._layouts.get(id(reg))
        if got is None:
            if len(self._layouts) >= 8:
                self._layouts.clear()
            got = self._layouts[id(reg)] = (reg, Layout(reg.malo_order))  # holding reg keeps its id unique
        _remember(self._period_layouts, period, got[1], CACHED_LAYOUTS)
        return got[1]

    # -- reads -------------------------------------------------------------------------------------------

    def _version(self, period: int) -> int | None:
        if period not in self._versions:
            self._versions[period] = self.store.latest_version(period)
        return self._versions[period]

    def _latest(self, period: int) -> tuple[tuple[int, int] | None, tuple | None]:
        """((period, latest version), its unsaved (height, result, entries) if not written yet); (None, None)
        if the period has no version."""
        version = self._version(period)
        if version is None:
            return None, None
        key = (period, version)
        return key, self._unsaved.get(key)

    def entry(self, period: int, malo: str) -> tuple | None:
        key, unsaved = self._latest(period)
        if unsaved is not None:
            return unsaved[2].get(malo)
        if key is None:
            return None
        cached = self._periods.get(key)
        if cached is not None:
            return cached.get(malo)
        position = self.layout(period).index.get(malo)
        if position is None:
            return None
        self.reads["entry"] += 1
        item = self.store.period_leaf(*key, position)
        if item is None:  # rows written before the index existed: read the whole period
            return (self.entries(period) or {}).get(malo)
        return decode_leaf_item(item)

    def entries(self, period: int) -> Mapping[str, tuple] | None:
        key, unsaved = self._latest(period)
        if unsaved is not None:
            return unsaved[2]
        if key is None:
            return None
        cached = self._periods.get(key)
        if cached is None:
            row = self.store.get_period_result(*key)
            if row is None:
                return None
            self.reads["period"] += 1
            # straight into columns (about 115 bytes per meter point), no dict of tuples in between
            layout = self.layout(period)
            cached = Columns.of_rows(layout, period_entries(decode_period_leaves(row.data)[2], layout.order))
        _remember(self._periods, key, cached, self.cached_periods)
        return cached

    def result(self, period: int) -> PeriodResult | None:
        key, unsaved = self._latest(period)
        if unsaved is not None:
            return unsaved[1]
        if key is None:
            return None
        cached = self._results.get(key)
        if cached is None:
            row = self.store.get_period_result(*key)
            commit = None if row is None else self.store.get_commit(row.height)
            if commit is None:
                return None
            self.reads["result"] += 1
            cached = PeriodSeal.decode(commit.value).result(period)
        _remember(self._results, key, cached, CACHED_RESULTS)
        return cached

    def batch(self, digest: bytes) -> tuple[int, int] | None:
        found = self._unsaved_batches.get(digest)
        return found if found is not None else self.store.batch_progress(digest)

    # -- writes ------------------------------------------------------------------------------------------

    def record(self, height: int, result: PeriodResult, entries: Mapping[str, tuple]) -> None:
        self._unsaved[result.period, result.version] = (height, result, entries)
        self._versions[result.period] = result.version

    def record_batches(self, height: int, settled: Mapping[bytes, tuple[int, int]]) -> None:
        self._unsaved_batches.update(settled)

    def forget_before(self, period: int, batches_before: int) -> None:
        for p in [p for p in self._versions if p < period]:
            del self._versions[p]
        for cache in (self._periods, self._results):
            for key in [k for k in cache if k[0] < period]:
                del cache[key]

    def snapshot(self) -> None:
        return None  # the history is the store's

    def persist(self) -> list[tuple[int, int]]:
        """Write the unsaved versions and settled batches; call inside the commit's store transaction, then
        `saved(...)` with what this returned once the transaction committed."""
        unsaved = list(self._unsaved.items())
        for (period, version), (height, _, entries) in unsaved:
            rows = entry_rows(self.registry_of(period), period, entries)
            data, index = encode_period_rows_indexed(period, version, rows)
            self.store.put_period_result(period, version, height, data)
            self.store.put_period_index(period, version, index)
        batches = list(self._unsaved_batches.items())
        if batches:
            self.store.put_batch_progress([(d, through, last) for d, (through, last) in batches])
        return [key for key, _ in unsaved] + [d for d, _ in batches]

    def saved(self, written: list) -> None:
        for key in written:
            if isinstance(key, tuple):
                self._unsaved.pop(key, None)
            else:
                self._unsaved_batches.pop(key, None)

    @property
    def unsaved(self) -> int:
        return len(self._unsaved) + len(self._unsaved_batches)


def _remember(cache: OrderedDict, key, value, limit: int) -> None:
    """Keep `value` as the most recently used of at most `limit` entries."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)
