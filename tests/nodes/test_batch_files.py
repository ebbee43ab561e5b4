"""Batch files made offline (`stromledger batch make`), one period per batch, and the schedule CSV route for
balancing-group operators."""

from __future__ import annotations

import pytest

from nodes.cli import main
from nodes.commands.submit import DESCRIPTION, InputError, batches_of, read_schedules_csv
from nodes.datagen.devnet_genesis import devnet_key, make_devnet_genesis, meter_label
from nodes.meter_point import own_meters
from nodes.setup import init_home
from stromledger.cascade import Batch, sign_reading
from stromledger.keys import write_key_file
from stromledger.registry import load_genesis

START = 1_800_000_000


@pytest.fixture(scope="module")
def genesis(tmp_path_factory):
    return make_devnet_genesis(tmp_path_factory.mktemp("genesis"), 4, 2, 24, 10, 7, genesis_start=START,
                               chain_id="devnet-test-batch")


@pytest.fixture(scope="module")
def registry(genesis):
    return load_genesis(genesis)


def test_each_batch_holds_one_period(registry):
    """Day one: a CSV spanning periods went out as one batch, refused whole for its one future period."""
    op = devnet_key("meter-operator-1")
    g = registry.genesis_period
    meters = own_meters(registry, op.public)[:3]
    readings = [sign_reading(devnet_key(meter_label(m)), registry.chain_id, m, p, 5, 0)
                for p in (g + 1, g) for m in meters]
    made = [Batch.decode(b) for b in batches_of(readings, op, registry.chain_id, 2)]
    assert [[r.period for r in b.readings] for b in made] == [[g, g], [g], [g + 1, g + 1], [g + 1]]


def test_batch_make_writes_signed_files_into_the_inbox(tmp_path, genesis, registry, capsys):
    op = devnet_key("meter-operator-2")
    home = init_home(tmp_path / "mp", "meter-point", genesis, key=op).config
    meters = own_meters(registry, op.public)[:2]
    keys = tmp_path / "keys"
    keys.mkdir()
    for m in meters:
        write_key_file(keys / f"{m}.key", devnet_key(meter_label(m)))
    g = registry.genesis_period
    csv = tmp_path / "readings.csv"
    csv.write_text("malo_id,period,import_wh,export_wh\n"
                   + "".join(f"{m},{p},7,0\n" for p in (g, g + 1) for m in meters))
    assert main(["batch", "make", "--home", str(home.home), "--readings", str(csv), "--meter-keys", str(keys)]) == 0
    files = sorted((home.data_dir / "inbox").glob("*.batch"))
    assert len(files) == 2 and not list((home.data_dir / "inbox").glob("*.tmp"))
    batches = [Batch.decode(f.read_bytes()) for f in files]
    assert [{r.period for r in b.readings} for b in batches] == [{g}, {g + 1}]
    assert all(b.submitter == op.public for b in batches)
    assert main(["batch", "make", "--home", str(home.home), "--readings", str(csv)]) == 2
    assert "--meter-keys" in capsys.readouterr().err


def test_schedules_csv_is_signed_by_the_group_operator(tmp_path, genesis, registry, capsys):
    op = devnet_key("bg-operator-1")
    own = [g.eic for g in registry.balancing_groups.values() if g.operator_key == op.public]
    other = [g for g in registry.balancing_groups if g not in own]
    g = registry.genesis_period
    csv = tmp_path / "trades.csv"
    csv.write_text(f"from_group,to_group,period,wh\n{own[0]},{other[0]},{g},1500\n{other[0]},{own[0]},{g + 1},20\n")
    schedules = read_schedules_csv(csv, registry, op)
    assert [(s.from_group, s.to_group, s.period, s.wh, s.signer) for s in schedules] == [
        (own[0], other[0], g, 1500, op.public), (other[0], own[0], g + 1, 20, op.public)]
    stranger = [x for x in other if registry.group_keys[x] != op.public]
    bad = tmp_path / "bad.csv"
    bad.write_text(f"from_group,to_group,period,wh\n{own[0]},{other[0]},{g},1\n{stranger[0]},{stranger[-1]},{g},1\n")
    with pytest.raises(InputError, match="line 3: this node's key operates neither"):
        read_schedules_csv(bad, registry, op)
    home = init_home(tmp_path / "bg", "balancing-group", genesis, key=op).config
    assert main(["batch", "make", "--home", str(home.home), "--schedules", str(csv)]) == 2  # no inbox: --out
    assert main(["batch", "make", "--home", str(home.home), "--schedules", str(csv), "--out", str(tmp_path / "o")]) == 0
    assert len(list((tmp_path / "o").glob("*.batch"))) == 2


def test_submit_says_plainly_that_it_skips_verification():
    assert "no node verifies these readings" in " ".join(DESCRIPTION.split())
