"""Exports of what a node's store holds: `export_committed` (a validator calls it for height h - 1 when
height h commits) and `export_period` (on demand, any committed period and version).

The seal comes from the store's commits. Its certificate is the chain's canonical one: the `last_commit`
carried by the committed seal of the next height, the same on every node (a node's own stored certificate
is whichever quorum of precommits it happened to collect, and may differ from another node's). So a height
is final for export once the next height has committed. The rows of a period result come from the first
of these that has them:
1. the store's `period_results` row, if the node keeps the rows there (`period_data.encode_period_rows`);
2. the node's latest settled-state snapshot, if it holds its history (a validator's history is the store's
   period rows, case 1) and the period's latest version there is the one wanted;
3. a replay of the committed seals and their stored batches from genesis (slow, but always possible).

The store is used through a few read methods only (see `StoreReader`); nothing here imports sqlite.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator, Optional, Protocol

from stromledger.cascade.ledger import replay
from stromledger.cascade.messages import PeriodSeal
from stromledger.cascade.rows import MeterRow
from stromledger.cascade.state import SettledState, StateError
from stromledger.codec import CodecError
from stromledger.consensus.messages import CommitCertificate
from stromledger.periods import format_utc
from stromledger.registry import Registry, RegistryChange, registry_at

from .build import Export, ExportError, prepare_export
from .period_data import StoredRows, is_period_rows, stored_period_rows
from .writer import Drain, drain_in_line, export_dir, write_export_pieces

COMMIT_PAGE = 64
Key = tuple[int, int]  # (period, version)


class StoreReader(Protocol):
    def get_commit(self, height: int): ...  # -> row with .value (seal bytes), or None
    def commits_from(self, height: int, limit: int) -> list: ...
    def last_height(self) -> Optional[int]: ...
    def get_batch(self, digest: bytes) -> Optional[bytes]: ...
    def get_period_result(self, period: int, version: int): ...  # -> row with .height and .data, or None
    def latest_state(self) -> Optional[tuple[int, bytes]]: ...


def _decode_commit(commit, height: int) -> tuple[PeriodSeal, bytes]:
    try:
        return PeriodSeal.decode(commit.value), bytes(commit.value)
    except CodecError as e:
        raise ExportError(f"the commit at height {height} does not decode: {e}") from None


def _load_commit(store: StoreReader, height: int) -> tuple[PeriodSeal, bytes]:
    commit = store.get_commit(height)
    if commit is None:
        raise ExportError(f"no commit at height {height} in this store")
    return _decode_commit(commit, height)


def final_commit(store: StoreReader, height: int) -> tuple[PeriodSeal, bytes, CommitCertificate]:
    """The committed seal at `height` and its canonical certificate, the `last_commit` of the committed seal
    at height + 1. Raises ExportError while height + 1 is not committed."""
    seal, seal_bytes = _load_commit(store, height)
    following = store.get_commit(height + 1)
    if following is None:
        raise ExportError(f"height {height} is not final for export until height {height + 1} commits (its "
                          f"commit certificate is carried by that seal)")
    next_seal, _ = _decode_commit(following, height + 1)
    try:
        cert = CommitCertificate.decode(next_seal.last_commit)
    except CodecError as e:
        raise ExportError(f"the seal at height {height + 1} carries no commit certificate of height {height}: "
                          f"{e}") from None
    return seal, seal_bytes, cert


def registry_history(store: StoreReader) -> tuple[RegistryChange, ...]:
    """The committed registry changes, from the store's latest state snapshot (() without one)."""
    snapshot = store.latest_state()
    if snapshot is None:
        return ()
    try:
        return SettledState.changes_in(snapshot[1])  # the state's history may be in the store: not needed here
    except StateError:
        return ()  # e.g. the network chain's state: no registry changes there


def committed_rows(store: StoreReader, registry: Registry, wanted: Iterable[Key],
                   history: tuple[RegistryChange, ...] = (), *,
                   decoded: bool = True) -> dict[Key, list[MeterRow] | StoredRows]:
    """The rows of each wanted (period, version), from the store's period results, its latest state snapshot
    or, failing both, a replay of its commits. Raises ExportError when some cannot be found. `history`: the
    committed registry changes (each period's rows follow its registry version). `decoded=False`: the store's
    period results as StoredRows, decoded a chunk at a time as an export reads them."""
    todo = set(wanted)
    out: dict[Key, list[MeterRow] | StoredRows] = {}
    for period, version in sorted(todo):
        row = store.get_period_result(period, version)
        if row is not None and is_period_rows(row.data):
            p, v, rows = stored_period_rows(registry_at(registry, period, history), row.data)
            if (p, v) == (period, version):
                out[period, version] = rows.decoded() if decoded else rows
    todo -= out.keys()
    if todo:
        snapshot = store.latest_state()
        if snapshot is not None:
            try:
                state = SettledState.decode(snapshot[1])
            except StateError:
                state = None
            if state is not None and state.registry_hash == registry.hash:
                for period, version in sorted(todo):
                    r = state.results.get(period)
                    if r is not None and r.version == version:
                        out[period, version] = list(state.rows(registry, period))
        todo -= out.keys()
    if todo:
        out.update(_replayed_rows(store, registry, todo))
    return out


