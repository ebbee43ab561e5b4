"""The registry and genesis files: every defect with its place, the canonical hash, lookups, the CLI."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from nodes.cli import main
from nodes.datagen.devnet_genesis import devnet_key, devnet_registry, make_devnet_genesis, meter_label
from nodes.datagen.synthetic import eic_for, make_synthetic
from stromledger.crypto import SigningKey, sha256
from stromledger.ids import make_malo_id
from stromledger.registry import (
    GenesisError, MeterPoint, Registry, check_genesis, load_genesis, meter_points_csv, write_genesis,
)

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
A1, A2, G1, L1 = eic_for("TAREA", 1), eic_for("TAREA", 2), eic_for("TBG", 1), eic_for("TLOSS", 1)
KEY = SigningKey.from_label("registry-test").public.hex()
M1, M2, M3 = (make_malo_id(f"{6_000_000_000 + i}") for i in range(3))
HEADER = "malo_id,kind,source,grid_area,balancing_group,meter_operator,meter_key,max_power_w,area_out,area_in"


def write(tmp_path: Path, toml: str, csv: str | None = None, pin: str | None = None) -> Path:
    if csv is not None:
        (tmp_path / "mp.csv").write_text(csv)
        pin = pin or sha256(csv.encode()).hex()
        toml = toml.replace("@PIN@", pin)
    path = tmp_path / "genesis.toml"
    path.write_text(toml)
    return path


GOOD = f"""
[chain]
id = "t"
genesis = "2026-01-01T00:00:00Z"
period_seconds = 900
gate_closure_grace_seconds = 60
correction_window_periods = 4

[meter_point_file]
path = "mp.csv"
sha256 = "@PIN@"

[[validators]]
name = "v1"
public_key = "{SigningKey.from_label('v1').public.hex()}"
grid_area = "{A1}"

[[grid_areas]]
eic = "{A1}"
name = "one"
operator = "Grid One"
loss_balancing_group = "{L1}"

[[balancing_groups]]
eic = "{G1}"
name = "g"
operator_key = "{KEY}"

[[balancing_groups]]
eic = "{L1}"
name = "loss"
operator_key = "{KEY}"

[[meter_operators]]
name = "op"
public_key = "{KEY}"
"""
GOOD_CSV = f"{HEADER}\n{M1},consumer,grid,{A1},{G1},op,{KEY},30000,,\n"


def found(defects) -> set[tuple[str, str, str, str]]:
    return {(d.file, d.where, d.field, d.severity) for d in defects}


def test_a_small_good_genesis(tmp_path):
    registry, defects = check_genesis(write(tmp_path, GOOD, GOOD_CSV))
    assert registry is not None
    assert [d.severity for d in defects] == ["warning"]  # one validator: tolerates no fault
    assert "fewer than 4" in defects[0].message
    assert registry.meter_points[M1].max_power_w == 30_000
    assert registry.genesis_period == 1_767_225_600 // 900


def test_every_defect_is_reported_with_its_place(tmp_path):
    toml = GOOD.replace('id = "t"', 'id = "bad id!"').replace(
        'genesis = "2026-01-01T00:00:00Z"', 'genesis = "2026-01-01T00:00:05Z"').replace(
        "gate_closure_grace_seconds = 60", "gate_closure_grace_seconds = -1\ncolour = \"blue\"") + f"""
[[validators]]
name = "v1"
public_key = "{SigningKey.from_label('v2').public.hex()}"
grid_area = "{A1}"

[[validators]]
name = "v3"
public_key = "xyz"
grid_area = "{A2}"

[[grid_areas]]
eic = "10YDE-EON------2"
name = "bad check character"
operator = "x"
loss_balancing_group = "{L1}"

[[balancing_groups]]
eic = "{G1}"
name = "again"
operator_key = "{KEY}"

[[meter_points]]
malo_id = "{M3[:-1]}{(int(M3[-1]) + 1) % 10}"
kind = "consumer"
source = "grid"
grid_area = "{A1}"
balancing_group = "{G1}"
meter_operator = "op"
meter_key = "{KEY}"
max_power_w = 1000

