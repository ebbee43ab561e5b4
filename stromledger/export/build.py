"""Building an export: a pure function from committed data to `{file name: bytes}`.

The inputs are what a committed seal proves: the seal, its commit certificate, the registry, and the rows of
one period result (one per meter point). The builder refuses rows that do not recompute the sealed result
and a certificate that does not verify, so a node never writes an export that fails verification.
"""

from __future__ import annotations

from itertools import groupby
from operator import itemgetter
from typing import Iterable, Iterator, Mapping, Union

from stromledger.cascade.messages import PeriodResult, PeriodSeal, SettledReading
from stromledger.cascade.rows import MeterRow, Summary
from stromledger.consensus.certificate import CertificateError, verify_certificate
from stromledger.consensus.messages import CommitCertificate
from stromledger.crypto import sha256
from stromledger.registry import Registry
from stromledger.registry.changes import changes_in_effect, is_approved, with_changes

from . import mscons, tables
from .compare import result_difference
from .manifest import MANIFEST, file_entry, manifest_bytes, manifest_dict
from .text import CHUNK

Row = Union[MeterRow, SettledReading]
_GROUP = itemgetter(2)


class ExportError(ValueError):
    """The inputs cannot make a valid export (rows that do not match the seal, a bad certificate, ...)."""


def as_meter_rows(registry: Registry, period: int, rows: Iterable[Row]) -> list[MeterRow]:
    """MeterRows in the given order; SettledReading leaves get their kind and source from the registry.
    A list of MeterRows only (e.g. `period_data.PeriodRows`), or stored rows read a chunk at a time
    (`period_data.StoredRows`), is returned as it is."""
    if _stored(rows) or isinstance(rows, list) and set(map(type, rows)) <= {MeterRow}:
        return rows
    out = []
    for r in rows:
        if isinstance(r, SettledReading):
            if r.period != period:
                raise ExportError(f"a leaf of period {r.period} among the rows of period {period}")
            mp = registry.meter_points.get(r.malo_id)
            if mp is None:
                raise ExportError(f"{r.malo_id} is not in the registry")
            r = MeterRow(r.malo_id, r.grid_area, r.balancing_group, r.version, r.quality, r.import_wh, r.export_wh,
                         r.reading_version, r.register, r.reading_import, r.reading_export, r.reading_sig, mp.kind,
                         mp.source)
        out.append(r)
    return out


def _stored(rows) -> bool:
    """Whether `rows` are a node's stored rows, decoded a chunk at a time (period_data.StoredRows)."""
    return hasattr(rows, "chunks")


def _whole(rows):
    return rows.decoded() if _stored(rows) else rows


def _not_in_order(registry: Registry, period: int) -> ExportError:
    return ExportError(f"the rows of period {period} are not the registry's {len(registry.malo_order)} meter "
                       "points in MaLo-ID order")


def sealed_result(registry: Registry, seal: PeriodSeal, period: int, rows: list[MeterRow]) -> PeriodResult:
    """The sealed result of `period`, after checking that `rows` are the registry's meter points in MaLo-ID
    order (stored rows: as many, their order checked chunk by chunk). That they recompute it exactly is
    checked while the export is written (`Export.pieces`)."""
    result = seal.result(period)
    if result is None:
        raise ExportError(f"the seal at height {seal.height} has no result for period {period}")
    if len(rows) != len(registry.malo_order) or (not _stored(rows) and
                                                 tuple(map(itemgetter(0), rows)) != registry.malo_order):
        raise _not_in_order(registry, period)
    return result


class RowCheck:
    """That the rows of an export recompute its sealed result exactly, checked a chunk at a time in the pass
    that formats them (the rows are read once, and the writer thread is busy meanwhile). The export's files
    are only published once it passed (writer.write_export_pieces writes into a hidden directory)."""

    def __init__(self, registry: Registry, result: PeriodResult, leaves: list[bytes] | None, order: bool = False):
        self.registry, self.result, self.leaves, self.order = registry, result, leaves, order
        self.summary: Summary | None = None

    def start(self) -> RowCheck:
        """A new pass over the rows (an export's pieces may be made more than once)."""
        r = self.result
        self.summary = Summary(self.registry, r.period, r.version, r.schedules, r.schedule_issues)
        return self

    def add(self, at: int, rows: list[MeterRow]) -> None:
        """rows[at:at + len(rows)]: rows decoded from stored leaves (period_data.PeriodRows, StoredRows) are
        hashed for the Merkle root as those very bytes. `order`: check that they are the registry's meter
        points there (stored rows, read a chunk at a time)."""
        if self.order and tuple(map(itemgetter(0), rows)) != self.registry.malo_order[at:at + len(rows)]:
            raise _not_in_order(self.registry, self.result.period)
        leaves = None if self.leaves is None else self.leaves[at:at + len(rows)]
        try:
            self.summary.add(rows, leaves)
        except (TypeError, ValueError) as e:
            raise ExportError(f"the rows of period {self.result.period} cannot be summarized: {e}") from None

    def finish(self) -> None:
        try:
            recomputed = self.summary.result()
        except (TypeError, ValueError) as e:
            raise ExportError(f"the rows of period {self.result.period} cannot be summarized: {e}") from None
        diff = result_difference(self.result, recomputed)
        if diff is not None:
            raise ExportError(f"the rows do not recompute period {self.result.period} version "
                              f"{self.result.version}: {diff}")


