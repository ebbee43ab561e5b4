"""Checks of the approved market changes (registry/market.py): groups opened and closed, market-partner ids,
meter operator changes (WiM). Like cascade/changes.py: `*_shape` judges what the change itself says (cached
with its batch); `*_verdict` whether the seal of `height` may commit it given the chain's committed history,
including its approvals (who approves is the kind's `approval_terms`, registry/market.py: the network
committee; the meter operator in office and the area's grid operator).
"""

from __future__ import annotations

from stromledger.ids import IdError, is_valid_malo_id, parse_eic, parse_market_partner_id
from stromledger.registry import Registry, registry_at
from stromledger.registry.changes import genesis_pool, group_pool
from stromledger.registry.market import (
    GROUP_CLOSED, GROUP_OPENED, MARKET_KINDS, PARTNER_ID_SET, MarketChange, MeterOperatorChange, grid_operator_keys,
)

from .changes import APPROVED_KINDS, ApprovedKind, approvals_rejection, meter_point_then
from .rejections import Reason, Rejection


def _partner_id_problem(text: str) -> Rejection | None:
    try:
        parse_market_partner_id(text)
        return None
    except IdError as e:
        return Rejection(Reason.MALFORMED, str(e))


def market_shape(registry: Registry, c: MarketChange) -> Rejection | None:
    """Everything about a market change that needs neither the history nor its approvals."""
    if c.kind not in MARKET_KINDS:
        return Rejection(Reason.MALFORMED, f"unknown market change kind {c.kind} (known: {sorted(MARKET_KINDS)})")
    try:
        parse_eic(c.party, "Y")
    except IdError as e:
        return Rejection(Reason.MALFORMED, str(e))
    uses = {GROUP_OPENED: {"name", "operator_key", "market_partner_id"}, GROUP_CLOSED: set(),
            PARTNER_ID_SET: {"market_partner_id"}}[c.kind]
    extra = [f for f in ("name", "operator_key", "market_partner_id") if f not in uses and getattr(c, f)]
    if extra:
        return Rejection(Reason.MALFORMED, f"a {c.kind_name} change has no {', '.join(extra)}")
    if c.kind == GROUP_OPENED:
        if not c.name.strip():
            return Rejection(Reason.MALFORMED, "an opened balancing group has a name")
        if len(c.operator_key) != 32:
            return Rejection(Reason.MALFORMED, "the operator key of a balancing group is 32 bytes (Ed25519)")
    if uses and "market_partner_id" in uses:
        return _partner_id_problem(c.market_partner_id)
    return None


def operator_change_shape(registry: Registry, c: MeterOperatorChange) -> Rejection | None:
    if not is_valid_malo_id(c.malo_id):
        return Rejection(Reason.MALFORMED, f"{c.malo_id!r} is not a valid MaLo-ID")
    if c.meter_operator not in registry.meter_operators:
        return Rejection(Reason.MALFORMED, f"meter operator {c.meter_operator!r} is not in the registry")
    if c.meter_key and len(c.meter_key) != 32:
        return Rejection(Reason.MALFORMED, "a meter key is 32 bytes (Ed25519), or empty to keep the key")
    return None


def market_verdict(registry: Registry, history: tuple, c: MarketChange, height: int) -> Rejection | None:
    """May the seal of `height` commit this (well-formed) market change? (Replays, the gate and conflicts
    are judged before, by `judge_change`.)"""
    why = approvals_rejection(registry, history, c)
    if why:
        return why
    then = registry_at(registry, c.effective_period, history)
    pool, genesis = group_pool(then), genesis_pool(registry)
    if c.kind == GROUP_OPENED:
        if c.party in pool or c.party in then.closed_groups or c.party in genesis.balancing_groups or \
                c.party in genesis.grid_areas or c.party in genesis.external_parties:
            return Rejection(Reason.MALFORMED, f"{c.party} is already registered (EICs are never reused)")
        return None
    if c.kind == PARTNER_ID_SET:
        if c.party not in pool and c.party not in genesis.grid_areas:
            return Rejection(Reason.UNKNOWN_BALANCING_GROUP, f"{c.party} is neither a grid area nor a balancing "
                                                             f"group open in period {c.effective_period}")
        return None
    # GROUP_CLOSED
    if c.party not in pool:
        return Rejection(Reason.UNKNOWN_BALANCING_GROUP, f"{c.party} is not an open balancing group in period "
                                                         f"{c.effective_period}")
    losses = [a.eic for a in genesis.grid_areas.values() if a.loss_group == c.party]
    if losses:
        return Rejection(Reason.GROUP_IN_USE, f"{c.party} books the grid loss of {', '.join(losses)}")
    p = c.effective_period
    members = sum(1 for m in then.meter_points if then.group_of(m, p) == c.party)
    if members:
        return Rejection(Reason.GROUP_IN_USE, f"{members} meter point(s) are in {c.party} in period {p}")
    later = [a for a in then.assignments if a.group == c.party and a.from_period > p]
    if later:
        return Rejection(Reason.GROUP_IN_USE, f"{later[0].malo_id} switches into {c.party} from period "
                                              f"{later[0].from_period}")
    return None


def operator_change_verdict(registry: Registry, history: tuple, c: MeterOperatorChange,
                            height: int) -> Rejection | None:
    """May the seal of `height` commit this (well-formed) WiM change? Approved by exactly the meter point's
    meter operator in office in the effective period and its area's grid operator (one of that area's
    validator keys): both, as the two members of a committee of two."""
    then = registry_at(registry, c.effective_period, history)
    why = meter_point_then(registry, then, c)
    if why:
        return why
    mp = then.meter_points[c.malo_id]
    if mp.meter_operator not in then.meter_operators or not grid_operator_keys(registry, mp.grid_area):
        return Rejection(Reason.WRONG_SIGNER, f"{c.malo_id}: no meter operator or grid operator of "
                                              f"{mp.grid_area} to approve it")
    why = approvals_rejection(registry, history, c)
    if why:
        return why
    if c.meter_operator == mp.meter_operator:
        return Rejection(Reason.MALFORMED, f"{c.malo_id} is already operated by {c.meter_operator}")
    if c.meter_key and (c.meter_key == mp.meter_key or c.meter_key in then.old_keys.get(c.malo_id, ())):
        return Rejection(Reason.MALFORMED, f"{c.malo_id}: a new meter names a key the meter never had")
    return None


# the market kinds' place among the approved changes (cascade/changes.py)
APPROVED_KINDS[MarketChange] = ApprovedKind(market_shape, market_verdict)
APPROVED_KINDS[MeterOperatorChange] = ApprovedKind(operator_change_shape, operator_change_verdict)
