"""Writing a registry as a genesis file (TOML) plus its meter-point file (CSV, pinned by SHA-256).

`load_genesis(write_genesis(registry, dir))` gives back a registry with the same canonical hash.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from stromledger.crypto import sha256
from stromledger.periods import format_utc

from .genesis import METER_POINT_FIELDS, SUPPLIER_FIELD
from .model import DEFAULT_LOSS_PLAUSIBILITY_PERCENT, Registry


def _s(text: str) -> str:
    return json.dumps(text)  # a JSON string of ASCII is a valid TOML basic string


def _partner(market_partner_id: str) -> list[str]:
    return [f"market_partner_id = {_s(market_partner_id)}"] if market_partner_id else []


def meter_points_csv(registry: Registry) -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    extra = (SUPPLIER_FIELD,) if registry.suppliers else ()  # the optional column only when there are suppliers
    w.writerow(METER_POINT_FIELDS + extra)
    for malo in registry.malo_order:
        m = registry.meter_points[malo]
        w.writerow([m.malo_id, m.kind, m.source, m.grid_area, m.balancing_group, m.meter_operator,
                    m.meter_key.hex(), m.max_power_w, m.area_out, m.area_in] + ([m.supplier] if extra else []))
    return buf.getvalue().encode()


def genesis_toml(registry: Registry, meter_file: str, meter_file_sha256: str, title: str = "") -> str:
    p = registry.params
    L = p.period_seconds
    out = [f"# {title or 'stromledger genesis'}",
           "# Check it with: stromledger genesis check <this file>",
           "",
           "[chain]",
           f"id = {_s(p.chain_id)}",
           f"genesis = {_s(format_utc(p.genesis_period * L))}  # start of the first settled period, UTC",
           f"period_seconds = {L}",
           f"gate_closure_grace_seconds = {p.grace_seconds}  # readings after period end + grace are corrections",
           f"correction_window_periods = {p.correction_window}  # how many periods back a correction is accepted",
           f"schedule_horizon_periods = {p.schedule_horizon}  # how far ahead schedules may be sent",
           *([f"loss_plausibility_percent = {p.loss_plausibility_percent}  # a larger area loss is flagged"]
             if p.loss_plausibility_percent != DEFAULT_LOSS_PLAUSIBILITY_PERCENT else []),
           "",
           "# The meter points, one per CSV row; the genesis pins the file's SHA-256.",
           "[meter_point_file]",
           f"path = {_s(meter_file)}",
           f"sha256 = {_s(meter_file_sha256)}",
           ""]
    for v in registry.validators:
        out += ["[[validators]]", f"name = {_s(v.name)}", f"public_key = {_s(v.public_key.hex())}",
                f"grid_area = {_s(v.grid_area)}", ""]
    for a in registry.grid_areas.values():
        out += ["[[grid_areas]]", f"eic = {_s(a.eic)}", f"name = {_s(a.name)}", f"operator = {_s(a.operator)}",
                f"loss_balancing_group = {_s(a.loss_group)}", *_partner(a.market_partner_id)]
        if a.committee:
            out.append(f"committee = [{', '.join(_s(n) for n in a.committee)}]  # validators of this area's chain")
        out.append("")
    if registry.network_committee:
        out += ["[network]", f"committee = [{', '.join(_s(n) for n in registry.network_committee)}]", ""]
    for g in registry.balancing_groups.values():
        loss = "  # loss group" if g.eic in registry.loss_groups else ""
        out += ["[[balancing_groups]]" + loss, f"eic = {_s(g.eic)}", f"name = {_s(g.name)}",
                f"operator_key = {_s(g.operator_key.hex())}", *_partner(g.market_partner_id), ""]
    if registry.external_parties:
        out += ["# Market parties outside the network: schedules to/from them are signed by the group alone.", ""]
    for x in registry.external_parties.values():
        out += ["[[external_parties]]", f"eic = {_s(x.eic)}", f"name = {_s(x.name)}", ""]
    for x in registry.suppliers.values():
        out += ["[[suppliers]]", f"id = {_s(x.id)}", f"name = {_s(x.name)}",
                f"balancing_group = {_s(x.balancing_group)}", ""]
    for o in registry.meter_operators.values():
        out += ["[[meter_operators]]", f"name = {_s(o.name)}", f"public_key = {_s(o.public_key.hex())}", ""]
    if registry.assignments:
        out += ["# Supplier switches: from the given period start on, the meter point is in another group.", ""]
    for a in registry.assignments:
        out += ["[[assignments]]", f"malo_id = {_s(a.malo_id)}", f"balancing_group = {_s(a.group)}",
                f"from = {_s(format_utc(a.from_period * L))}"] + ([f"supplier = {_s(a.supplier)}"] if a.supplier else [])
        out.append("")
    return "\n".join(out)


def write_genesis(registry: Registry, directory: str | Path, name: str = "genesis.toml",
                  meter_file: str | None = None, title: str = "") -> Path:
    """Write `<directory>/<name>` and its meter-point CSV next to it; return the genesis path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meter_file = meter_file or Path(name).stem + "-meter-points.csv"
    data = meter_points_csv(registry)
    (directory / meter_file).write_bytes(data)
    path = directory / name
    path.write_text(genesis_toml(registry, meter_file, sha256(data).hex(), title))
    return path
