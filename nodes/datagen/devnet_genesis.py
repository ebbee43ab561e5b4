"""The devnet genesis: a small, realistic-looking network whose keys anyone can re-derive.

Keys come from `SigningKey.from_label(label)` (test/devnet only, never production):
  validators            "validator-1" .. "validator-N"   (two per grid area: 1, 2 in area 1; 3, 4 in area 2 ...)
  grid operators        "grid-operator-1" ..             (operate area i's loss balancing group)
  group operators       "bg-operator-1" ..               (operate supplier balancing group i)
  meter operators       "meter-operator-1", "meter-operator-2"
  meters                "meter-<MaLo-ID>"
`devnet_key(label)` returns them; `meter_label(malo_id)` names a meter's label.

`make_devnet_genesis(dir, ...)` writes devnet.toml and devnet-meter-points.csv (pinned by SHA-256);
configs/devnet.toml in the repository is its output for the defaults.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from stromledger.crypto import SigningKey
from stromledger.ids import make_malo_id
from stromledger.registry import (
    Assignment, BalancingGroup, ChainParams, ExternalParty, GridArea, MeterOperator, MeterPoint, Registry, Validator,
    write_genesis,
)

from .grid_mix import customer_mix, time_lapse
from .synthetic import GENESIS_2026, eic_for

AREA_NAMES = ("Nordheide", "Suedtal", "Westmark", "Ostaue", "Mittelberg", "Seeland")
SUPPLIER_NAMES = ("Stadtwerke Nordheide Vertrieb", "Sonnenstrom eG", "Windhandel GmbH", "Regionalenergie AG",
                  "Buergerstrom eG", "Gruenwerk Handel")
# The power exchange the suppliers buy their forecast portfolio at (an external party: outside the network).
EXCHANGE = ExternalParty(eic_for("DEVEXCH", 1, "X"), "Strombörse (day-ahead/intraday)")
METER_OPERATORS = ("Messstellenbetrieb Nordheide", "SmartMeter Service GmbH")


def devnet_key(label: str) -> SigningKey:
    return SigningKey.from_label(label)


def meter_label(malo_id: str) -> str:
    return f"meter-{malo_id}"


DEVNET_PERIOD_SECONDS = 5  # the default period length of every devnet command (`devnet`, `genesis devnet`)


def devnet_registry(validators: int = 4, balancing_groups: int = 3, meters: int = 200, period_seconds: int = 10,
                    seed: int = 1, *, genesis_start: int = GENESIS_2026, chain_id: str = "stromledger-devnet",
                    grace_seconds: int | None = None, correction_window: int | None = None,
                    grid_areas: int | None = None, seated: int | None = None) -> Registry:
    """The devnet registry: `grid_areas` grid areas (default `validators // 2`, at least one; each validator
    is run by one of their operators; every validator sits on every area's committee and the network's),
    `balancing_groups` supplier groups plus one loss group per area, tie lines between neighbouring areas and
    from each area to the upstream grid outside the network, `meters` meter points in all (the customers and
    plants of grid_mix.customer_mix), and the power exchange as an external party. Connection capacities are
    scaled by 900 s / `period_seconds`: each period carries a simulated quarter hour's energy
    (grid_mix.time_lapse). `seated`: only the first `seated` validators sit on the committees (every area's and
    the network's); the others follow their own area's chain until a committee change seats them."""
    if validators < 1 or balancing_groups < 1 or meters < 1:
        raise ValueError("a devnet needs at least one validator, balancing group and meter point")
    rng = random.Random(seed)
    n_areas = max(1, validators // 2) if grid_areas is None else max(1, grid_areas)
    genesis_period = -(-genesis_start // period_seconds)  # the first period starting at or after genesis_start
    grace = grace_seconds if grace_seconds is not None else max(1, period_seconds // 5)
    window = correction_window if correction_window is not None else max(4, 300 // period_seconds)
    params = ChainParams(chain_id, genesis_period, period_seconds, grace, window, max(1, 2 * 86400 // period_seconds))

    areas, losses, loss_groups = [], [], []
    for i in range(n_areas):
        name = AREA_NAMES[i % len(AREA_NAMES)] + ("" if i < len(AREA_NAMES) else f" {i + 1}")
        area, loss = eic_for("DEVAREA", i + 1), eic_for("DEVLOSS", i + 1)
        seats = tuple(f"validator-{j + 1}" for j in range(seated)) if seated is not None else ()
        areas.append(GridArea(area, f"Netzgebiet {name}", f"Netz {name} GmbH", loss, committee=seats))
        loss_groups.append(BalancingGroup(loss, f"Verlustbilanzkreis {name}",
                                          devnet_key(f"grid-operator-{i + 1}").public))
        losses.append(loss)
    suppliers = [BalancingGroup(eic_for("DEVBG", i + 1), SUPPLIER_NAMES[i % len(SUPPLIER_NAMES)]
                                + ("" if i < len(SUPPLIER_NAMES) else f" {i + 1}"),
                                devnet_key(f"bg-operator-{i + 1}").public) for i in range(balancing_groups)]
    vals = [Validator(f"validator-{i + 1}", devnet_key(f"validator-{i + 1}").public,
                      areas[min(i // 2, n_areas - 1) if grid_areas is None else i * n_areas // validators].eic)
            for i in range(validators)]
    operators = [MeterOperator(name, devnet_key(f"meter-operator-{i + 1}").public)
                 for i, name in enumerate(METER_OPERATORS)]

    points: list[MeterPoint] = []

    def add(kind: str, source: str, area: str, group: str, power: int, out: str = "", into: str = "") -> None:
        malo = make_malo_id(f"{4_100_000_000 + len(points):010d}")
        operator = operators[len(points) % len(operators)].name
        points.append(MeterPoint(malo, kind, source, area, group, operator,
                                 devnet_key(meter_label(malo)).public, power, out, into))

    for i, a in enumerate(areas):  # tie lines: to the upstream grid outside, and to the next area
        if len(points) < meters:
            add("boundary", "grid", a.eic, "", math.ceil(40_000_000 * time_lapse(period_seconds)), a.eic, "")
        if i + 1 < n_areas and len(points) < meters:
            add("boundary", "grid", a.eic, "", math.ceil(20_000_000 * time_lapse(period_seconds)), a.eic,
                areas[i + 1].eic)
    lapse = time_lapse(period_seconds)  # a period carries a simulated quarter hour's energy
    for kind, source, capacity in customer_mix(meters - len(points), rng):
        add(kind, source, rng.choice(areas).eic, rng.choice(suppliers).eic, math.ceil(capacity * lapse))

    # a few supplier switches one day after genesis, so the registry shows how they look
    movable = [p for p in points if p.kind != "boundary"]
    switch_at = genesis_period + max(1, 86400 // period_seconds)
    assignments = []
    if len(suppliers) > 1:
        for p in rng.sample(movable, min(3, len(movable))):
            others = [g.eic for g in suppliers if g.eic != p.balancing_group]
            assignments.append(Assignment(p.malo_id, switch_at, rng.choice(others)))
    return Registry(params, vals, areas, suppliers + loss_groups, operators, points, assignments, [EXCHANGE],
                    network_committee=areas[0].committee)


def make_devnet_genesis(directory: str | Path, validators: int = 4, balancing_groups: int = 3, meters: int = 200,
                        period_seconds: int = 10, seed: int = 1, **options) -> Path:
    """Write a devnet genesis (devnet.toml + devnet-meter-points.csv) into `directory`; return its path.
    `options` go to devnet_registry (genesis_start, chain_id, grace_seconds, correction_window, grid_areas)."""
    registry = devnet_registry(validators, balancing_groups, meters, period_seconds, seed, **options)
    title = (f"stromledger devnet genesis: {validators} validators, {balancing_groups} balancing groups, "
             f"{meters} meter points (keys: nodes.datagen.devnet_genesis, never for production)")
    return write_genesis(registry, directory, "devnet.toml", "devnet-meter-points.csv", title)
