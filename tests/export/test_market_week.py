"""Done-when test of issue 12: a week (672 periods) of a small grid with a register meter, outages, a late
reading, a supplier switch and external schedules is settled; the invariants hold exactly in every seal; the
day files (MaLo MSCONS, MaBiS series CSV and MSCONS, schedules CSV) pass the structural checker and pydifact;
and recomputing from those files alone reproduces every sealed total."""

from __future__ import annotations

import csv
import datetime as dt
import io
import warnings

import pytest

from edifact_structure import check_interchange
from stromledger.cascade import Ledger, MeterRow, check_invariants
from stromledger.cascade.checks import sign_schedule
from stromledger.cascade.messages import MEASURED, MISSING, SUBSTITUTED
from stromledger.export import edi, tables
from stromledger.export.market_day import market_day_files
from stromledger.ids import make_eic, make_malo_id
from stromledger.periods import local_day_periods, parse_utc
from stromledger.registry import (
    Assignment, BalancingGroup, ChainParams, ExternalParty, GridArea, MeterOperator, MeterPoint, Registry, Supplier,
    Validator, check_genesis, load_genesis, write_genesis,
)

from nodes.datagen.synthetic import eic_for
from stromledger.cascade import make_batch, sign_reading
from stromledger.crypto import SigningKey

A1, A2 = eic_for("WEEKAREA", 1), eic_for("WEEKAREA", 2)
G1, G2, G3 = eic_for("WEEKBG", 1), eic_for("WEEKBG", 2), eic_for("WEEKBG", 3)
L1, L2 = eic_for("WEEKLOSS", 1), eic_for("WEEKLOSS", 2)


def key(label: str) -> SigningKey:
    return SigningKey.from_label(f"test-{label}")


class Net:
    def __init__(self, registry: Registry):
        self.chain = registry.chain_id

    def reading(self, m: str, period: int, imp: int, exp: int = 0, register: bool = False):
        return sign_reading(key(m), self.chain, m, period, imp, exp, register=register)

    def batch(self, readings, schedules):
        return make_batch(key("meter-operator"), self.chain, readings, schedules)

    def settle(self, ledger: Ledger, batch):
        ledger.admit(batch, None)
        outcome = ledger.propose()
        ledger.commit(outcome.seal_bytes)
        return outcome

START = parse_utc("2026-11-15T23:00:00Z")  # Monday 16 November 2026, 00:00 in Berlin
G0 = int(START.timestamp()) // 900
DAYS = [dt.date(2026, 11, 16) + dt.timedelta(days=i) for i in range(7)]
EXCHANGE, NEIGHBOUR = make_eic("10XEXCHANGE-TES"), make_eic("10YNEIGHBOUR-CA")
HOUSE1, HOUSE2, PV, WIND, REG, TIE, UP, SWITCH = (make_malo_id(f"{5_100_000_000 + i:010d}") for i in range(8))
SWITCH_DAY = 3  # SWITCH moves from G1 to G3 at the local midnight starting day 3
REG_GAP = range(100, 104)  # the register meter sends nothing in these periods (offsets from G0)
OUTAGE = range(200, 208)  # HOUSE2 sends nothing: substitutes
LATE = 400  # HOUSE1's reading of this period arrives two periods later: a corrected version
PARTNER = {eic: edi.make_market_partner_id(f"99{n:010d}") for n, eic in enumerate((A1, A2, G1, G2, G3, L1, L2), 1)}
S1, S2, S3, S4 = (edi.make_market_partner_id(f"99000000010{n}") for n in range(1, 5))  # suppliers (LF)