def prepare_export(registry: Registry, seal: PeriodSeal | bytes, certificate: CommitCertificate | bytes,
                   period: int, rows: Iterable[Row], previous_rows: Iterable[Row] | None = None,
                   committee: Registry | None = None) -> Export:
    """The export of the result of `period` in `seal`, ready to be written piece by piece
    (`writer.write_export_pieces`) or made whole (`Export.files`), checked: here the seal, the certificate
    and the meter points; that the rows recompute the sealed result while its pieces are made (an
    ExportError from `pieces` or `files`, and nothing published). `registry`: the chain's registry version of
    `period` (registry.registry_at; its changes are exported with it). `committee`: its version of the seal's
    height (default `registry`): its validators signed the certificate, and the committee changes in effect by
    then that `registry` lacks (a correction sealed later) go along too.

    `rows`: that result's rows, one per meter point in MaLo-ID order (cascade MeterRows or SettledReading
    leaves). `previous_rows`: the rows of version - 1 of the same period, required for a correction
    (version > 1): they give changes.csv."""
    if isinstance(seal, (bytes, bytearray)):
        seal_bytes = bytes(seal)
        seal = PeriodSeal.decode(seal_bytes)
    else:
        seal_bytes = seal.encode()
    cert = certificate
    if isinstance(cert, (bytes, bytearray)):
        cert = CommitCertificate.decode(bytes(cert))
    if seal.chain_id != registry.chain_id or seal.registry_hash != registry.hash:
        raise ExportError("the seal belongs to another chain or registry than the one given")
    try:
        verify_certificate(cert, seal.hash(), (committee or registry).validator_keys(), registry.chain_id,
                           height=seal.height)
    except CertificateError as e:
        raise ExportError(f"the certificate does not prove the seal at height {seal.height}: {e}") from None
    rows = as_meter_rows(registry, period, rows)
    result = sealed_result(registry, seal, period, rows)
    if result.version > 1 and previous_rows is None:
        raise ExportError(f"period {period} version {result.version} is a correction: the rows of version "
                          f"{result.version - 1} are needed for changes.csv")
    previous = None
    if previous_rows is not None:  # changes.csv compares the two versions whole
        rows, previous = _whole(rows), _whole(as_meter_rows(registry, period, previous_rows))
    return Export(registry, seal, seal_bytes, cert, result, rows, previous, committee,
                  RowCheck(registry, result, getattr(rows, "leaves", None), order=_stored(rows)))


def build_export(registry: Registry, seal: PeriodSeal | bytes, certificate: CommitCertificate | bytes, period: int,
                 rows: Iterable[Row], previous_rows: Iterable[Row] | None = None,
                 committee: Registry | None = None) -> dict[str, bytes]:
    """Every file of the export of the result of `period` in `seal`, by file name (see `prepare_export`)."""
    return prepare_export(registry, seal, certificate, period, rows, previous_rows, committee).files()


def carried_changes(registry: Registry, committee: Registry | None, period: int) -> tuple:
    """What an export carries besides the genesis: the changes in effect by its period (they give the registry
    version), and the approved changes that took effect after it by the seal's height (they give the committee
    that signed)."""
    later = [c for c in changes_in_effect(committee or registry) if is_approved(c) and c.effective_period > period]
    return with_changes(changes_in_effect(registry), later) if later else changes_in_effect(registry)


def export_files(registry: Registry, seal: PeriodSeal, seal_bytes: bytes, cert: CommitCertificate,
                 result: PeriodResult, rows: list[MeterRow], previous: list[MeterRow] | None,
                 committee: Registry | None = None) -> dict[str, bytes]:
    """The files of an export from checked inputs (no checks here: `build_export` does them, and the verifier
    calls this to regenerate what an export must contain). changes.csv only when `previous` is given."""
    return Export(registry, seal, seal_bytes, cert, result, rows, previous, committee).files()


