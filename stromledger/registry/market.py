"""Approved master-data changes of the market: balancing groups, market-partner ids, meter operators (WiM).

Two messages, each a change effective from a period boundary whose last field is `approvals`
(registry/approvals.py: one `Approval` per approving key, sorted by key):

- `MarketChange` (tag 8): a balancing group opened or closed, or a party's 13-digit market-partner id (the
  BDEW code number exports address) set. Balancing groups and market-partner ids are network-wide master
  data, so the NETWORK committee owns them: more than 2/3 of it approve;
- `MeterOperatorChange` (tag 9): a meter point's meter operator changes (WiM), optionally with a new meter
  key (the new operator's meter). Approved by exactly the two parties WiM names: the current meter operator
  and the grid operator of the meter point's area.

Every approval signs the message without its approvals under the kind's domain and the GENESIS chain id:
the same change is committed by each chain it concerns (docs/registry.md, "Balancing groups, market-partner
ids and meter operators"). How a change applies to a registry version is `apply_market_change` /
`apply_operator_change`; the cascade's checks are in cascade/market.py.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Iterable

from stromledger.codec import U8, U64, Blob, Message, Seq, Str, message
from stromledger.crypto import SigningKey, sha256

from .approvals import MAX_APPROVALS, Approval, add_approvals, approve
from .changes import Draft, change_type, genesis_pool, registry_at
from .model import BalancingGroup, Registry
from .scopes import NETWORK, committee

MARKET_DOMAIN = "stromledger/market-change/1"
OPERATOR_DOMAIN = "stromledger/meter-operator-change/1"

GROUP_OPENED, GROUP_CLOSED, PARTNER_ID_SET = 1, 2, 3
MARKET_KINDS = {GROUP_OPENED: "open_group", GROUP_CLOSED: "close_group", PARTNER_ID_SET: "market_partner_id"}
MARKET_KIND_BY_NAME = {name: kind for kind, name in MARKET_KINDS.items()}
OPERATOR_CHANGE = "meter_operator"  # the TOML kind of a MeterOperatorChange


class _Approved:
    """What both kinds offer the history besides `apply`: digest, a readable form, collecting approvals."""

    __slots__ = ()

    def digest(self) -> bytes:
        return sha256(self.encode())

    def json_fields(self) -> dict:
        """The change readable (registry-changes.jsonl, `registry show --json`), besides its bytes."""
        return approved_json_fields(self)

    def with_approvals(self, approvals: Iterable[Approval]):
        """This change carrying `approvals` (and those it has) in canonical order."""
        return add_approvals(self, approvals)


@change_type
@message(8)
class MarketChange(_Approved, Message):
    """A balancing group opened or closed, or a market-partner id set, from `effective_period` on. Fields a
    kind does not use are empty: an opening fills all; a closing none; an id change `market_partner_id`."""

    kind: U8
    effective_period: U64
    party: Str(16)  # the group's EIC (opened, closed), or the EIC of the group or grid area whose id is set
    name: Str(64)  # opened: the group's name
    operator_key: Blob(32)  # opened: the balance-responsible party's key (signs its schedules)
    market_partner_id: Str(13)  # opened: the BRP's id; market_partner_id: the party's new id
    approvals: Seq(Approval, MAX_APPROVALS)

    DOMAIN: ClassVar[str] = MARKET_DOMAIN

    def apply(self, d: Draft) -> None:
        apply_market_change(d, self)

    @property
    def conflict_key(self) -> tuple[str, str]:
        """One pending market change per party."""
        return ("market", self.party)

    @property
    def kind_name(self) -> str:
        return MARKET_KINDS.get(self.kind, f"market kind {self.kind}")

    def approval_terms(self, view: Registry, history: tuple) -> tuple[tuple[bytes, ...], str]:
        """More than 2/3 of the network committee approve, under the genesis chain id: on the network chain
        its committee just before the change applies; on any other chain the genesis's network committee (an
        area chain does not follow the network chain's committee changes)."""
        if view.scope == NETWORK:
            keys = registry_at(view, self.effective_period - 1, history).validator_keys()
        else:
            keys = tuple(v.public_key for v in committee(genesis_pool(view), NETWORK))
        return keys, view.root_chain_id

    def describe(self) -> str:
        what = {GROUP_OPENED: f"open_group {self.party} ({self.name}, {self.market_partner_id})",
                GROUP_CLOSED: f"close_group {self.party}",
                PARTNER_ID_SET: f"market_partner_id of {self.party} to {self.market_partner_id}"}
        return f"{what.get(self.kind, self.kind_name)} from period {self.effective_period}"