def week_registry() -> Registry:
    params = ChainParams("week-chain", G0, 900, 60, 8, 192)
    groups = [BalancingGroup(g, f"group {g}", key(g).public, PARTNER[g]) for g in (G1, G2, G3, L1, L2)]
    areas = [GridArea(A1, "Area one", "Grid One GmbH", L1, PARTNER[A1]),
             GridArea(A2, "Area two", "Grid Two GmbH", L2, PARTNER[A2])]
    validators = [Validator(f"v{i}", key(f"validator-{i}").public, (A1, A1, A2, A2)[i - 1]) for i in range(1, 5)]
    op = MeterOperator("Test Metering", key("meter-operator").public)

    def mp(m, kind, source, area, group, power, out="", into="", supplier=""):
        return MeterPoint(m, kind, source, area, group, op.name, key(m).public, power, out, into, supplier)

    points = [mp(HOUSE1, "consumer", "grid", A1, G1, 30_000, supplier=S1),
              mp(HOUSE2, "consumer", "grid", A2, G2, 30_000, supplier=S3),
              mp(PV, "prosumer", "pv", A1, G2, 30_000, supplier=S3),
              mp(WIND, "producer", "wind", A2, G3, 3_000_000, supplier=S4),
              mp(REG, "consumer", "grid", A1, G1, 30_000, supplier=S2),
              mp(TIE, "boundary", "grid", A1, "", 10_000_000, A1, A2),
              mp(UP, "boundary", "grid", A1, "", 10_000_000, "", A1),
              mp(SWITCH, "consumer", "grid", A2, G1, 30_000, supplier=S2)]
    switch = Assignment(SWITCH, G0 + 96 * SWITCH_DAY, G3, S4)  # a supplier switch: S2 (in G1) to S4 (in G3)
    externals = [ExternalParty(EXCHANGE, "Power exchange"), ExternalParty(NEIGHBOUR, "Other control area")]
    suppliers = [Supplier(S1, "Stadtwerke", G1), Supplier(S2, "Oekostrom", G1), Supplier(S3, "Grundversorger", G2),
                 Supplier(S4, "Windhandel", G3)]
    return Registry(params, validators, areas, groups, [op], points, [switch], externals, suppliers)


def readings(net: Net, k: int) -> list:
    p = G0 + k
    out = []
    if k != LATE:
        out.append(net.reading(HOUSE1, p, 200 + k * 37 % 300))
    if k == LATE + 2:
        out.append(net.reading(HOUSE1, G0 + LATE, 200 + LATE * 37 % 300))
    if k not in OUTAGE:
        out.append(net.reading(HOUSE2, p, 300 + k * 53 % 400))
    sun = max(0, 1500 - abs(k % 96 - 50) * 60)
    out.append(net.reading(PV, p, 0 if sun else 5, sun))
    out.append(net.reading(WIND, p, 0, 1000 + k * 71 % 2000))
    if k not in REG_GAP:
        register = 10_000 + sum(100 + i % 50 for i in range(k + 1))
        out.append(net.reading(REG, p, register, 0, register=True))
    out.append(net.reading(TIE, p, 500 + k % 100, 0))
    out.append(net.reading(UP, p, 2000 + k * 13 % 500, 0))
    out.append(net.reading(SWITCH, p, 150 + k % 20))
    return out


def schedules(reg: Registry, k: int) -> list:
    p, chain = G0 + k, reg.chain_id
    return [sign_schedule(key(G2), chain, G2, EXCHANGE, p, 800 + k % 7),  # G2 sells at the exchange
            sign_schedule(key(G1), chain, NEIGHBOUR, G1, p, 300),  # G1 buys in another control area
            sign_schedule(key(G1), chain, G1, G3, p, 50), sign_schedule(key(G3), chain, G1, G3, p, 50)]


@pytest.fixture(scope="module")
def week():
    reg = week_registry()
    net, ledger = Net(reg), Ledger(reg)
    rows, results = {}, {}
    for k in range(7 * 96):
        out = net.settle(ledger, net.batch(readings(net, k), schedules(reg, k)))
        for r in out.seal.results:
            assert check_invariants(reg, r) is None
            c = r.checks
            assert c.imbalance_sum == sum(g.imb for g in r.groups) == r.net_export - c.external_net
            assert c.schedule_net == -c.external_net
            rows[r.period] = {row.malo_id: row for row in ledger.rows(r.period)}
            results[r.period] = r
    return reg, rows, results


def day_files(reg, rows, results, day):
    periods = [p.index for p in local_day_periods(day, length=900)]
    market = market_day_files(reg, day, rows, results, reg.period(periods[-1]).end + 3600)
    malo = {n: d for n, d in market.files.items() if n.startswith("mscons-")}
    return periods, edi.MaloDays(malo, market.incomplete), {n: d for n, d in market.files.items() if n not in malo}