class Export:
    """The files of one export, as pieces (`pieces`, then `manifest`) or whole (`files`); `check`: that the
    rows recompute the sealed result, checked in the same pass (None: the caller checked its inputs).
    Both ways are the same code, so a written export and a regenerated one (the verifier's) agree byte for
    byte."""

    def __init__(self, registry: Registry, seal: PeriodSeal, seal_bytes: bytes, cert: CommitCertificate,
                 result: PeriodResult, rows: list[MeterRow], previous: list[MeterRow] | None,
                 committee: Registry | None = None, check: RowCheck | None = None):
        self.registry, self.seal, self.seal_bytes, self.cert = registry, seal, seal_bytes, cert
        self.check = check  # None: inputs checked by the caller (the verifier regenerating an export)
        self.result, self.rows, self.previous, self.committee = result, rows, previous, committee
        self.seal_hash = sha256(seal_bytes)
        self.period = registry.period(result.period)
        if _stored(rows):
            # Decided on the registry's text: stored rows hold no other (their kinds and sources are the
            # registry's; MaLo-IDs, areas and groups are in the sealed leaves, which the registry's text made).
            # Rows that hold other text fail the row check, and then nothing is published.
            self.meter_lines = tables.MeterPointLines.of_registry(self.period, self.seal_hash, registry)
            if self.meter_lines is None:
                self.rows = rows = rows.decoded()
        if not _stored(rows):
            self.meter_lines = tables.MeterPointLines.of(self.period, self.seal_hash, rows)
        # record counts known without counting lines (the manifest's count_records of these files)
        self.records = {} if self.meter_lines is None else \
            dict.fromkeys((tables.METER_POINTS_CSV, tables.METER_POINTS_JSONL), len(rows))

    @property
    def start_utc(self) -> str:
        return tables.interval(self.period)[0]

    @property
    def version(self) -> int:
        return self.result.version

    def pieces(self) -> Iterator[tuple[str, bytes]]:
        """(file name, bytes) of every file but the manifest, each file's pieces in order (joined, they are
        the file). One pass over the rows, a few thousand meter points at a time, feeds meter-points.csv,
        meter-points.jsonl and every MSCONS file, so a writer holds no file whole."""
        registry, p, result, rows = self.registry, self.period, self.result, self.rows
        lines = self.meter_lines
        if lines is None:  # some text needs quoting or escaping: the generic writers, whole files
            csv, jsonl, _ = tables.meter_points_files(p, self.seal_hash, rows)
            yield tables.METER_POINTS_CSV, csv
            yield tables.METER_POINTS_JSONL, jsonl
        else:
            yield tables.METER_POINTS_CSV, lines.csv_header
            yield tables.METER_POINTS_JSONL, b""  # the file exists even without meter points
        by_group: dict[str, mscons.Interchange] = {}  # one per group with meter points, made at its first
        missing_by_group: dict[str, int] = {}
        missing_by_area: dict[str, int] = {}
        check = None if self.check is None else self.check.start()
        stored = _stored(rows)
        chunks = rows.chunks() if stored else ((at, rows[at:at + CHUNK]) for at in range(0, len(rows), CHUNK))
        for at, part in chunks:
            if check is None:
                yield from self._chunk(part, lines, by_group, missing_by_group, missing_by_area)
                continue
            check.add(at, part)
            try:
                made = list(self._chunk(part, lines, by_group, missing_by_group, missing_by_area))
            except ExportError:
                raise
            except (TypeError, ValueError, AttributeError, KeyError) as e:
                # rows the check would refuse at the end (a value of the wrong type, say): refused now
                raise ExportError(f"the rows of period {result.period} cannot be exported: {e}") from None
            yield from made
        if check is not None:
            check.finish()
        for g, x in sorted(by_group.items()):
            yield mscons.file_name(g), x.tail()
        yield tables.GROUPS_CSV, tables.groups_csv(p, result, missing_by_group)
        yield tables.AREAS_CSV, tables.areas_csv(p, result, registry, missing_by_area)
        yield tables.SCHEDULES_CSV, tables.schedules_csv(p, result)
        if result.version > 1 and self.previous is not None:
            old = tables.meter_records(p, b"", self.previous)
            yield tables.CHANGES_CSV, tables.changes_csv(tables.changes(old, tables.meter_records(p, self.seal_hash,
                                                                                                   rows)))
        carried = carried_changes(registry, self.committee, result.period)
        if carried:  # what anyone needs besides the genesis to rebuild the registry version and the committee
            yield tables.REGISTRY_CHANGES_JSONL, tables.registry_changes_jsonl(carried)

    def _chunk(self, part: list[MeterRow], lines: tables.MeterPointLines | None,
               by_group: dict[str, mscons.Interchange], missing_by_group: dict[str, int],
               missing_by_area: dict[str, int]) -> Iterator[tuple[str, bytes]]:
        """The pieces of a few thousand meter points: their meter-point lines and MSCONS points (an
        interchange's head before its first), their missing values counted."""
        tables.missing_counts(self.registry, part, missing_by_group, missing_by_area)
        if lines is not None:
            csv, jsonl = lines.lines(part)
            yield tables.METER_POINTS_CSV, csv
            yield tables.METER_POINTS_JSONL, jsonl
        # the chunk's meter points by group (a stable sort: each group's stay in MaLo-ID order), boundary
        # meters ("") aside
        for g, members in groupby(sorted(part, key=_GROUP), _GROUP):
            if not g:
                continue
            x = by_group.get(g)
            if x is None:
                by_group[g] = x = self.interchange(g)
                yield mscons.file_name(g), x.head()
            yield mscons.file_name(g), x.points(list(members))

    def interchange(self, group: str) -> mscons.Interchange:
        """The MSCONS interchange of a balancing group that has meter points in the period (boundary meters
        have none)."""
        return mscons_interchange(self.registry, self.seal, self.seal_hash, self.result.period, self.version, group)

    def manifest(self, entries: Mapping[str, dict]) -> bytes:
        """manifest.json, given the `file_entry` of every other file."""
        return manifest_bytes(manifest_dict(registry=self.registry, seal=self.seal, seal_bytes=self.seal_bytes,
                                            certificate=self.cert, result=self.result, entries=entries,
                                            committee=self.committee))

    def files(self) -> dict[str, bytes]:
        parts: dict[str, list[bytes]] = {}
        for name, data in self.pieces():
            parts.setdefault(name, []).append(data)
        files = {name: b"".join(p) for name, p in parts.items()}
        files[MANIFEST] = self.manifest({name: file_entry(name, data, self.records.get(name))
                                         for name, data in files.items()})
        return files


