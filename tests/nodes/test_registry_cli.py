"""`stromledger registry change` (TOML in, a signed change checked with its reason out) and `registry show`;
the devnet's churn plan is signed by whom docs/registry.md says."""

from __future__ import annotations

import json
import time

import pytest

from nodes.churn import EFFECTIVE_AFTER, area_of, plan_churn
from nodes.cli import main
from nodes.commands.registry import read_change, registry_report
from nodes.commands.submit import InputError
from nodes.datagen.devnet_genesis import devnet_key, make_devnet_genesis
from nodes.setup import init_home
from stromledger.cascade.changes import change_shape, change_signature, change_verdict
from stromledger.registry import METER_KEY_ROTATED, load_genesis, registry_at, view

PERIOD = 10


@pytest.fixture(scope="module")
def homes(tmp_path_factory):
    base = tmp_path_factory.mktemp("registry")
    start = (int(time.time()) // PERIOD + 100) * PERIOD  # genesis well ahead: changes are not late
    genesis = make_devnet_genesis(base / "genesis", 4, 3, 30, PERIOD, 1, genesis_start=start, chain_id="reg-cli")
    registry = load_genesis(genesis)
    grid = next(v.name for v in registry.validators if v.grid_area == next(iter(registry.grid_areas)))
    init_home(base / "grid", "validator", genesis, key=devnet_key(grid), name=grid)
    init_home(base / "metering", "meter-point", genesis, key=devnet_key("meter-operator-1"), name="mop")
    return base, registry


def write(path, text):
    path.write_text(text)
    return str(path)


def first_consumer(registry):
    area = next(iter(registry.grid_areas))
    return next(m for m in registry.malo_order if registry.meter_points[m].grid_area == area
                and registry.meter_points[m].kind == "consumer")


def test_a_switch_in_toml_is_signed_and_checked(homes, tmp_path, capsys):
    base, registry = homes
    m = first_consumer(registry)
    old = registry.meter_points[m].balancing_group
    new = next(g for g in registry.balancing_groups if g != old and g.startswith(old[:3]))
    effective = registry.genesis_period + 5
    ok = write(tmp_path / "switch.toml", f'kind = "switch"\nmalo_id = "{m}"\neffective = "{effective}"\n'
                                         f'balancing_group = "{new}"\n')
    assert main(["registry", "change", "--home", str(base / "grid"), ok, "--dry-run"]) == 0
    assert "ok: the change checks out" in capsys.readouterr().out
    # the meter operator's home may not sign a switch: refused with its reason, exit 1
    assert main(["registry", "change", "--home", str(base / "metering"), ok, "--dry-run"]) == 1
    assert "REFUSED: wrong_signer" in capsys.readouterr().out
    late = write(tmp_path / "late.toml", f'kind = "switch"\nmalo_id = "{m}"\neffective = "1"\n'
                                         f'balancing_group = "{new}"\n')
    assert main(["registry", "change", "--home", str(base / "grid"), late, "--dry-run"]) == 1
    assert "REFUSED: change_too_late" in capsys.readouterr().out


@pytest.mark.parametrize("text, why", [
    ('kind = "swap"\nmalo_id = "x"\neffective = "1"\n', "kind 'swap' is not one of"),
    ('kind = "switch"\nmalo_id = "41373559241"\neffective = "1"\n', "needs balancing_group"),
    ('kind = "retire_meter_point"\nmalo_id = "41373559241"\neffective = "1"\ngroup = "x"\n', "has no group"),
    ('kind = "rotate_key"\nmalo_id = "41373559241"\neffective = "1"\nmeter_key = "zz"\n', "64 hex digits"),
    ('kind = "switch"\nmalo_id = ', "Invalid"),
])
def test_a_wrong_change_file_is_refused_with_one_line(homes, tmp_path, text, why):
    _, registry = homes
    with pytest.raises(InputError, match=why):
        read_change(write(tmp_path / "c.toml", text), registry, devnet_key("validator-1"))


def test_registry_show_prints_the_version_of_a_period(homes, capsys):
    base, registry = homes
    assert main(["registry", "show", "--home", str(base / "grid"), "--at", str(registry.genesis_period),
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"] == doc["genesis_hash"] == registry.hash.hex()
    assert doc["meter_points"] == len(registry.meter_points) and doc["in_effect"] == []


def test_the_churn_plan_is_signed_as_the_rules_say_and_changes_the_version(homes):
    _, registry = homes
    changes = plan_churn(registry)
    kinds = sorted(c.kind_name for c in changes)
    assert kinds == sorted(["switch"] * len(registry.grid_areas) + ["retire_meter_point", "rotate_key",
                                                                     "add_meter_point"])
    height = registry.genesis_period
    for c in changes:
        chain = view(registry, area_of(registry, c))
        assert c.effective_period == height + EFFECTIVE_AFTER
        assert (change_shape(chain, c) or change_signature(chain, c) or
                change_verdict(chain, (), c, height, {}, frozenset())) is None, c.describe()
        if c.kind == METER_KEY_ROTATED:
            assert c.signer != next(v.public_key for v in registry.validators)
    report = registry_report(registry, tuple(sorted(changes, key=lambda c: (c.effective_period, c.digest()))),
                             height + EFFECTIVE_AFTER)
    assert report["version"] != report["genesis_hash"]
    # each area chain's version is its view plus its own changes: what its seals and exports name
    for area, version in report["area_versions"].items():
        own = tuple(sorted((c for c in changes if area_of(registry, c) == area),
                           key=lambda c: (c.effective_period, c.digest())))
        assert version == registry_at(view(registry, area), height + EFFECTIVE_AFTER, own).version.hex()
        assert version != view(registry, area).hash.hex()
    assert report["meter_points"] == len(registry.meter_points)  # one added, one retired
    assert {m["status"] for m in report["changed_meter_points"]} == {"registered", "retired"}