def read_csv(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def pydifact_values(data: bytes) -> list[tuple]:
    """(location ids, OBIS, qualifier, Wh, start text) of every QTY, read with pydifact."""
    from pydifact.segmentcollection import Interchange

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        segments = list(Interchange.from_str(data.decode()).segments)
    out, loc, obis = [], [], None
    for i, s in enumerate(segments):
        if s.tag == "UNH":
            loc = []
        elif s.tag == "LOC":
            loc.append(s.elements[1])
        elif s.tag == "PIA":
            obis = s.elements[1][0]
        elif s.tag == "QTY":
            q, value, unit = s.elements[0]
            whole, frac = value.split(".")
            out.append((tuple(loc), obis, q, int(whole) * 1000 + int(frac), segments[i + 1].elements[0][1]))
    return out


def test_every_total_is_reproduced_from_the_day_files(week):
    reg, rows, results = week
    assert sorted(results) == list(range(G0, G0 + 672))
    substitutes = incomplete_days = 0
    methods = {edi.METHOD_ESTIMATE: 0, edi.METHOD_REGISTER_SPREAD: 0}
    for day in DAYS:
        periods, malo, files = day_files(reg, rows, results, day)
        assert len(periods) == 96
        # -- structure: every MSCONS file passes the checker written from the guide, and pydifact reads it
        malo_values: dict[tuple[int, str], dict[str, int]] = {}
        starts = {edi.dtm("163", reg.period(p).start)[1]: p for p in periods}
        for name, data in malo.files.items():
            for method in methods:
                methods[method] += data.decode().count(f"STS+Z32++{method}'")
            for msg in check_interchange(data.decode(), edi.PI_MALO_LOAD_PROFILE):
                substitutes += sum(v[4] for v in msg["lines"][edi.OBIS_IMPORT])
            for loc, obis, q, wh, start in pydifact_values(data):
                malo_values.setdefault((starts[start], loc[0]), {})[obis] = wh
        sums: dict[tuple[int, str, str], dict[str, int]] = {}
        for name, data in files.items():
            if name.endswith(".edi"):
                check_interchange(data.decode(), edi.PI_GROUP_SUM_SERIES)
                for (group, area), obis, q, wh, start in pydifact_values(data):
                    sums.setdefault((starts[start], area, group), {})[obis] = wh
        # -- the series CSV reproduces the sealed cells and losses; the MaBiS MSCONS carries the same sums
        at = {tables.interval(reg.period(p))[0]: p for p in periods}
        series = read_csv(files["series.csv"])
        cells: dict[tuple[int, str, str], dict] = {}
        loss: dict[tuple[int, str], int] = {}
        for line in series:
            p = at[line["period_start"]]
            if line["loss_wh"] != "":
                loss[p, line["grid_area"]] = int(line["loss_wh"])
            if int(line["meter_points"]):
                cells[p, line["grid_area"], line["balancing_group"]] = line
                assert sums[p, line["grid_area"], line["balancing_group"]] == {
                    edi.OBIS_IMPORT: int(line["withdrawal_wh"]), edi.OBIS_EXPORT: int(line["injection_wh"])}
        sched: dict[int, list[dict]] = {}
        for line in read_csv(files["schedules.csv"]):
            sched.setdefault(at[line["period_start"]], []).append(line)
        for p in periods:
            r = results[p]
            assert {(a, g): (int(v["meter_points"]), int(v["injection_wh"]), int(v["withdrawal_wh"]))
                    for (q, a, g), v in cells.items() if q == p} == \
                {(c.area, c.group): (c.meter_points, c.inj, c.wd) for c in r.cells}
            assert {a.area: a.loss for a in r.areas} == {a: v for (q, a), v in loss.items() if q == p}
            # areas and groups from the files alone
            inj = {a: 0 for a in reg.grid_areas}
            wd = dict(inj)
            g_inj = {g: 0 for g in reg.balancing_groups}
            g_wd = dict(g_inj)
            for (q, a, g), v in cells.items():
                if q == p:
                    inj[a] += int(v["injection_wh"])
                    wd[a] += int(v["withdrawal_wh"])
                    g_inj[g] += int(v["injection_wh"])
                    g_wd[g] += int(v["withdrawal_wh"])
            for a in reg.grid_areas:
                g_wd[reg.grid_areas[a].loss_group] += loss[p, a]
            fpi = {g: 0 for g in reg.balancing_groups}
            fpe = dict(fpi)
            external_net = 0
            for s in sched.get(p, []):
                wh = int(s["wh"])
                if s["from_party"] in fpe:
                    fpe[s["from_party"]] += wh
                if s["to_party"] in fpi:
                    fpi[s["to_party"]] += wh
                if s["external"] == "1":
                    external_net += wh if s["to_party"] in reg.external_parties else -wh
            imb = {g: g_inj[g] + fpi[g] - g_wd[g] - fpe[g] for g in reg.balancing_groups}
            assert {g.group: (g.inj, g.wd, g.fpi, g.fpe, g.imb) for g in r.groups} == \
                {g: (g_inj[g], g_wd[g], fpi[g], fpe[g], imb[g]) for g in reg.balancing_groups}
            net_export = sum(inj[a] - wd[a] - loss[p, a] for a in reg.grid_areas)  # = sum(EXOUT - EXIN)
            assert net_export == r.net_export and external_net == r.checks.external_net
            assert sum(imb.values()) == net_export - external_net  # invariant 4, from the files
            # -- the MaLo day messages add up to the cells (complete MaLo-days), and missing values are counted
            for (q, a, g), v in cells.items():
                if q != p:
                    continue
                members = [m for m, row in rows[p].items() if (row.grid_area, row.balancing_group) == (a, g)]
                complete = [m for m in members if (p, m) in malo_values]
                gone = {m for m, n in malo.incomplete}
                assert set(members) - set(complete) <= gone
                if len(complete) == len(members):
                    assert sum(malo_values[p, m][edi.OBIS_IMPORT] for m in members) == int(v["withdrawal_wh"])
                    assert sum(malo_values[p, m][edi.OBIS_EXPORT] for m in members) == int(v["injection_wh"])
        # the aggregation levels: area = sealed area, area x BRP = sealed cells, suppliers add up to both
        levels: dict[tuple[int, str], dict[tuple[str, str, str], tuple[int, int, int]]] = {}
        for line in read_csv(files["aggregations.csv"]):
            levels.setdefault((at[line["period_start"]], line["level"]), {})[
                line["grid_area"], line["supplier"], line["balancing_group"]] = (
                int(line["meter_points"]), int(line["withdrawal_wh"]), int(line["injection_wh"]))
        for p in periods:
            r = results[p]
            assert levels[p, "area"] == {(a.area, "", ""): (n, a.wd, a.inj) for a in r.areas
                                         for n in [sum(c.meter_points for c in r.cells if c.area == a.area)]}
            assert levels[p, "area_brp"] == {(c.area, "", c.group): (c.meter_points, c.wd, c.inj) for c in r.cells}
            for fine, coarse, keep in (("area_supplier_brp", "area_brp", (0, 2)), ("area_supplier", "area", (0,)),
                                       ("area_supplier_brp", "area_supplier", (0, 1))):
                summed: dict = {}
                for k, v in levels[p, fine].items():
                    key_ = tuple(k[i] if i in keep else "" for i in range(3))
                    summed[key_] = tuple(x + y for x, y in zip(summed.get(key_, (0, 0, 0)), v))
                assert summed == levels[p, coarse]
            assert "" not in {k[1] for k in levels[p, "area_supplier"]}  # every meter point has its supplier
            switched = day >= DAYS[SWITCH_DAY]
            assert (A2, S4 if switched else S2, G3 if switched else G1) in levels[p, "area_supplier_brp"]
        # missing quarter hours of left-out MaLo-days are exactly the series' missing_values
        missing = sum(int(line["missing_values"]) for line in series)
        assert missing == sum(n for _, n in malo.incomplete)
        incomplete_days += bool(malo.incomplete)
    # HOUSE2's outage and the register meter's gap (spread over it): one STS per substituted quarter hour
    assert substitutes == len(OUTAGE) + len(REG_GAP)
    # the method per value, both directions: carried forward (the outage), spread between register readings
    assert methods == {edi.METHOD_ESTIMATE: 2 * len(OUTAGE), edi.METHOD_REGISTER_SPREAD: 2 * len(REG_GAP)}
    assert incomplete_days == 1  # the register meter's first reading is its baseline: day 0 is not sent


def test_the_supplier_switch_moves_the_malo_to_the_new_recipient(week):
    reg, rows, results = week
    before = day_files(reg, rows, results, DAYS[SWITCH_DAY - 1])[1].files
    after = day_files(reg, rows, results, DAYS[SWITCH_DAY])[1].files
    to = {name: data for name, data in after.items() if SWITCH in data.decode()}
    was = {name: data for name, data in before.items() if SWITCH in data.decode()}
    assert [n.split("-")[-1][:-4] for n in was] == [S2]  # the MaLo's supplier receives its values
    assert [n.split("-")[-1][:-4] for n in to] == [S4]


@pytest.mark.parametrize("day, quarter_hours", [(dt.date(2026, 3, 29), 92), (dt.date(2026, 10, 25), 100),
                                                (dt.date(2026, 6, 1), 96)])
def test_dst_days_have_every_quarter_hour(day, quarter_hours):
    periods = [(p.start, p.end) for p in local_day_periods(day, length=900)]
    malo = HOUSE1
    rows = [{malo: MeterRow(malo, A1, G1, 1, SUBSTITUTED if i == 3 else MEASURED, i, 0, 1, False, i, 0, b"",
                            "consumer", "grid")} for i in range(len(periods))]
    files = edi.malo_day_files(periods, rows, {malo: PARTNER[G1]}, {malo: PARTNER[A1]}, periods[-1][1])
    (data,) = files.files.values()
    (msg,) = check_interchange(data.decode(), edi.PI_MALO_LOAD_PROFILE)
    assert len(msg["lines"][edi.OBIS_IMPORT]) == quarter_hours == len(periods)
    assert [v[4] for v in msg["lines"][edi.OBIS_IMPORT]].count(True) == 1  # STS on the substitute alone
    rows[5][malo] = rows[5][malo]._replace(quality=MISSING)
    left_out = edi.malo_day_files(periods, rows, {malo: PARTNER[G1]}, {malo: PARTNER[A1]}, periods[-1][1])
    assert left_out.files == {} and left_out.incomplete == ((malo, 1),)


def test_market_partner_ids_are_checked():
    assert edi.market_partner_problem(PARTNER[A1]) is None
    wrong = PARTNER[A1][:12] + str((int(PARTNER[A1][12]) + 1) % 10)
    assert "check digit" in edi.market_partner_problem(wrong)
    with pytest.raises(ValueError, match="recipient"):
        edi.build_interchange([], sender=PARTNER[A1], recipient=EXCHANGE, pi="13025", prepared=0)


def test_suppliers_in_the_genesis(tmp_path):
    reg = week_registry()
    loaded = load_genesis(write_genesis(reg, tmp_path))
    assert loaded.hash == reg.hash and loaded.suppliers == reg.suppliers
    assert loaded.supplier_of(SWITCH, G0) == S2 and loaded.supplier_of(SWITCH, G0 + 96 * SWITCH_DAY) == S4
    path = tmp_path / "genesis.toml"
    text = path.read_text()
    # a supplier of another group than the switch's, and a supplier id with a wrong check digit
    bad = text.replace(f'supplier = "{S4}"', f'supplier = "{S1}"').replace(
        f'market_partner_id = "{PARTNER[A1]}"', f'market_partner_id = "{PARTNER[A1][:12]}x"') + \
        f'\n[[suppliers]]\nid = "{S1[:12]}{(int(S1[12]) + 1) % 10}"\nname = "x"\nbalancing_group = "{G1}"\n'
    path.write_text(bad)
    registry, defects = check_genesis(path)
    assert registry is None
    assert {("[[assignments]]", "supplier"), ("[[suppliers]]", "id"), ("[[grid_areas]]", "market_partner_id")} <= \
        {(d.where.split(" #")[0], d.field) for d in defects}  # (the area's meter points follow it)


def test_market_day_files_need_every_market_partner_id(week):
    reg, rows, results = week
    plain = Registry(reg.params, reg.validators, [GridArea(a.eic, a.name, a.operator, a.loss_group)
                                                  for a in reg.grid_areas.values()],
                     reg.balancing_groups.values(), reg.meter_operators.values(), reg.meter_points.values())
    with pytest.raises(ValueError, match="has no market_partner_id"):
        market_day_files(plain, DAYS[0], rows, results, 0)
    with pytest.raises(ValueError, match="not settled"):
        market_day_files(reg, DAYS[0] - dt.timedelta(days=1), rows, results, 0)
