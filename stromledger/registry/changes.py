"""Registry changes: signed master-data changes, and the registry versions they make.

A `RegistryChange` is one signed change of one meter point, effective from a period boundary:

- METER_POINT_ADDED, METER_POINT_RETIRED, SUPPLIER_SWITCH: signed by the grid operator of the meter point's
  area (a validator whose `grid_area` is that area), as the grid operator confirms a switch in GPKE;
- METER_KEY_ROTATED: signed by the meter point's current meter operator.

Changes travel in batches beside readings and are settled by the seal of the meter point's area chain
(cascade/changes.py checks them). A chain's registry in a period is then a pure function of its genesis view
and the committed changes effective by that period: `registry_at(registry, period, changes)`. Each such
version is content-addressed: `version` = SHA-256 over (the genesis view's hash, the digests of the changes
in effect), so the genesis itself is the version with no change, and anyone with the genesis and the changes
can recompute the version a result names. docs/registry.md has the rules.
"""

from __future__ import annotations

import bisect
import dataclasses
from typing import Iterable

import msgpack

from stromledger.codec import U8, U64, Blob, Message, PubKey, Sig, Str, message
from stromledger.crypto import SigningKey, sha256, verify

from .market import Draft, MarketChange, MeterOperatorChange
from .model import Assignment, MeterPoint, Registry

CHANGE_DOMAIN = "stromledger/registry-change/1"
VERSION_DOMAIN = "stromledger/registry-version/1"

METER_POINT_ADDED, METER_POINT_RETIRED, SUPPLIER_SWITCH, METER_KEY_ROTATED = 1, 2, 3, 4
CHANGE_KINDS = {METER_POINT_ADDED: "add_meter_point", METER_POINT_RETIRED: "retire_meter_point",
                SUPPLIER_SWITCH: "switch", METER_KEY_ROTATED: "rotate_key"}
KIND_BY_NAME = {name: kind for kind, name in CHANGE_KINDS.items()}
_VERSIONS_CACHED = 16  # each is a full copy of the view: the correction window rarely spans more


@message(6)
class RegistryChange(Message):
    """One signed change of one meter point from `effective_period` on. Fields a kind does not use are empty
    ("" / b"" / 0): an added meter point fills all of them; a switch `balancing_group` (and `supplier`); a key
    rotation `meter_key` (the new key); a retirement none."""

    kind: U8
    malo_id: Str(11)
    effective_period: U64
    grid_area: Str(16)  # added: its area
    balancing_group: Str(16)  # added: its group; switch: the new group
    supplier: Str(13)  # added / switch: the supplier's market-partner id, or ""
    meter_key: Blob(32)  # added: its meter key; rotation: the new key
    meter_operator: Str(64)  # added: its meter operator (by name)
    point_kind: Str(16)  # added: consumer, producer or prosumer
    source: Str(16)  # added: one of registry.SOURCES
    max_power_w: U64  # added: connection capacity
    signer: PubKey
    sig: Sig

    def digest(self) -> bytes:
        return sha256(self.encode())

    @property
    def conflict_key(self) -> str:
        """Changes of one meter point conflict (one pending per meter point)."""
        return self.malo_id

    @property
    def kind_name(self) -> str:
        return CHANGE_KINDS.get(self.kind, f"kind {self.kind}")

    def describe(self) -> str:
        what = {SUPPLIER_SWITCH: f" to {self.balancing_group}", METER_KEY_ROTATED: f" to {self.meter_key.hex()[:16]}",
                METER_POINT_ADDED: f" in {self.grid_area}/{self.balancing_group}"}.get(self.kind, "")
        return f"{self.kind_name} of {self.malo_id}{what} from period {self.effective_period}"


def sign_change(key: SigningKey, chain_id: str, kind: int, malo_id: str, effective_period: int, **fields) -> RegistryChange:
    """A change signed by `key` under the genesis chain id (`Registry.root_chain_id`)."""
    c = RegistryChange(kind=kind, malo_id=malo_id, effective_period=effective_period,
                       grid_area=fields.pop("grid_area", ""), balancing_group=fields.pop("balancing_group", ""),
                       supplier=fields.pop("supplier", ""), meter_key=fields.pop("meter_key", b""),
                       meter_operator=fields.pop("meter_operator", ""), point_kind=fields.pop("point_kind", ""),
                       source=fields.pop("source", ""), max_power_w=fields.pop("max_power_w", 0),
                       signer=key.public, sig=bytes(64))
    if fields:
        raise TypeError(f"unknown change fields: {', '.join(sorted(fields))}")
    return dataclasses.replace(c, sig=key.sign(CHANGE_DOMAIN, chain_id, c.body()))


def change_signed(registry: Registry, c: RegistryChange) -> bool:
    return verify(c.signer, c.sig, CHANGE_DOMAIN, registry.root_chain_id, c.body())


