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


@pytest.fixture(scope="module")
def seated(tmp_path_factory):
    """A genesis of 5 validators where only the first 4 sit on committees (validator-5 follows its area)."""
    base = tmp_path_factory.mktemp("committee")
    start = (int(time.time()) // PERIOD + 100) * PERIOD
    genesis = make_devnet_genesis(base / "genesis", 5, 3, 30, PERIOD, 1, genesis_start=start, chain_id="reg-com",
                                  seated=4)
    registry = load_genesis(genesis)
    for i in range(1, 6):
        init_home(base / f"v{i}", "validator", genesis, key=devnet_key(f"validator-{i}"), name=f"validator-{i}")
    return base, registry


def test_a_committee_change_is_approved_by_the_members_and_checked_with_its_approvals(seated, tmp_path, capsys):
    base, registry = seated
    area = next(v.grid_area for v in registry.validators if v.name == "validator-5")
    effective = registry.genesis_period + 5
    change = write(tmp_path / "committee.toml",
                   f'kind = "committee"\nscope = "{area}"\neffective = {effective}\n'
                   'members = ["validator-1", "validator-2", "validator-3", "validator-5"]\n')
    approvals = []
    for i in (1, 2, 3, 4):
        out = str(tmp_path / f"approval-{i}.toml")
        assert main(["registry", "approve", "--home", str(base / f"v{i}"), change, "--out", out]) == 0
        approvals.append(out)
    capsys.readouterr()
    home = str(base / "v1")
    assert main(["registry", "change", "--home", home, change, "--dry-run", "--approvals", *approvals[:3]]) == 0
    assert "ok: the change checks out" in capsys.readouterr().out
    # two of four: refused with its reason
    assert main(["registry", "change", "--home", home, change, "--dry-run", "--approvals", *approvals[:2]]) == 1
    assert "REFUSED: insufficient_approvals" in capsys.readouterr().out
    # validator-5 is no member of the committee in office: its approval does not count
    out = str(tmp_path / "approval-5.toml")
    assert main(["registry", "approve", "--home", str(base / "v5"), change, "--out", out]) == 0
    assert main(["registry", "change", "--home", home, change, "--dry-run", "--approvals", out,
                 *approvals[:2]]) == 1
    assert "REFUSED: unknown_approver" in capsys.readouterr().out
    # an approval of another change is refused before anything is sent
    other = write(tmp_path / "other.toml", f'kind = "committee"\nscope = "{area}"\neffective = {effective + 1}\n'
                                           'members = ["validator-1", "validator-2", "validator-3", "validator-5"]\n')
    assert main(["registry", "change", "--home", home, other, "--dry-run", "--approvals", *approvals]) == 2
    assert "does not approve this change" in capsys.readouterr().err
    bad = write(tmp_path / "bad.toml", f'kind = "committee"\nscope = "{area}"\neffective = {effective}\n'
                                       'members = "validator-1"\n')
    assert main(["registry", "change", "--home", home, bad, "--dry-run"]) == 2
    assert "members is a list" in capsys.readouterr().err


def test_the_churn_plan_replaces_a_committee_member_by_the_follower(seated):
    _, registry = seated
    from stromledger.cascade.changes import approved_shape, judge_change
    from stromledger.registry import CommitteeChange

    committee_changes = [c for c in plan_churn(registry) if isinstance(c, CommitteeChange)]
    assert len(committee_changes) == 1
    c = committee_changes[0]
    chain = view(registry, c.scope)
    assert list(c.members) == ["validator-1", "validator-2", "validator-3", "validator-5"]
    assert (approved_shape(chain, c) or judge_change(chain, (), c, registry.genesis_period, {}, frozenset())) is None


def test_market_and_meter_operator_changes_are_approved_and_checked_with_their_approvals(seated, tmp_path, capsys):
    from nodes.datagen.synthetic import eic_for
    from stromledger.ids import make_market_partner_id

    base, registry = seated
    effective = registry.genesis_period + 5
    group, partner = eic_for("CLIBG", 1), make_market_partner_id("990000000001")
    opening = write(tmp_path / "open.toml", f'kind = "open_group"\nbalancing_group = "{group}"\neffective = '
                                            f'{effective}\nname = "New group"\noperator_key = '
                                            f'"{devnet_key("new-brp").public.hex()}"\nmarket_partner_id = "{partner}"\n')
    approvals = []
    for i in (1, 2, 3):  # the network committee: validator-1 .. 4 (more than 2/3: 3)
        out = str(tmp_path / f"market-{i}.toml")
        assert main(["registry", "approve", "--home", str(base / f"v{i}"), opening, "--out", out]) == 0
        approvals.append(out)
    capsys.readouterr()
    home = str(base / "v1")
    assert main(["registry", "change", "--home", home, opening, "--dry-run", "--approvals", *approvals]) == 0
    assert "ok: the change checks out" in capsys.readouterr().out
    assert main(["registry", "change", "--home", home, opening, "--dry-run", "--approvals", *approvals[:2]]) == 1
    assert "REFUSED: insufficient_approvals" in capsys.readouterr().out
    wrong_id = write(tmp_path / "id.toml", f'kind = "market_partner_id"\nparty = "{group}"\neffective = '
                                           f'{effective}\nmarket_partner_id = "{partner[:12]}{(int(partner[12]) + 1) % 10}"\n')
    assert main(["registry", "change", "--home", home, wrong_id, "--dry-run"]) == 1
    out = capsys.readouterr().out
    assert "REFUSED: malformed" in out and "check digit" in out

    # WiM: the current meter operator's home and the area's grid operator (a validator home of the area)
    m = next(x for x in registry.malo_order if registry.meter_points[x].kind == "consumer")
    mp = registry.meter_points[m]
    label = next(f"meter-operator-{i}" for i in range(1, 10)
                 if devnet_key(f"meter-operator-{i}").public == registry.meter_operators[mp.meter_operator].public_key)
    init_home(tmp_path / "mop", "meter-point", base / "v1" / "genesis.toml", key=devnet_key(label), name="mop")
    grid = next(i for i in range(1, 6) if registry.validators[i - 1].grid_area == mp.grid_area)
    new_operator = next(n for n in registry.meter_operators if n != mp.meter_operator)
    wim = write(tmp_path / "wim.toml", f'kind = "meter_operator"\nmalo_id = "{m}"\neffective = {effective}\n'
                                       f'meter_operator = "{new_operator}"\n')
    both = [str(tmp_path / "wim-mop.toml"), str(tmp_path / "wim-grid.toml")]
    assert main(["registry", "approve", "--home", str(tmp_path / "mop"), wim, "--out", both[0]]) == 0
    assert main(["registry", "approve", "--home", str(base / f"v{grid}"), wim, "--out", both[1]]) == 0
    capsys.readouterr()
    assert main(["registry", "change", "--home", home, wim, "--dry-run", "--approvals", *both]) == 0
    assert "ok: the change checks out" in capsys.readouterr().out
    assert main(["registry", "change", "--home", home, wim, "--dry-run", "--approvals", both[0]]) == 1
    assert "REFUSED: insufficient_approvals" in capsys.readouterr().out


def test_registry_show_lists_groups_ids_and_meter_operators_as_changed(seated):
    from nodes.datagen.synthetic import eic_for
    from stromledger.ids import make_market_partner_id
    from stromledger.registry.market import GROUP_OPENED, PARTNER_ID_SET, market_change, operator_change

    _, registry = seated
    p = registry.genesis_period + 5
    group, area = eic_for("CLIBG", 2), next(iter(registry.grid_areas))
    opened = market_change(GROUP_OPENED, p, group, name="New group", operator_key=devnet_key("brp").public,
                           market_partner_id=make_market_partner_id("990000000001"))
    new_id = market_change(PARTNER_ID_SET, p, area, market_partner_id=make_market_partner_id("990000000002"))
    m = next(x for x in registry.malo_order if registry.meter_points[x].kind == "consumer")
    other = next(n for n in registry.meter_operators if n != registry.meter_points[m].meter_operator)
    history = tuple(sorted((opened, new_id, operator_change(m, p, other)), key=lambda c: (p, c.digest())))
    before, after = registry_report(registry, history, p - 1), registry_report(registry, history, p)
    assert {x["party"]: x["status"] for x in before["changed_parties"]} == {group: "not yet open", area: "grid area"}
    parties = {x["party"]: x for x in after["changed_parties"]}
    assert parties[group]["status"] == "open" and parties[group]["market_partner_id"] == opened.market_partner_id
    assert parties[area]["market_partner_id"] == new_id.market_partner_id
    assert after["changed_meter_points"][0]["meter_operator"] == other
    assert len(after["in_effect"]) == 3 and not after["scheduled"]
    assert after["area_versions"][area] != before["area_versions"][area]


def test_the_churn_plan_of_six_periods_opens_a_group_and_switches_into_it(homes):
    from nodes.churn import MARKET_PERIODS, opened_by
    from stromledger.cascade.changes import approved_shape, judge_change
    from stromledger.registry import NETWORK, MarketChange

    _, registry = homes
    plan = plan_churn(registry, MARKET_PERIODS)
    assert len(plan) == len(plan_churn(registry)) + 2
    opening = next(c for c in plan if isinstance(c, MarketChange))
    switch = next(c for c in plan if opened_by(plan, c) is opening)
    height = registry.genesis_period
    for scope in (NETWORK, area_of(registry, switch)):  # every chain judges the opening alike
        chain = view(registry, scope)
        assert (approved_shape(chain, opening) or judge_change(chain, (), opening, height, {}, frozenset())) is None
    chain = view(registry, area_of(registry, switch))
    assert judge_change(chain, (), switch, height + 1, {}, frozenset()).reason.label == "unknown_balancing_group"
    assert judge_change(chain, (opening,), switch, height + 1, {}, frozenset()) is None  # once it is committed