@change_type
@message(9)
class MeterOperatorChange(_Approved, Message):
    """WiM: meter point `malo_id` is operated by `meter_operator` from `effective_period` on, with meter key
    `meter_key` (b"": the meter keeps its key)."""

    malo_id: Str(11)
    effective_period: U64
    meter_operator: Str(64)  # the new meter operator, by name (as in the genesis)
    meter_key: Blob(32)  # the new meter's Ed25519 key, or b""
    approvals: Seq(Approval, 2)  # the current meter operator's and the area's grid operator's

    DOMAIN: ClassVar[str] = OPERATOR_DOMAIN

    def apply(self, d: Draft) -> None:
        apply_operator_change(d, self)

    @property
    def conflict_key(self) -> str:
        return self.malo_id  # shared with the meter point's RegistryChanges: one change per meter point

    @property
    def kind_name(self) -> str:
        return OPERATOR_CHANGE

    def approval_terms(self, view: Registry, history: tuple) -> tuple[tuple[bytes, ...], str]:
        """Both the meter operator in office in the effective period and the grid operator of the meter
        point's area (whichever of its validator keys approved, else the first): a committee of these two
        keys (one when they are the same), under the genesis chain id."""
        mp = registry_at(view, self.effective_period, history).meter_points.get(self.malo_id)
        if mp is None:
            return (), view.root_chain_id
        operator = view.meter_operators.get(mp.meter_operator)
        grid = grid_operator_keys(view, mp.grid_area)
        approvers = [bytes(a.signer) for a in self.approvals]
        grid_key = next((k for k in approvers if k in grid), grid[0] if grid else None)
        keys = [k for k in (operator.public_key if operator else None, grid_key) if k is not None]
        return tuple(dict.fromkeys(keys)), view.root_chain_id

    def describe(self) -> str:
        key = f" with key {self.meter_key.hex()[:16]}" if self.meter_key else ""
        return f"meter_operator of {self.malo_id} to {self.meter_operator}{key} from period {self.effective_period}"


def market_change(kind: int, effective_period: int, party: str, *, name: str = "", operator_key: bytes = b"",
                  market_partner_id: str = "") -> MarketChange:
    """An unapproved MarketChange (approve it with `approve_change`, collect with `with_approvals`)."""
    return MarketChange(kind, effective_period, party, name, operator_key, market_partner_id, ())


def operator_change(malo_id: str, effective_period: int, meter_operator: str,
                    meter_key: bytes = b"") -> MeterOperatorChange:
    return MeterOperatorChange(malo_id, effective_period, meter_operator, meter_key, ())


def grid_operator_keys(registry: Registry, area: str) -> tuple[bytes, ...]:
    """The grid operator of an area signs with the keys of its validators (validators name their area)."""
    return tuple(v.public_key for v in genesis_pool(registry).validators if v.grid_area == area)


def is_group_closing(change: object, group: str) -> bool:
    return isinstance(change, MarketChange) and change.kind == GROUP_CLOSED and change.party == group


def is_group_opening(change: object) -> bool:
    return isinstance(change, MarketChange) and change.kind == GROUP_OPENED


def approve_change(key: SigningKey, root_chain_id: str, change: Message) -> Approval:
    """This key's approval of a market or WiM change, under the genesis chain id (`Registry.root_chain_id`):
    the same change is committed by every chain it concerns."""
    return approve(key, type(change).DOMAIN, root_chain_id, change)


def approved_json_fields(c: Message) -> dict:
    out = {"kind": c.kind_name, "effective_period": c.effective_period,
           "approvers": [bytes(a.signer).hex() for a in c.approvals]}
    if isinstance(c, MarketChange):
        out["party"] = c.party
        for name in ("name", "market_partner_id"):
            if getattr(c, name):
                out[name] = getattr(c, name)
        if c.operator_key:
            out["operator_key"] = c.operator_key.hex()
    else:
        out["malo_id"] = c.malo_id
        out["meter_operator"] = c.meter_operator
        if c.meter_key:
            out["meter_key"] = c.meter_key.hex()
    return out


# -- applying a change to a registry version being built ------------------------------------------------


def apply_market_change(d: Draft, c: MarketChange) -> None:
    if c.kind == GROUP_OPENED:
        g = BalancingGroup(c.party, c.name, bytes(c.operator_key), c.market_partner_id)
        d.open_groups[c.party] = g
        if d.base.scope in ("", "network"):  # an area's view takes a group when a meter point switches into it
            d.groups[c.party] = g
    elif c.kind == GROUP_CLOSED:
        d.open_groups.pop(c.party, None)
        d.groups.pop(c.party, None)
        d.closed_groups[c.party] = c.effective_period
    elif c.kind == PARTNER_ID_SET:
        if c.party in d.areas:
            d.areas[c.party] = dataclasses.replace(d.areas[c.party], market_partner_id=c.market_partner_id)
        for groups in (d.open_groups, d.groups):
            if c.party in groups:
                groups[c.party] = dataclasses.replace(groups[c.party], market_partner_id=c.market_partner_id)


def apply_operator_change(d: Draft, c: MeterOperatorChange) -> None:
    mp = d.meter_points.get(c.malo_id)
    if mp is None:
        return  # the cascade never commits a change of a meter point that is not there
    key = bytes(c.meter_key) or mp.meter_key
    if key != mp.meter_key:
        d.rotate_out(c.malo_id, mp.meter_key)
    d.meter_points[c.malo_id] = mp._replace(meter_operator=c.meter_operator, meter_key=key)