def _replayed_rows(store: StoreReader, registry: Registry, wanted: set[Key]) -> dict[Key, list[MeterRow]]:
    state = SettledState.genesis(registry)
    out: dict[Key, list[MeterRow]] = {}
    height = registry.genesis_period
    last = store.last_height()
    while wanted - out.keys() and last is not None and height <= last:
        page = store.commits_from(height, COMMIT_PAGE)
        if not page:
            break
        for commit in page:
            if commit.height != state.next_height(registry):
                raise ExportError(f"cannot replay: height {state.next_height(registry)} is not in the store")
            seal, seal_bytes = _decode_commit(commit, commit.height)
            batches = {}
            for d in seal.batches:
                data = store.get_batch(d)
                if data is None:
                    raise ExportError(f"cannot replay height {commit.height}: batch {d.hex()} is not in the store")
                batches[d] = data
            try:
                state = replay(registry, [(seal_bytes, batches)], state)
            except ValueError as e:
                raise ExportError(f"cannot replay height {commit.height}: {e}") from None
            for r in seal.results:
                if (r.period, r.version) in wanted:
                    out[r.period, r.version] = list(state.rows(registry, r.period))
            height = commit.height + 1
    missing = sorted(wanted - out.keys())
    if missing:
        raise ExportError(f"no committed rows for (period, version) {missing[0]} in this store")
    return out


def prepared_exports(store: StoreReader, registry: Registry, height: int,
                     history: Optional[tuple[RegistryChange, ...]] = None) -> Iterator[tuple[Key, Export]]:
    """The exports of every period result in the committed seal at `height`, checked, by (period, version).
    Needs height + 1 committed (see final_commit). `history`: the committed registry changes when the caller
    holds them (a validator's settled state); else they are read from the store's latest state snapshot,
    which at a million meter points costs about a second."""
    seal, seal_bytes, cert = final_commit(store, height)
    keys = [(r.period, r.version) for r in seal.results]
    if history is None:
        history = registry_history(store)
    rows = committed_rows(store, registry, keys + [(p, v - 1) for p, v in keys if v > 1], history, decoded=False)
    committee = registry_at(registry, height, history)
    for p, v in keys:
        yield (p, v), prepare_export(registry_at(registry, p, history), seal_bytes, cert, p, rows[p, v],
                                     rows.get((p, v - 1)), committee)


def exports_of_seal(store: StoreReader, registry: Registry, height: int) -> dict[Key, dict[str, bytes]]:
    """The export files of every period result in the committed seal at `height`, by (period, version)."""
    return {key: export.files() for key, export in prepared_exports(store, registry, height)}


def export_committed(store: StoreReader, registry: Registry, height: int, base_dir: str | os.PathLike[str],
                     drain: Drain = drain_in_line,
                     history: Optional[tuple[RegistryChange, ...]] = None) -> list[Path]:
    """Write the export of every period result in the committed seal at `height` (version 1 of period
    `height` and any corrections of earlier periods) under `<base_dir>/exports/`; return their directories.
    The certificate is the one the seal at height + 1 carries, so every node writes the same bytes; a
    validator calls this for height h - 1 when height h commits. Safe to call again (identical exports are
    left alone); raises ExportError if height + 1 is not committed or the store lacks what an export needs,
    ExportConflict if a different export of the same period and version is already there. `drain`: how the
    pieces reach the files (writer.Drain); `history` as for prepared_exports."""
    return [write_export_pieces(base_dir, export, drain)
            for _, export in prepared_exports(store, registry, height, history)]


def exported(base_dir: str | os.PathLike[str], registry: Registry, period: int, version: int) -> bool:
    """Whether the export of (period, version) is in place under `<base_dir>/exports/`."""
    return export_dir(base_dir, format_utc(registry.period(period).start), version).is_dir()


def _seals_carrying(store: StoreReader, registry: Registry, period: int):
    """(height, result) of every committed seal that carries a result of `period`: heights `period` up to the
    end of its correction window."""
    height, stop = period, period + registry.correction_window
    last = store.last_height()
    if last is not None:
        stop = min(stop, last)
    while height <= stop:
        page = store.commits_from(height, min(COMMIT_PAGE, stop - height + 1))
        if not page:
            return
        for commit in page:
            if commit.height > stop:
                return
            seal, _ = _decode_commit(commit, commit.height)
            r = seal.result(period)
            if r is not None:
                yield commit.height, r
        height = page[-1].height + 1


def find_height(store: StoreReader, registry: Registry, period: int, version: int) -> int:
    """The height whose seal carries (period, version)."""
    row = store.get_period_result(period, version)
    if row is not None:
        return row.height
    for height, r in _seals_carrying(store, registry, period):
        if r.version == version:
            return height
    raise ExportError(f"no committed seal in this store carries period {period} version {version}")


def latest_version(store: StoreReader, registry: Registry, period: int) -> int:
    """The highest committed version of `period` in the store."""
    version = getattr(store, "latest_version", lambda p: None)(period)
    if version is not None:
        return version
    found = max((r.version for _, r in _seals_carrying(store, registry, period)), default=0)
    if not found:
        raise ExportError(f"period {period} is not committed in this store")
    return found


def export_period(store: StoreReader, registry: Registry, period: int, version: int | None,
                  base_dir: str | os.PathLike[str]) -> Path:
    """Write the export of one committed (period, version) (version None: the latest) and return its
    directory. A correction comes with changes.csv against the previous version. Like export_committed, it
    needs the seal after the one carrying (period, version) committed."""
    if version is None:
        version = latest_version(store, registry, period)
    height = find_height(store, registry, period, version)
    seal, seal_bytes, cert = final_commit(store, height)
    keys = [(period, version)] + ([(period, version - 1)] if version > 1 else [])
    history = registry_history(store)
    rows = committed_rows(store, registry, keys, history, decoded=False)
    return write_export_pieces(base_dir, prepare_export(registry_at(registry, period, history), seal_bytes, cert,
                                                        period, rows[period, version], rows.get((period, version - 1)),
                                                        registry_at(registry, height, history)))
