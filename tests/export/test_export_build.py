"""What an export contains: files, columns, units, quality flags, MSCONS read back with pydifact."""

from __future__ import annotations

import csv
import io
import json
import warnings

import pytest
from hypothesis import given, strategies as st

import export_chain as chain
from export_chain import G, G1, G2, G3
from stromledger.cascade import PeriodSeal, leaf_message
from stromledger.export import ExportError, build_export
from stromledger.export.mscons import QUALIFIERS, parse_segments, read_quantities
from stromledger.export.text import kwh, parse_kwh


def rows_of(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def test_files_of_a_first_version(exports):
    files = exports[G, 1]
    assert sorted(files) == sorted(["manifest.json", "meter-points.csv", "meter-points.jsonl", "balancing-groups.csv",
                                    "areas.csv", "schedules.csv", f"mscons-{G1}.edi", f"mscons-{G2}.edi",
                                    f"mscons-{G3}.edi"])
    for name, data in files.items():
        text = data.decode("utf-8")
        assert "\r" not in text and text.endswith("\n"), name


def test_meter_point_rows(exports, registry):
    rows = rows_of(exports[G, 1]["meter-points.csv"])
    assert [r["malo_id"] for r in rows] == list(registry.malo_order)
    by_malo = {r["malo_id"]: r for r in rows}
    wind = by_malo[chain.malo(4)]
    assert wind["period_start"] == "2026-11-21T10:00:00Z" and wind["period_end"] == "2026-11-21T10:15:00Z"
    assert (wind["import_wh"], wind["export_wh"], wind["source"], wind["quality"], wind["version"]) == \
        ("3", "400011", "wind", "measured", "1")
    missing = by_malo[chain.MISSING_AT_G]
    assert missing["quality"] == "missing" and (missing["import_wh"], missing["export_wh"]) == ("", "")
    assert by_malo[chain.malo(8)]["balancing_group"] == "" and by_malo[chain.malo(8)]["kind"] == "boundary"
    manifest = json.loads(exports[G, 1]["manifest.json"])
    assert {r["seal_hash"] for r in rows} == {manifest["seal_hash"]}
    # the next period: a substituted value copies the previous period's energies
    nxt = {r["malo_id"]: r for r in rows_of(exports[G + 1, 1]["meter-points.csv"])}
    skipped = nxt[chain.SKIPPED_AT_G1]
    assert skipped["quality"] == "substituted"
    assert (skipped["import_wh"], skipped["export_wh"]) == (by_malo[chain.SKIPPED_AT_G1]["import_wh"],
                                                            by_malo[chain.SKIPPED_AT_G1]["export_wh"])


def test_jsonl_is_the_csv_typed(exports):
    files = exports[G, 1]
    lines = files["meter-points.jsonl"].decode().splitlines()
    for line, row in zip(lines, rows_of(files["meter-points.csv"])):
        obj = json.loads(line)
        assert list(obj) == sorted(obj)
        assert {k: "" if v is None else str(v) for k, v in obj.items()} == row
        if obj["quality"] == "missing":  # missing is not zero: null, never 0
            assert obj["import_wh"] is None and obj["export_wh"] is None
        else:
            assert type(obj["import_wh"]) is int


def test_group_area_and_schedule_tables(exports, registry):
    files = exports[G, 1]
    groups = {r["balancing_group"]: r for r in rows_of(files["balancing-groups.csv"])}
    assert list(groups) == list(registry.balancing_groups)
    g1, g2 = groups[G1], groups[G2]
    assert (g1["schedules_out_wh"], g2["schedules_in_wh"]) == ("5000", "5000")
    assert g2["mix_wind_wh"] == "400011" and g2["injection_wh"] == "400011"
    for g in groups.values():
        assert int(g["imbalance_wh"]) == int(g["injection_wh"]) + int(g["schedules_in_wh"]) - \
            int(g["withdrawal_wh"]) - int(g["schedules_out_wh"])
    areas = rows_of(files["areas.csv"])
    for a in areas:
        assert int(a["injection_wh"]) + int(a["exchange_in_wh"]) - int(a["withdrawal_wh"]) - \
            int(a["exchange_out_wh"]) == int(a["loss_wh"])
    assert sum(int(g["imbalance_wh"]) for g in groups.values()) == \
        sum(int(a["exchange_out_wh"]) - int(a["exchange_in_wh"]) for a in areas)
    schedules = rows_of(files["schedules.csv"])
    assert [(s["from_group"], s["to_group"], s["status"], s["wh"]) for s in schedules] == \
        [(G1, G2, "matched", "5000"), (G2, G3, "one_sided", "0")]
    assert (schedules[1]["from_signed_wh"], schedules[1]["to_signed_wh"]) == ("700", "")


def time_303(iso: str) -> str:
    """'2026-11-21T10:00:00Z' -> '202611211000+00' (CCYYMMDDHHMM and the UTC offset)."""
    return iso[0:4] + iso[5:7] + iso[8:10] + iso[11:13] + iso[14:16] + "+00"


def _pydifact_quantities(data: bytes) -> list[tuple[str, str, str, int, str, str]]:
    from pydifact.segmentcollection import Interchange

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interchange = Interchange.from_str(data.decode())
        segments = list(interchange.segments)
    out, malo, obis, qty = [], None, None, None
    for s in segments:
        if s.tag == "LOC":
            malo = s.elements[1]
        elif s.tag == "PIA":
            obis = s.elements[1][0]
        elif s.tag == "QTY":
            qualifier, value, unit = s.elements[0]
            assert unit == "KWH"
            whole, frac = value.split(".")
            assert len(frac) == 3
            qty = [malo, obis, qualifier, int(whole) * 1000 + int(frac)]
        elif s.tag == "DTM" and s.elements[0][0] in ("163", "164"):
            assert s.elements[0][2] == "303"
            qty.append(s.elements[0][1])
            if len(qty) == 6:
                out.append(tuple(qty))
    return out


@pytest.mark.parametrize("key", [(G, 1), (G, 2), (G + 1, 2), (G + 2, 1)])
def test_mscons_read_back_with_pydifact_matches_the_csv(exports, key):
    files = exports[key]
    rows = rows_of(files["meter-points.csv"])
    seen = 0
    for name, data in files.items():
        if not name.endswith(".edi"):
            continue
        group = name[len("mscons-"):-len(".edi")]
        start, end = time_303(rows[0]["period_start"]), time_303(rows[0]["period_end"])
        want = []
        for r in rows:
            if r["balancing_group"] == group and r["quality"] != "missing":  # no QTY for a missing value
                q = {"measured": "220", "corrected": "220", "substituted": "67"}[r["quality"]]
                want.append((r["malo_id"], "1-0:1.29.0", q, int(r["import_wh"]), start, end))
                want.append((r["malo_id"], "1-0:2.29.0", q, int(r["export_wh"]), start, end))
        got = _pydifact_quantities(data)
        assert got == want
        assert got == [(q.malo_id, q.obis, q.qualifier, q.wh, q.start[0], q.end[0])
                       for q in read_quantities(parse_segments(data))]
        seen += len(got)
    assert seen == 2 * sum(1 for r in rows if r["balancing_group"] and r["quality"] != "missing")


def test_mscons_envelope(exports):
    data = exports[G, 2][f"mscons-{G1}.edi"].decode()
    lines = data.splitlines()
    assert lines[0] == "UNA:+.? '"
    assert lines[2] == "UNH+1+MSCONS:D:04B:UN:2.4c'"
    assert lines[3].startswith("BGM+7+") and lines[3].endswith("+5'")  # a correction replaces version 1
    assert exports[G, 1][f"mscons-{G1}.edi"].decode().splitlines()[3].endswith("+9'")
    assert lines[4] == "DTM+137:202611211030?+00:303'"  # end of the period whose seal committed version 2
    unb, unz, unt = lines[1], lines[-1], lines[-2]
    reference = unb.rstrip("'").split("+")[-1]
    assert len(reference) == 14 and unz == f"UNZ+1+{reference}'"
    assert unt == f"UNT+{len(lines) - 3}+1'"  # UNH .. UNT
    assert f"NAD+MR+{G1}::305'" in lines
    assert QUALIFIERS == {1: "220", 3: "220", 2: "67"}


@pytest.mark.parametrize("wh, text", [(0, "0.000"), (5, "0.005"), (999, "0.999"), (1000, "1.000"), (1234, "1.234"),
                                      (2**64 - 1, "18446744073709551.615")])
def test_kwh(wh, text):
    assert kwh(wh) == text and parse_kwh(text) == wh


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_kwh_round_trip(wh):
    assert parse_kwh(kwh(wh)) == wh


def test_leaves_give_the_same_export(registry, commits, exports):
    c = commits[0]
    leaves = [leaf_message(G, r) for r in c.rows[G]]
    assert build_export(registry, c.seal_bytes, c.certificate, G, leaves) == exports[G, 1]


def test_build_refuses_what_would_not_verify(registry, commits):
    c = commits[0]
    rows = list(c.rows[G])
    rows[2] = rows[2]._replace(import_wh=rows[2].import_wh + 1)
    with pytest.raises(ExportError, match="do not recompute"):
        build_export(registry, c.seal_bytes, c.certificate, G, rows)
    with pytest.raises(ExportError, match="insufficient_power"):
        build_export(registry, c.seal_bytes, chain.certify(registry, G, c.seal_hash, (0, 1)), G, c.rows[G])
    with pytest.raises(ExportError, match="wrong_height"):
        build_export(registry, c.seal_bytes, commits[1].certificate, G, c.rows[G])
    with pytest.raises(ExportError, match="wrong_hash"):
        build_export(registry, c.seal_bytes, chain.certify(registry, G, bytes(32)), G, c.rows[G])
    with pytest.raises(ExportError, match="no result for period"):
        build_export(registry, c.seal_bytes, c.certificate, G + 1, c.rows[G])
    c2 = commits[1]
    with pytest.raises(ExportError, match="changes.csv"):
        build_export(registry, c2.seal_bytes, c2.certificate, G, c2.rows[G])


def test_devnet_genesis_with_short_periods(tmp_path):
    """The devnet genesis (10 s periods, several areas, tie lines, loss groups): exports verify, and MSCONS
    writes instants within a minute in format 304 (with seconds)."""
    from stromledger.cascade import Ledger, make_batch, sign_reading
    from nodes.datagen.devnet_genesis import devnet_key, make_devnet_genesis, meter_label
    from stromledger.export import verify_export
    from stromledger.registry import load_genesis

    registry = load_genesis(make_devnet_genesis(tmp_path, meters=60))
    ledger = Ledger(registry)
    submitter = devnet_key("validator-1")
    h = registry.genesis_period
    for height in (h, h + 1):
        readings = [sign_reading(devnet_key(meter_label(m)), registry.chain_id, m, height,
                                 registry.max_wh(m) // 3, registry.max_wh(m) // 7)
                    for i, m in enumerate(registry.malo_order) if (i + height) % 5]
        assert ledger.admit(make_batch(submitter, registry.chain_id, readings), None).refused is None
        outcome = ledger.propose()
        ledger.commit(outcome.seal_bytes)
        keys = [devnet_key(f"validator-{i}") for i in (1, 2, 3)]
        cert = _certify(registry, keys, height, outcome.seal_hash)
        files = build_export(registry, outcome.seal_bytes, cert, height, ledger.rows(height))
        assert verify_export(files, registry).ok
        start = registry.period(height).start
        edi = next(d for n, d in sorted(files.items()) if n.endswith(".edi")).decode()
        fmt = "303" if start % 60 == 0 else "304"
        assert f"DTM+163:{_stamp(start, fmt)}?+00:{fmt}'" in edi


def _stamp(unix_s: int, fmt: str) -> str:
    import datetime as dt

    t = dt.datetime.fromtimestamp(unix_s, dt.timezone.utc)
    return t.strftime("%Y%m%d%H%M%S" if fmt == "304" else "%Y%m%d%H%M")


def _certify(registry, keys, height, seal_hash):
    from stromledger.consensus import Precommit, ValidatorSet, build_certificate, sign_vote

    votes = [sign_vote(Precommit, k, registry.chain_id, height, 0, seal_hash) for k in keys]
    return build_certificate(height, 0, seal_hash, votes, ValidatorSet(registry.validator_keys()))


def test_mscons_is_addressed_with_market_partner_ids_where_the_genesis_gives_them(registry, commits):
    """An area chain's MSCONS comes from its grid operator and goes to the group's BRP by their 13-digit
    market-partner ids (UNB code list 500, NAD 293); without ids the chain id and the group EIC stay."""
    from dataclasses import replace

    from stromledger.export import mscons
    from stromledger.export.build import mscons_files, mscons_recipient, mscons_sender
    from stromledger.ids import make_market_partner_id
    from stromledger.registry import Registry, view

    ids = {eic: make_market_partner_id(f"99{n:010d}") for n, eic in
           enumerate([*registry.grid_areas, *registry.balancing_groups], start=1)}
    named = Registry(registry.params, registry.validators,
                     [replace(a, market_partner_id=ids[a.eic]) for a in registry.grid_areas.values()],
                     [replace(g, market_partner_id=ids[g.eic]) for g in registry.balancing_groups.values()],
                     registry.meter_operators.values(), registry.meter_points.values(), registry.assignments)
    area = next(iter(named.grid_areas))
    assert mscons_sender(view(named, area), "x") == mscons.Party(ids[area], "500", "293")
    assert mscons_sender(named, "chain-1") == mscons.Party("chain-1", "ZZ", "ZZZ")  # several areas: the chain
    group = next(iter(registry.balancing_groups))
    assert mscons_recipient(named, group) == mscons.Party(ids[group], "500", "293")
    assert mscons_recipient(registry, group) == mscons.Party(group, "ZZ", "305")

    c = commits[0]  # period G's seal and rows, written with the named registry's addresses
    files = mscons_files(view(named, area), PeriodSeal.decode(c.seal_bytes), c.seal_hash, G, 1, c.rows[G])
    text = next(iter(files.values())).decode()
    assert f"NAD+MS+{ids[area]}::293'" in text and "::293'\nUNS+D'" in text
    assert f"+{ids[area]}:500+" in text.splitlines()[1]