def mscons_interchange(registry: Registry, seal: PeriodSeal, seal_hash: bytes, period: int, version: int,
                       group: str) -> mscons.Interchange:
    """The MSCONS interchange of one balancing group's meter points in the period's result."""
    p = registry.period(period)
    return mscons.Interchange(
        sender=mscons_sender(registry, seal.chain_id), recipient=mscons_recipient(registry, group), group=group,
        seal_hash=seal_hash, period=period, version=version, start=p.start, end=p.end,
        prepared=registry.period(seal.height).end)


def mscons_interchanges(registry: Registry, seal: PeriodSeal, seal_hash: bytes, period: int, version: int,
                        groups: Iterable[str]) -> dict[str, mscons.Interchange]:
    return {mscons.file_name(g): mscons_interchange(registry, seal, seal_hash, period, version, g) for g in groups}


def mscons_files(registry: Registry, seal: PeriodSeal, seal_hash: bytes, period: int, version: int,
                 rows: list[MeterRow]) -> dict[str, bytes]:
    """One MSCONS file per balancing group that has meter points in the period (boundary meters have none)."""
    by_group: dict[str, list[MeterRow]] = {}
    for r in rows:
        if r.balancing_group:
            by_group.setdefault(r.balancing_group, []).append(r)
    return {name: b"".join([x.head(), x.points(by_group[x.group]), x.tail()])
            for name, x in mscons_interchanges(registry, seal, seal_hash, period, version, sorted(by_group)).items()}


def mscons_sender(registry: Registry, chain_id: str) -> mscons.Party:
    """The grid operator of an area chain's area, by its market-partner id; else the chain."""
    areas = list(registry.grid_areas.values())
    if len(areas) == 1 and areas[0].market_partner_id:
        return mscons.Party.market_partner(areas[0].market_partner_id)
    return mscons.Party.chain(chain_id)


def mscons_recipient(registry: Registry, group: str) -> mscons.Party:
    """The balancing group's BRP by its market-partner id; else the group's EIC."""
    bg = registry.balancing_groups.get(group)
    return mscons.Party.market_partner(bg.market_partner_id) if bg and bg.market_partner_id else \
        mscons.Party.eic(group)
