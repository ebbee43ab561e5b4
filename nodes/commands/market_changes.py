"""Market changes and WiM in TOML (docs/registry.md): what `stromledger registry change` and `registry approve`
read for the approved kinds open_group, close_group, market_partner_id and meter_operator."""

from __future__ import annotations

from typing import Any

from stromledger.registry import Registry
from stromledger.registry.market import (
    MARKET_KIND_BY_NAME, OPERATOR_CHANGE, MarketChange, MeterOperatorChange, market_change, operator_change,
)

from .submit import InputError, parse_period

# kind -> {field: required}; every kind also has `effective`
MARKET_FIELDS = {
    "open_group": {"balancing_group": True, "name": True, "operator_key": True, "market_partner_id": True},
    "close_group": {"balancing_group": True},
    "market_partner_id": {"party": True, "market_partner_id": True},
    OPERATOR_CHANGE: {"malo_id": True, "meter_operator": True, "meter_key": False},
}

MARKET_HELP = """\
Approved kinds (approvals collected with `registry approve`, see docs/registry.md):
  kind = "open_group"         balancing_group (Y-EIC), name, operator_key (64 hex), market_partner_id
  kind = "close_group"        balancing_group
  kind = "market_partner_id"  party (the EIC of a balancing group or grid area), market_partner_id
  kind = "meter_operator"     malo_id, meter_operator (its genesis name), meter_key (optional, 64 hex)
  (each with `effective`; the network committee approves the first three, the current meter operator and
  the area's grid operator a meter_operator change)
"""


def is_market_kind(kind: object) -> bool:
    return kind in MARKET_FIELDS


def read_market_change(doc: dict, registry: Registry, where: str) -> MarketChange | MeterOperatorChange:
    """The unapproved change a parsed TOML document describes; InputError naming the first problem."""
    kind = doc.get("kind")
    fields = MARKET_FIELDS[kind]
    unknown = sorted(set(doc) - {"kind", "effective"} - set(fields))
    if unknown:
        raise InputError(f"{where}: a {kind} change has no {', '.join(unknown)}")
    missing = [f for f in ("effective", *(f for f, needed in fields.items() if needed)) if f not in doc]
    if missing:
        raise InputError(f"{where}: a {kind} change needs {', '.join(missing)}")
    values: dict[str, Any] = {}
    for name in fields:
        if name in doc:
            if type(doc[name]) is not str:
                raise InputError(f"{where}: {name} is a string")
            values[name] = doc[name]
    for name in ("operator_key", "meter_key"):
        if name in values:
            try:
                values[name] = bytes.fromhex(values[name])
            except ValueError:
                raise InputError(f"{where}: {name} is 64 hex digits (an Ed25519 public key)") from None
    effective = parse_period(str(doc["effective"]), registry)
    if kind == OPERATOR_CHANGE:
        return operator_change(values["malo_id"], effective, values["meter_operator"], values.get("meter_key", b""))
    party = values.pop("balancing_group", None) or values.pop("party")
    return market_change(MARKET_KIND_BY_NAME[kind], effective, party, **values)