def history_order(c: RegistryChange) -> tuple[int, bytes]:
    """Committed changes are kept and applied in (effective period, digest) order."""
    return c.effective_period, c.digest()


def with_changes(history: tuple[RegistryChange, ...], new: Iterable[RegistryChange]) -> tuple[RegistryChange, ...]:
    return tuple(sorted((*history, *new), key=history_order))


def version_hash(base: Registry, effective: tuple[RegistryChange, ...]) -> bytes:
    if not effective:
        return base.hash
    return sha256(msgpack.packb([VERSION_DOMAIN, base.hash, [c.digest() for c in effective]], use_bin_type=True))


def registry_at(registry: Registry, period: int, changes: tuple[RegistryChange, ...]) -> Registry:
    """The registry version in effect in `period`: the genesis view plus the committed `changes` (in history
    order) effective by then. The registry itself while none is; versions are cached on the registry."""
    if not changes or changes[0].effective_period > period:
        return registry
    n = bisect.bisect_right([c.effective_period for c in changes], period)
    effective = tuple(changes[:n])
    cache = registry.__dict__.setdefault("_versions", {})
    got = cache.get(effective)
    if got is None:
        if len(cache) >= _VERSIONS_CACHED:
            cache.clear()
        got = cache[effective] = _apply(registry, effective)
    return got


def changes_in_effect(registry: Registry) -> tuple[RegistryChange, ...]:
    """The changes a registry version applies to its genesis view (() for the genesis itself)."""
    return registry.__dict__.get("_effective", ())


def change_json(c: RegistryChange) -> dict:
    """A change readable, with its canonical bytes (`encoded`, hex) which are what counts."""
    out = {"encoded": c.encode().hex(), "digest": c.digest().hex(), "kind": c.kind_name, "malo_id": c.malo_id,
           "effective_period": c.effective_period, "signer": c.signer.hex()}
    for name in ("grid_area", "balancing_group", "supplier", "meter_operator", "point_kind", "source"):
        if getattr(c, name):
            out[name] = getattr(c, name)
    if c.meter_key:
        out["meter_key"] = c.meter_key.hex()
    if c.max_power_w:
        out["max_power_w"] = c.max_power_w
    return out


def genesis_pool(registry: Registry) -> Registry:
    """The whole genesis a view was taken of (for balancing groups outside an area's view)."""
    return registry.__dict__.get("_genesis", registry)


def group_pool(registry: Registry) -> dict:
    """Every balancing group open in a registry version, also those outside an area's view: the genesis's,
    plus the groups opened, minus the groups closed by the changes in effect (registry/market.py)."""
    pool = registry.__dict__.get("_pool")
    return genesis_pool(registry).balancing_groups if pool is None else pool


def _apply(base: Registry, effective: tuple) -> Registry:
    d = Draft(base.scope, dict(base.meter_points), dict(base.balancing_groups), dict(base.grid_areas),
              dict(group_pool(base)))
    assignments = list(base.assignments)
    for c in effective:
        if isinstance(c, (MarketChange, MeterOperatorChange)):
            c.apply(d)
            continue
        mp = d.meter_points.get(c.malo_id)
        if c.kind == METER_POINT_ADDED:
            d.meter_points[c.malo_id] = MeterPoint(c.malo_id, c.point_kind, c.source, c.grid_area,
                                                   c.balancing_group, c.meter_operator, bytes(c.meter_key),
                                                   c.max_power_w, supplier=c.supplier)
        elif mp is None:
            continue  # the cascade never commits a change of a meter point that is not there
        elif c.kind == METER_POINT_RETIRED:
            del d.meter_points[c.malo_id]
            d.retired[c.malo_id] = c.effective_period
        elif c.kind == METER_KEY_ROTATED:
            d.rotate_out(c.malo_id, mp.meter_key)
            d.meter_points[c.malo_id] = mp._replace(meter_key=bytes(c.meter_key))
        elif c.kind == SUPPLIER_SWITCH:
            assignments.append(Assignment(c.malo_id, c.effective_period, c.balancing_group, c.supplier))
        if c.balancing_group and c.balancing_group not in d.groups and c.balancing_group in d.open_groups:
            d.groups[c.balancing_group] = d.open_groups[c.balancing_group]
    version = Registry(base.params, base.validators, d.areas.values(), d.groups.values(),
                       base.meter_operators.values(), d.meter_points.values(), assignments,
                       base.external_parties.values(), base.suppliers.values(),
                       network_committee=base.network_committee, scope=base.scope,
                       root_chain_id=base.root_chain_id)
    version.__dict__["hash"] = base.hash  # the chain's identity stays its genesis view's
    version.__dict__["_version"] = version_hash(base, effective)
    version.__dict__["_genesis"] = genesis_pool(base)
    version.__dict__["_effective"] = effective
    version.__dict__["_pool"] = d.open_groups
    version.retired = d.retired
    version.old_keys = d.old_keys
    version.closed_groups = d.closed_groups
    return version
