"""Per-meter-point rows of a period result, and everything computed from them: the Merkle leaves and root,
the cell, area, group and network totals, and the invariant checks.

One code path: the seal builder summarises rows made from its settled entries, and the billing export
verifier summarises the rows it reads back from an export; both must arrive at the same PeriodResult.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping, NamedTuple

import msgpack

from stromledger import merkle
from stromledger.registry import Registry

from .messages import (
    MISSING, QUALITY_NAMES, AreaTotal, CellTotal, Checks, GroupMix, GroupTotal, PeriodResult, ScheduleIssue, ScheduleLine,
    SettledReading, SourceWh,
)
from .rejections import Reason, Rejection

LEAF_TAG = SettledReading.TAG

# A settled entry of one meter point in one period, as the state keeps it (a plain tuple, for scale):
# (version, quality, import_wh, export_wh, reading_version, register, reading_import, reading_export, reading_sig)
VER, QUAL, IMP, EXP, RVER, REG, RIMP, REXP, RSIG = range(9)
MISSING_V1 = (1, MISSING, 0, 0, 0, False, 0, 0, b"")


class MeterRow(NamedTuple):
    """One meter point in one period result. The first 12 fields are the Merkle leaf's fields after `period`
    (SettledReading); `kind` and `source` come from the registry, for billing."""

    malo_id: str
    grid_area: str
    balancing_group: str  # "" for boundary meters
    version: int
    quality: int
    import_wh: int  # taken from the grid (A+); for a boundary meter: flow from area_out into area_in
    export_wh: int  # fed into the grid (A-); for a boundary meter: flow from area_in into area_out
    reading_version: int
    register: bool
    reading_import: int
    reading_export: int
    reading_sig: bytes
    kind: str
    source: str


def entry_rows(registry: Registry, period: int, entries: Mapping[str, tuple]) -> Iterator[MeterRow]:
    """The rows of a period from its settled entries (malo_id -> entry tuple), in MaLo-ID order."""
    mps = registry.meter_points
    overrides = registry.group_overrides(period)
    for m in registry.malo_order:
        mp = mps[m]
        yield MeterRow(m, mp.grid_area, overrides.get(m, mp.balancing_group), *entries[m], mp.kind, mp.source)


def leaf_bytes(period: int, row: MeterRow) -> bytes:
    """The Merkle leaf of a row: the canonical encoding of SettledReading(period, *row[:12])."""
    return msgpack.packb([LEAF_TAG, period, *row[:12]], use_bin_type=True)


def leaf_message(period: int, row: MeterRow) -> SettledReading:
    return SettledReading(period, *row[:12])


def merkle_root(period: int, rows: Iterable[MeterRow]) -> bytes:
    return merkle.root([leaf_bytes(period, r) for r in rows])


def inclusion_proof(period: int, rows: Iterable[MeterRow], malo_id: str) -> tuple[bytes, int, int, list[bytes]]:
    """(leaf bytes, index, tree size, audit path) of one meter point; check it with
    merkle.verify_inclusion(result.merkle_root, leaf, index, size, path)."""
    leaves, index = [], -1
    for i, row in enumerate(rows):
        if row.malo_id == malo_id:
            index = i
        leaves.append(leaf_bytes(period, row))
    if index < 0:
        raise KeyError(f"{malo_id} is not in period {period}")
    return leaves[index], index, len(leaves), merkle.Tree(leaves).proof(index)


def _cell_sums(cells: Iterable[CellTotal]) -> tuple[dict, dict, dict, dict]:
    """Injection and withdrawal summed per area and per group: (area_inj, area_wd, group_inj, group_wd)."""
    area_inj: dict[str, int] = {}
    area_wd: dict[str, int] = {}
    group_inj: dict[str, int] = {}
    group_wd: dict[str, int] = {}
    for c in cells:
        area_inj[c.area] = area_inj.get(c.area, 0) + c.inj
        area_wd[c.area] = area_wd.get(c.area, 0) + c.wd
        group_inj[c.group] = group_inj.get(c.group, 0) + c.inj
        group_wd[c.group] = group_wd.get(c.group, 0) + c.wd
    return area_inj, area_wd, group_inj, group_wd


def _schedule_sums(schedules: Iterable[ScheduleLine]) -> tuple[dict[str, int], dict[str, int]]:
    """Matched schedules summed per group: (FPI into it, FPE out of it)."""
    fpi: dict[str, int] = {}
    fpe: dict[str, int] = {}
    for s in schedules:
        fpe[s.from_group] = fpe.get(s.from_group, 0) + s.wh
        fpi[s.to_group] = fpi.get(s.to_group, 0) + s.wh
    return fpi, fpe


def book_boundary(exin: dict[str, int], exout: dict[str, int], mp, fwd: int, back: int) -> None:
    """A boundary meter's flows as area exchange: `fwd` (its A+) flows from area_out into area_in, `back`
    (its A-) the other way; a side "" is outside the network (or, in an area's view, outside the area)."""
    if mp.area_out:
        exout[mp.area_out] += fwd
        exin[mp.area_out] += back
    if mp.area_in:
        exin[mp.area_in] += fwd
        exout[mp.area_in] += back


def area_and_group_totals(registry: Registry, cells: Iterable[CellTotal], exin: Mapping[str, int],
                          exout: Mapping[str, int], schedules: Iterable[ScheduleLine]
                          ) -> tuple[list[AreaTotal], list[GroupTotal]]:
    """Every registry area (inj and wd from its cells, its exchange, its loss as the residual) and every group
    (its cells, the losses it books, its matched schedules, its imbalance). The network level uses it too."""
    area_inj, area_wd, group_inj, group_wd = _cell_sums(cells)
    areas = []
    loss_of: dict[str, int] = {}
    for a in registry.grid_areas.values():
        inj, wd = area_inj.get(a.eic, 0), area_wd.get(a.eic, 0)
        loss = inj + exin[a.eic] - wd - exout[a.eic]
        loss_of[a.loss_group] = loss_of.get(a.loss_group, 0) + loss
        areas.append(AreaTotal(a.eic, inj, wd, exin[a.eic], exout[a.eic], loss))
    fpi, fpe = _schedule_sums(schedules)
    groups = []
    for g in registry.balancing_groups:
        loss = loss_of.get(g, 0)
        inj, wd, i, e = group_inj.get(g, 0), group_wd.get(g, 0) + loss, fpi.get(g, 0), fpe.get(g, 0)
        groups.append(GroupTotal(g, inj, wd, loss, i, e, inj + i - wd - e))
    return areas, groups


def implausible_loss(registry: Registry, areas: Iterable[AreaTotal]) -> tuple[str, ...]:
    """The areas whose grid loss is implausible: |loss| above `loss_plausibility_percent` of the energy through
    the area (what enters, inj + exin, or what leaves, wd + exout, whichever is larger). Integer-exact."""
    pct = registry.params.loss_plausibility_percent
    return tuple(a.area for a in areas if abs(a.loss) * 100 > pct * max(a.inj + a.exin, a.wd + a.exout))


def external_net(registry: Registry, schedules: Iterable[ScheduleLine]) -> int:
    """Matched schedules to external parties minus those from them: what the groups sold out of the network
    (invariants 3 and 4)."""
    external = registry.external_parties
    return (sum(s.wh for s in schedules if s.to_group in external)
            - sum(s.wh for s in schedules if s.from_group in external))


def summarize(registry: Registry, period: int, version: int, rows: Iterable[MeterRow],
              schedules: tuple[ScheduleLine, ...] = (), schedule_issues: tuple[ScheduleIssue, ...] = (),
              leaves: list[bytes] | None = None) -> PeriodResult:
    """Aggregate the rows of one period (every meter point once, in MaLo-ID order) into a PeriodResult.

    Cell totals sum the non-boundary meter points; boundary meters give each area's exchange; an area's loss
    is its residual and is withdrawn by its loss group; groups add matched schedules (FPI in, FPE out).
    Rows read back from a file are input like any other: a quality code outside 1-4, or a boundary row for a
    meter point the registry has no boundary meter for, raises ValueError (other tampering shows as a
    result that differs from the sealed one).

    `leaves`: the Merkle leaves of `rows`, one per row, when the caller has them as stored bytes (the export
    of a node's own period rows, which were decoded from exactly these bytes): they are hashed as they are
    instead of re-encoding every row."""
    summary = Summary(registry, period, version, schedules, schedule_issues)
    summary.add(rows, leaves)
    return summary.result()


class Summary:
    """`summarize`, fed the rows a part at a time (`add`, in MaLo-ID order), then `result`: an export checks
    the rows it formats chunk by chunk, in the same pass."""

    def __init__(self, registry: Registry, period: int, version: int, schedules: tuple[ScheduleLine, ...] = (),
                 schedule_issues: tuple[ScheduleIssue, ...] = ()):
        self.registry, self.period, self.version = registry, period, version
        self.schedules, self.schedule_issues = schedules, schedule_issues
        self.cells: dict[tuple[str, str], list[int]] = {}
        self.mix: dict[tuple[str, str], int] = {}
        self.exin = dict.fromkeys(registry.grid_areas, 0)
        self.exout = dict.fromkeys(registry.grid_areas, 0)
        self.quality = [0, 0, 0, 0, 0]
        self.meter_inj = self.meter_wd = 0
        self.leaf_hashes: list[bytes] = []

    def add(self, rows: Iterable[MeterRow], leaves: list[bytes] | None = None) -> None:
        """The next rows; `leaves`: their stored Merkle leaves (see `summarize`)."""
        pack = msgpack.Packer(use_bin_type=True).pack
        mps, period = self.registry.meter_points, self.period
        stored = leaves is not None
        if not stored:
            leaves = []
        cells, mix, exin, exout, quality = self.cells, self.mix, self.exin, self.exout, self.quality
        before = sum(quality)
        meter_inj = meter_wd = 0
        for row in rows:
            if not stored:
                leaves.append(pack([LEAF_TAG, period, *row[:12]]))
            q = row[4]
            if q not in QUALITY_NAMES:
                raise ValueError(f"{row[0]}: quality {q!r} is not one of 1-4")
            quality[q] += 1
            wd, inj = row[5], row[6]
            if row[12] == "boundary":
                mp = mps.get(row[0])
                if mp is None or mp.kind != "boundary":
                    raise ValueError(f"{row[0]} is not a boundary meter in the registry")
                book_boundary(exin, exout, mp, wd, inj)
                continue
            key = (row[1], row[2])
            c = cells.get(key)
            if c is None:
                cells[key] = c = [0, 0, 0]
            c[0] += 1
            c[1] += inj
            c[2] += wd
            meter_inj += inj
            meter_wd += wd
            if inj:
                k = (row[2], row[13])
                mix[k] = mix.get(k, 0) + inj
        self.meter_inj += meter_inj
        self.meter_wd += meter_wd
        if stored and sum(quality) - before != len(leaves):
            raise ValueError(f"{len(leaves)} leaves for {sum(quality) - before} rows")
        self.leaf_hashes += merkle.leaf_hashes(leaves)

    def result(self) -> PeriodResult:
        registry, schedules = self.registry, self.schedules
        quality = self.quality
        cell_list = [CellTotal(area, group, n, inj, wd) for (area, group), (n, inj, wd) in sorted(self.cells.items())]
        areas, groups = area_and_group_totals(registry, cell_list, self.exin, self.exout, schedules)
        by_group: dict[str, list[SourceWh]] = {}
        for (g, source), wh in sorted(self.mix.items()):
            by_group.setdefault(g, []).append(SourceWh(source, wh))
        mixes = [GroupMix(g, tuple(lines)) for g, lines in by_group.items()]

        net_export = sum(a.exout - a.exin for a in areas)
        checks = Checks(
            meter_inj=self.meter_inj,
            meter_wd=self.meter_wd,
            cell_inj=sum(c.inj for c in cell_list),
            cell_wd=sum(c.wd for c in cell_list),
            area_residual=sum(abs(a.inj + a.exin - a.wd - a.exout - a.loss) for a in areas),
            schedule_net=sum(g.fpi - g.fpe for g in groups),
            imbalance_sum=sum(g.imb for g in groups),
            net_export=net_export,
            external_net=external_net(registry, schedules),
        )
        return PeriodResult(
            period=self.period, version=self.version, meter_points=len(self.leaf_hashes), measured=quality[1],
            substituted=quality[2], corrected=quality[3], missing=quality[4],
            merkle_root=merkle.root_of_leaf_hashes(self.leaf_hashes), cells=tuple(cell_list),
            areas=tuple(areas), groups=tuple(groups), mix=tuple(mixes), schedules=tuple(schedules),
            schedule_issues=tuple(self.schedule_issues), net_export=net_export, checks=checks,
            implausible_loss=implausible_loss(registry, areas), registry_version=registry.version,
        )


def recompute_result(registry: Registry, rows: Iterable[MeterRow], like: PeriodResult,
                     leaves: list[bytes] | None = None) -> PeriodResult:
    """The result that `rows` give for the period, version and schedules of `like` (a committed result).
    The billing export verifier compares it with `like`: equal means the rows are exactly what was sealed.
    `leaves`: see `summarize`."""
    return summarize(registry, like.period, like.version, rows, like.schedules, like.schedule_issues, leaves)


def check_invariants(registry: Registry, r: PeriodResult) -> Rejection | None:
    """Re-check a PeriodResult's four invariants from its own tables (integer-exact), against the registry.
    Needs no meter data: a light node, a group node or an export verifier can run it on a seal alone."""

    def bad(what: str) -> Rejection:
        return Rejection(Reason.INVARIANT_VIOLATED, f"period {r.period} version {r.version}: {what}")

    c = r.checks
    # 1. attribution
    if [a.area for a in r.areas] != list(registry.grid_areas):
        return bad("the areas are not exactly the registry's grid areas")
    if [g.group for g in r.groups] != list(registry.balancing_groups):
        return bad("the groups are not exactly the registry's balancing groups")
    keys = [(x.area, x.group) for x in r.cells]
    if keys != sorted(set(keys)) or any(a not in registry.grid_areas or g not in registry.balancing_groups
                                        for a, g in keys):
        return bad("cells are not sorted, unique and registered")
    if r.meter_points != len(registry.meter_points) or \
            r.meter_points != r.measured + r.substituted + r.corrected + r.missing or \
            sum(x.meter_points for x in r.cells) + len(registry.boundary) != r.meter_points:
        return bad("meter point counts do not add up")
    cell_inj = sum(x.inj for x in r.cells)
    cell_wd = sum(x.wd for x in r.cells)
    if not (c.meter_inj == c.cell_inj == cell_inj and c.meter_wd == c.cell_wd == cell_wd):
        return bad("attribution: the cells do not sum to the meter points")
    area_inj, area_wd, group_inj, group_wd = _cell_sums(r.cells)
    loss_of: dict[str, int] = {}
    for a in r.areas:
        if a.inj != area_inj.get(a.area, 0) or a.wd != area_wd.get(a.area, 0):
            return bad(f"area {a.area} is not the sum of its cells")
        # 2. area closure
        if a.inj + a.exin - a.wd - a.exout - a.loss != 0:
            return bad(f"area {a.area} does not close to zero")
        lg = registry.grid_areas[a.area].loss_group
        loss_of[lg] = loss_of.get(lg, 0) + a.loss
    if c.area_residual != 0:
        return bad("area_residual is not 0")
    fpi, fpe = _schedule_sums(r.schedules)
    mix_of = {m.group: sum(s.wh for s in m.sources) for m in r.mix}
    for g in r.groups:
        if g.inj != group_inj.get(g.group, 0) or g.loss != loss_of.get(g.group, 0) or \
                g.wd != group_wd.get(g.group, 0) + g.loss:
            return bad(f"group {g.group} is not the sum of its cells and losses")
        if mix_of.get(g.group, 0) != g.inj:
            return bad(f"group {g.group}: the generation mix does not sum to its injection")
        if g.fpi != fpi.get(g.group, 0) or g.fpe != fpe.get(g.group, 0):
            return bad(f"group {g.group}: FPI/FPE are not the sums of its matched schedules")
        if g.imb != g.inj + g.fpi - g.wd - g.fpe:
            return bad(f"group {g.group}: imb != inj + fpi - wd - fpe")
    if tuple(r.implausible_loss) != implausible_loss(registry, r.areas):
        return bad("the areas flagged for an implausible loss are not the ones the registry's share gives")
    # 3. schedules net out, but for the external ones
    external = registry.external_parties
    for s in r.schedules:
        ends = (s.from_group in registry.balancing_groups) + (s.to_group in registry.balancing_groups)
        if ends == 0 or ends + (s.from_group in external) + (s.to_group in external) != 2:
            return bad(f"schedule {s.from_group} -> {s.to_group} does not join a group to a group or an "
                       "external party")
    ext = external_net(registry, r.schedules)
    net = sum(g.fpi - g.fpe for g in r.groups)
    if net != -ext or c.schedule_net != net or c.external_net != ext:
        return bad(f"schedules do not net out: groups {net}, external {ext}")
    # 4. network reconciliation
    net_export = sum(a.exout - a.exin for a in r.areas)
    imb = sum(g.imb for g in r.groups)
    if not (imb == c.imbalance_sum == net_export - ext and net_export == c.net_export == r.net_export):
        return bad(f"sum of imbalances {imb} != net export {net_export} - external schedules {ext}")
    if r.registry_version != registry.version:
        return Rejection(Reason.WRONG_CHAIN, f"period {r.period} version {r.version} settled under registry version "
                                             f"{r.registry_version.hex()[:16]}, expected {registry.version.hex()[:16]}")
    return None