[[assignments]]
malo_id = "{M3}"
balancing_group = "{G1}"
from = "2026-02-01T00:00:00Z"
"""
    csv = (f"{HEADER}\n"
           f"{M1},consumer,grid,{A1},{G1},op,{KEY},30000,,\n"
           f"{M1},consumer,grid,{A1},{G1},op,{KEY},30000,,\n"
           f"{M2},consumer,pv,{A1},{G1},op,{KEY},30000,,\n"
           f"{M3},consumer,grid,{A1},,op,{KEY},30000,,\n"
           f"{make_malo_id('6000000009')},boundary,grid,{A1},{G1},op,{KEY},30000,{A1},{A1}\n"
           f"{make_malo_id('6000000010')},producer,wind,{A1},{G1},nobody,{KEY},0,,\n"
           f"{make_malo_id('6000000011')},consumer,grid\n"
           f"{make_malo_id('6000000012')},consumer,grid,{A1},{G1},op,abc,30000,,\n")
    registry, defects = check_genesis(write(tmp_path, toml, csv, pin="0" * 64))
    assert registry is None
    got = found(defects)
    expected = {
        ("genesis.toml", "[chain]", "colour", "error"),
        ("genesis.toml", "[chain]", "id", "error"),
        ("genesis.toml", "[chain]", "genesis", "error"),
        ("genesis.toml", "[chain]", "gate_closure_grace_seconds", "error"),
        ("genesis.toml", "[meter_point_file]", "sha256", "error"),
        ("genesis.toml", "[[validators]] #2", "name", "error"),
        ("genesis.toml", "[[validators]] #3", "public_key", "error"),
        ("genesis.toml", "[[validators]] #3", "grid_area", "error"),
        ("genesis.toml", "[[validators]]", "", "warning"),
        ("genesis.toml", "[[grid_areas]] #2", "eic", "error"),
        ("genesis.toml", "[[balancing_groups]] #3", "eic", "error"),
        ("genesis.toml", "[[meter_points]] #1", "malo_id", "error"),
        ("genesis.toml", "[[assignments]] #1", "malo_id", "error"),  # M3 was refused, so it is unknown
        ("mp.csv", "line 3", "malo_id", "error"),
        ("mp.csv", "line 4", "source", "error"),
        ("mp.csv", "line 5", "balancing_group", "error"),
        ("mp.csv", "line 6", "balancing_group", "error"),
        ("mp.csv", "line 6", "area_in", "error"),
        ("mp.csv", "line 7", "meter_operator", "error"),
        ("mp.csv", "line 7", "max_power_w", "error"),
        ("mp.csv", "line 8", "", "error"),
        ("mp.csv", "line 9", "meter_key", "error"),
    }
    assert expected <= got, expected - got
    assert all(str(d).startswith(d.file) for d in defects)
    messages = {(d.where, d.field): d.message for d in defects}
    assert "check" in messages["[[grid_areas]] #2", "eic"]
    assert "SHA-256" in messages["[meter_point_file]", "sha256"]
    assert "first in" in messages["line 3", "malo_id"]
    with pytest.raises(GenesisError) as err:
        load_genesis(tmp_path / "genesis.toml")
    assert err.value.defects == defects


@pytest.mark.parametrize("toml, where", [
    ("[chain\nid = 1", "file"),
    ("", "[chain]"),
    ("[chain]\nid = 5\n", "[chain]"),
])
def test_unreadable_genesis(tmp_path, toml, where):
    registry, defects = check_genesis(write(tmp_path, toml))
    assert registry is None and defects[0].where == where


def test_missing_files(tmp_path):
    registry, defects = check_genesis(tmp_path / "nope.toml")
    assert registry is None and "cannot read" in defects[0].message
    registry, defects = check_genesis(write(tmp_path, GOOD.replace("@PIN@", "0" * 64)))
    assert registry is None and ("genesis.toml", "[meter_point_file]", "path", "error") in found(defects)


def test_csv_header_must_name_every_column(tmp_path):
    csv = GOOD_CSV.replace("max_power_w", "max_power")
    registry, defects = check_genesis(write(tmp_path, GOOD, csv))
    assert registry is None and ("mp.csv", "line 1", "", "error") in found(defects)


def test_write_and_load_keep_the_canonical_hash(tmp_path):
    grid = make_synthetic(60, seed=4, switches=5)
    path = write_genesis(grid.registry, tmp_path)
    loaded = load_genesis(path)
    assert loaded.hash == grid.registry.hash
    assert loaded.assignments == grid.registry.assignments
    # the row order of the CSV is formatting, not content
    lines = (tmp_path / "genesis-meter-points.csv").read_text().splitlines()
    body = lines[1:]
    random.Random(1).shuffle(body)
    shuffled = "\n".join([lines[0], *body]) + "\n"
    (tmp_path / "genesis-meter-points.csv").write_text(shuffled)
    text = path.read_text()
    old_pin = sha256(meter_points_csv(grid.registry)).hex()
    path.write_text(text.replace(old_pin, sha256(shuffled.encode()).hex()))
    assert load_genesis(path).hash == grid.registry.hash


def test_any_content_change_changes_the_hash():
    reg = make_synthetic(10, seed=2).registry
    m = reg.malo_order[-1]
    points = [mp._replace(max_power_w=mp.max_power_w + 1) if mp.malo_id == m else mp
              for mp in reg.meter_points.values()]
    changed = Registry(reg.params, reg.validators, reg.grid_areas.values(), reg.balancing_groups.values(),
                       reg.meter_operators.values(), points, reg.assignments)
    assert changed.hash != reg.hash
    reordered = Registry(reg.params, reversed(reg.validators), reg.grid_areas.values(),
                         reg.balancing_groups.values(), reg.meter_operators.values(), points, reg.assignments)
    assert reordered.hash != changed.hash  # validator order is the proposer order: it is content


def test_group_of_follows_supplier_switches():
    grid = make_synthetic(30, seed=5, switches=4)
    reg = grid.registry
    g = reg.genesis_period
    for a in reg.assignments:
        start = reg.meter_points[a.malo_id].balancing_group
        assert reg.group_of(a.malo_id, g) == reg.group_of(a.malo_id, a.from_period - 1) == start
        assert reg.group_of(a.malo_id, a.from_period) == reg.group_of(a.malo_id, a.from_period + 100) == a.group
        assert reg.group_overrides(a.from_period)[a.malo_id] == a.group
        assert a.malo_id not in reg.group_overrides(g)
    assert reg.max_wh(reg.malo_order[0]) == reg.meter_points[reg.malo_order[0]].max_power_w * 900 // 3600


def test_committed_devnet_genesis_is_the_generator_output(tmp_path):
    registry, defects = check_genesis(CONFIGS / "devnet.toml")
    assert registry is not None and defects == []
    path = make_devnet_genesis(tmp_path)
    assert path.read_bytes() == (CONFIGS / "devnet.toml").read_bytes()
    assert (tmp_path / "devnet-meter-points.csv").read_bytes() == \
        (CONFIGS / "devnet-meter-points.csv").read_bytes()
    assert len(registry.validators) == 4 and len(registry.grid_areas) == 2
    assert len(registry.balancing_groups) == 5 and len(registry.loss_groups) == 2
    kinds = {m.kind for m in registry.meter_points.values()}
    assert kinds == {"consumer", "producer", "prosumer", "boundary"}
    ties = [registry.meter_points[m] for m in registry.boundary]
    assert any(t.area_out and t.area_in for t in ties) and any(not t.area_in for t in ties)
    # anyone can re-derive the devnet keys from their labels
    assert registry.validators[0].public_key == SigningKey.from_label("validator-1").public
    m = registry.malo_order[5]
    assert registry.meter_points[m].meter_key == devnet_key(meter_label(m)).public


@pytest.mark.parametrize("validators, groups, meters", [(7, 2, 50), (1, 1, 3), (10, 6, 400)])
def test_devnet_genesis_of_other_sizes_checks(tmp_path, validators, groups, meters):
    path = make_devnet_genesis(tmp_path, validators, groups, meters, period_seconds=5, seed=3,
                               genesis_start=1_800_000_000)
    registry, defects = check_genesis(path)
    assert registry is not None, defects
    assert [d.severity for d in defects] == (["warning"] if validators < 4 else [])
    assert len(registry.meter_points) == meters and len(registry.validators) == validators
    assert devnet_registry(validators, groups, meters, 5, 3, genesis_start=1_800_000_000).hash == registry.hash


def test_cli_genesis_check(tmp_path, capsys):
    assert main(["genesis", "check", str(CONFIGS / "devnet.toml")]) == 0
    out = capsys.readouterr().out
    assert "stromledger-devnet" in out and "validator-4" in out and "registry hash" in out
    bad = write(tmp_path, GOOD, GOOD_CSV.replace("30000", "-5"))
    assert main(["genesis", "check", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "mp.csv: line 2, max_power_w: must be positive" in out


def test_cli_genesis_devnet(tmp_path, capsys):
    assert main(["genesis", "devnet", "--dir", str(tmp_path), "--meters", "30", "--genesis",
                 "2027-03-01T12:00:00Z"]) == 0
    registry = load_genesis(tmp_path / "devnet.toml")
    assert registry.genesis_period * registry.period_seconds == 1_803_902_400
    assert main(["genesis", "devnet", "--dir", str(tmp_path), "--genesis", "yesterday"]) == 2


def test_meter_point_is_a_plain_tuple():
    mp = MeterPoint("41373559241", "consumer", "grid", A1, G1, "op", b"k" * 32, 1)
    assert isinstance(mp, tuple) and mp.area_out == "" and mp.area_in == ""


def test_correction_window_fits_in_a_seal(tmp_path):
    toml = GOOD.replace("correction_window_periods = 4", "correction_window_periods = 10000")
    registry, defects = check_genesis(write(tmp_path, toml, GOOD_CSV))
    assert registry is None and ("genesis.toml", "[chain]", "correction_window_periods", "error") in found(defects)


BIG = 10**30


@pytest.mark.parametrize("old, new, field", [
    ("gate_closure_grace_seconds = 60", f"gate_closure_grace_seconds = {BIG}", "gate_closure_grace_seconds"),
    ("correction_window_periods = 4", f"correction_window_periods = {BIG}", "correction_window_periods"),
    ("period_seconds = 900", f"period_seconds = {BIG}", "period_seconds"),
    ("correction_window_periods = 4", f"correction_window_periods = 4\nschedule_horizon_periods = {BIG}",
     "schedule_horizon_periods"),
    ('genesis = "2026-01-01T00:00:00Z"', f"genesis = {BIG}", "genesis"),
])
def test_every_number_in_the_chain_table_is_bounded(tmp_path, capsys, old, new, field):
    path = write(tmp_path, GOOD.replace(old, new), GOOD_CSV)
    registry, defects = check_genesis(path)
    assert registry is None and ("genesis.toml", "[chain]", field, "error") in found(defects)
    assert main(["genesis", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "Traceback" not in out and f"[chain], {field}:" in out


@pytest.mark.parametrize("power", [2**64 - 1, BIG])
def test_max_power_is_bounded_so_no_total_can_overflow(tmp_path, capsys, power):
    path = write(tmp_path, GOOD, GOOD_CSV.replace("30000", str(power)))
    assert main(["genesis", "check", str(path)]) == 1
    assert "mp.csv: line 2, max_power_w: " in capsys.readouterr().out


def test_the_sum_of_max_power_is_bounded(tmp_path, monkeypatch):
    # at the real bound (2**61 Wh) it takes a million meters of 100 GW: scaled down here
    from stromledger.registry import genesis
    rows = "".join(f"{make_malo_id(f'{6_100_000_000 + i}')},consumer,grid,{A1},{G1},op,{KEY},{10**11},,\n"
                   for i in range(10))
    path = write(tmp_path, GOOD, HEADER + "\n" + rows)  # 10 x 25 GWh in a 900 s period
    monkeypatch.setattr(genesis, "MAX_TOTAL_WH", 250 * 10**9)
    assert check_genesis(path)[0] is not None
    monkeypatch.setattr(genesis, "MAX_TOTAL_WH", 250 * 10**9 - 1)
    registry, defects = check_genesis(path)
    assert registry is None and ("genesis.toml", "meter points", "max_power_w", "error") in found(defects)


def test_a_genesis_without_validators_is_not_usable(tmp_path):
    toml = GOOD.split("[[validators]]")[0] + "[[grid_areas]]" + GOOD.split("[[grid_areas]]")[1]
    registry, defects = check_genesis(write(tmp_path, toml, GOOD_CSV))
    assert registry is None and ("genesis.toml", "[[validators]]", "", "error") in found(defects)


def test_a_deeply_nested_toml_array_is_one_error(tmp_path, capsys):
    path = write(tmp_path, GOOD + "deep = " + "[" * 5000 + "]" * 5000 + "\n", GOOD_CSV)
    registry, defects = check_genesis(path)
    assert registry is None and defects[0].where == "file" and "nested too deeply" in defects[0].message
    assert main(["genesis", "check", str(path)]) == 1


def test_counts_are_bounded_by_what_a_period_result_lists(tmp_path, monkeypatch):
    from stromledger.cascade.messages import PeriodResult
    from stromledger.codec import MaxLen
    from stromledger.registry import genesis

    bounds = {name: next(m.n for m in hint.__metadata__ if isinstance(m, MaxLen))
              for name, hint in __import__("typing").get_type_hints(PeriodResult, include_extras=True).items()
              if name in ("areas", "groups", "cells")}
    assert bounds == {"areas": genesis.MAX_GRID_AREAS, "groups": genesis.MAX_BALANCING_GROUPS,
                      "cells": genesis.MAX_CELLS}
    monkeypatch.setattr(genesis, "MAX_BALANCING_GROUPS", 1)  # the small genesis has two (one loss group)
    registry, defects = check_genesis(write(tmp_path, GOOD, GOOD_CSV))
    assert registry is None and any("2 balancing groups, more than the 1" in str(d) for d in defects)


def test_the_default_correction_window_is_two_months(tmp_path):
    toml = GOOD.replace("correction_window_periods = 4\n", "")
    registry, defects = check_genesis(write(tmp_path, toml, GOOD_CSV))
    assert registry is not None and registry.period_seconds == 900, defects
    assert registry.correction_window == 5_760  # 60 days of 96 quarter hours
