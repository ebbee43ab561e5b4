"""Settled history: every committed version of every period, as the cascade reads it.

The settled state (state.py) keeps in memory only what the next seal needs from every meter point: its entry
in the last committed period (`Columns`, one array per entry field, indexed by registry position). Earlier
periods of the correction window are read through `History`, which a node implements over its store
(nodes/history.py: the period rows it writes per (period, version) anyway, with a leaf index for point
reads), so memory does not grow with the window. `MemoryHistory` keeps the window in dicts: for the
simulator, the pure tests, replays and the network chain (whose periods hold no meter points).

The state asks only about periods inside its window and tells the history every new version it commits;
the history never decides anything, so a seal is the same whichever implementation a node uses.
"""

from __future__ import annotations

from array import array
from typing import Callable, Iterable, Iterator, Mapping, Protocol

from stromledger.registry import Registry

from .messages import PeriodResult

SIG_BYTES = 64  # an Ed25519 signature: a settled reading's, or b"" when none was settled


class History(Protocol):
    def entry(self, period: int, malo: str) -> tuple | None:
        """The meter point's entry in the latest version of `period` (None if the period has none)."""

    def entries(self, period: int) -> Mapping[str, tuple] | None:
        """The latest version of `period`, every meter point (None if the period has none)."""

    def result(self, period: int) -> PeriodResult | None:
        """The latest PeriodResult of `period`."""

    def batch(self, digest: bytes) -> tuple[int, int] | None:
        """(height that settled it last, last period in it) of a batch with nothing left to settle."""

    def record(self, height: int, result: PeriodResult, entries: Mapping[str, tuple]) -> None:
        """The commit at `height` settled a new version of `result.period`: `entries` holds every meter point."""

    def record_batches(self, height: int, settled: Mapping[bytes, tuple[int, int]]) -> None:
        """Batches the commit at `height` settled completely."""

    def forget_before(self, period: int, batches_before: int) -> None:
        """No seal asks about periods before `period`, nor about batches whose last period is before
        `batches_before`, any more (a store keeps them on disk for exports)."""

    def snapshot(self) -> list | None:
        """The history as part of the state's canonical bytes, or None when it lives elsewhere (a store)."""

    def use_registry(self, registry_of: Callable[[int], Registry]) -> None:
        """How to find the registry version a period settled under (a store lays its rows out by it)."""


class MemoryHistory:
    """The correction window in dicts; part of the state's snapshot."""

    __slots__ = ("periods", "results", "batches")

    def __init__(self) -> None:
        self.periods: dict[int, dict[str, tuple]] = {}
        self.results: dict[int, PeriodResult] = {}
        self.batches: dict[bytes, tuple[int, int]] = {}

    def use_registry(self, registry_of: Callable[[int], Registry]) -> None:
        return None  # entries are kept by meter point id, whatever the registry version

    def entry(self, period: int, malo: str) -> tuple | None:
        p = self.periods.get(period)
        return None if p is None else p.get(malo)

    def entries(self, period: int) -> Mapping[str, tuple] | None:
        return self.periods.get(period)

    def result(self, period: int) -> PeriodResult | None:
        return self.results.get(period)

    def batch(self, digest: bytes) -> tuple[int, int] | None:
        return self.batches.get(digest)

    def record(self, height: int, result: PeriodResult, entries: Mapping[str, tuple]) -> None:
        self.periods[result.period] = dict(entries)  # never shares a dict with an outcome
        self.results[result.period] = result

    def record_batches(self, height: int, settled: Mapping[bytes, tuple[int, int]]) -> None:
        self.batches.update(settled)

    def forget_before(self, period: int, batches_before: int) -> None:
        for p in [p for p in self.periods if p < period]:
            del self.periods[p]
        for p in [p for p in self.results if p < period]:
            del self.results[p]
        for d in [d for d, (_, last) in self.batches.items() if last < batches_before]:
            del self.batches[d]

    def snapshot(self) -> list:
        return [
            [[p, [[m, *self.periods[p][m]] for m in sorted(self.periods[p])]] for p in sorted(self.periods)],
            [[p, self.results[p].to_wire()] for p in sorted(self.results)],
            [[d, *self.batches[d]] for d in sorted(self.batches)],
        ]

    @classmethod
    def from_snapshot(cls, obj: list) -> MemoryHistory:
        periods, results, batches = obj
        h = cls()
        h.periods = {p: {row[0]: tuple(row[1:]) for row in rows} for p, rows in periods}
        h.results = {p: PeriodResult.from_wire(wire) for p, wire in results}
        h.batches = {d: (through, last) for d, through, last in batches}
        return h


class Layout:
    """Registry positions: the meter points in MaLo-ID order (the order of every period's rows) and the index
    of each. Shared by every `Columns` of one registry."""

    __slots__ = ("order", "index")

    def __init__(self, order: tuple[str, ...]):
        self.order = order
        self.index = {m: i for i, m in enumerate(order)}


class Columns(Mapping[str, tuple]):
    """The settled entries of one period as columns (rows.VER .. rows.RSIG), indexed by registry position:
    about 115 bytes per meter point where a dict of tuples takes about 280."""

    __slots__ = ("layout", "ver", "qual", "imp", "exp", "rver", "reg", "rimp", "rexp", "sigs", "sig_len")

    def __init__(self, layout: Layout, entries: Mapping[str, tuple]):
        self._fill(layout, (entries[m] for m in layout.order))

    @classmethod
    def of_rows(cls, layout: Layout, rows: Iterable[tuple]) -> Columns:
        """From the entries in registry order (e.g. decoded from stored period rows), without a dict."""
        c = cls.__new__(cls)
        c._fill(layout, rows)
        return c

    def _fill(self, layout: Layout, rows: Iterable[tuple]) -> None:
        self.layout = layout
        self.ver, self.imp, self.exp, self.rver, self.rimp, self.rexp = (array("Q") for _ in range(6))
        qual, reg, sig_len, sigs = bytearray(), bytearray(), bytearray(), bytearray()
        ver, imp, exp, rver, rimp, rexp = self.ver, self.imp, self.exp, self.rver, self.rimp, self.rexp
        for e in rows:
            ver.append(e[0])
            qual.append(e[1])
            imp.append(e[2])
            exp.append(e[3])
            rver.append(e[4])
            reg.append(e[5])
            rimp.append(e[6])
            rexp.append(e[7])
            sig = e[8]
            sig_len.append(len(sig))
            sigs += sig.ljust(SIG_BYTES, b"\0")
        if len(ver) != len(layout.order):
            raise ValueError(f"{len(ver)} entries for {len(layout.order)} meter points")
        self.qual, self.reg, self.sig_len, self.sigs = bytes(qual), bytes(reg), bytes(sig_len), bytes(sigs)

    def __getitem__(self, malo: str) -> tuple:
        i = self.layout.index[malo]
        s = i * SIG_BYTES
        return (self.ver[i], self.qual[i], self.imp[i], self.exp[i], self.rver[i], bool(self.reg[i]),
                self.rimp[i], self.rexp[i], self.sigs[s:s + self.sig_len[i]])

    def __iter__(self) -> Iterator[str]:
        return iter(self.layout.order)

    def __len__(self) -> int:
        return len(self.layout.order)

    def __contains__(self, malo: object) -> bool:
        return malo in self.layout.index
