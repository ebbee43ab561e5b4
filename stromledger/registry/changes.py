"""Registry changes: signed master-data changes, and the registry versions they make.

A `RegistryChange` is one signed change of one meter point, effective from a period boundary:

- METER_POINT_ADDED, METER_POINT_RETIRED, SUPPLIER_SWITCH: signed by the grid operator of the meter point's
  area (a validator whose `grid_area` is that area), as the grid operator confirms a switch in GPKE;
- METER_KEY_ROTATED: signed by the meter point's current meter operator.

Changes travel in batches beside readings and are settled by the seal of the meter point's area chain
(cascade/changes.py checks them).

Other kinds of change are not one party's to make: they carry `approvals` of more than 2/3 of a committee
(registry/approvals.py), e.g. a `CommitteeChange` (registry/committee.py). Every kind is a tagged message
registered with `@change_type` (the allow-list by which committed changes are decoded) that has an
`effective_period`, a `conflict_key` (at most one pending change per key) and `apply(draft)`; its checks are
registered in cascade/changes.py (`APPROVED_KINDS`). The history, the versions, the settled state, checkpoints
and exports hold any kind, each as its canonical tagged bytes.

A chain's registry in a period is then a pure function of its genesis view and the committed changes
effective by that period: `registry_at(registry, period, changes)`. Each such
version is content-addressed: `version` = SHA-256 over (the genesis view's hash, the digests of the changes
in effect), so the genesis itself is the version with no change, and anyone with the genesis and the changes
can recompute the version a result names. docs/registry.md has the rules.
"""

from __future__ import annotations

import bisect
import dataclasses
from typing import Any, Iterable, Optional, Sequence, Union

import msgpack

from stromledger.codec import U8, U64, Blob, CodecError, Message, PubKey, Sig, Str, decode, message
from stromledger.crypto import SigningKey, sha256, verify

from .approvals import approvals_problem
from .model import Assignment, MeterPoint, Registry, Validator

CHANGE_DOMAIN = "stromledger/registry-change/1"
VERSION_DOMAIN = "stromledger/registry-version/1"

METER_POINT_ADDED, METER_POINT_RETIRED, SUPPLIER_SWITCH, METER_KEY_ROTATED = 1, 2, 3, 4
CHANGE_KINDS = {METER_POINT_ADDED: "add_meter_point", METER_POINT_RETIRED: "retire_meter_point",
                SUPPLIER_SWITCH: "switch", METER_KEY_ROTATED: "rotate_key"}
KIND_BY_NAME = {name: kind for kind, name in CHANGE_KINDS.items()}
_VERSIONS_CACHED = 16  # each is a full copy of the view: the correction window rarely spans more
MAX_CHANGE_BYTES = 256 * 1024  # one encoded change: a committee change of 1024 members and approvals fits

CHANGE_TYPES: dict[int, type] = {}  # tag -> message class of every kind of registry change (the allow-list)


def change_type(cls: type) -> type:
    """Class decorator (under `@message(tag)`): register a kind of registry change. It must have
    `effective_period`, `digest()`, `conflict_key`, `describe()`, `json_fields()` and `apply(draft)`."""
    for name in ("effective_period", "conflict_key", "describe", "json_fields", "apply"):
        if not hasattr(cls, name) and name not in getattr(cls, "__dataclass_fields__", {}):
            raise TypeError(f"{cls.__name__} lacks {name}")
    CHANGE_TYPES[cls.TAG] = cls
    return cls


def decode_change(data: bytes, *, approved_only: bool = False) -> Any:
    """A registry change from its canonical tagged bytes, decoded strictly by the allow-list of change kinds
    (only the approved kinds, the ones with `approvals`, when `approved_only`). Raises CodecError."""
    msg = decode(data, max_bytes=MAX_CHANGE_BYTES)
    if CHANGE_TYPES.get(msg.TAG) is not type(msg) or (approved_only and not is_approved(msg)):
        raise CodecError("tag", f"{type(msg).__name__} is no {'approved ' if approved_only else ''}registry change")
    return msg


def is_approved(c: Any) -> bool:
    """Does this change carry committee approvals (rather than one signer's signature)?"""
    return "approvals" in getattr(c, "__dataclass_fields__", {})


@dataclasses.dataclass
class Draft:
    """A registry version under construction: the parts a change may replace, applied in history order."""

    base: Registry  # the chain's genesis view
    pool: Registry  # the whole genesis
    validators: tuple[Validator, ...]  # the chain's committee (proposer order)
    meter_points: dict
    assignments: list
    groups: dict
    retired: dict[str, int]
    old_keys: dict[str, frozenset[bytes]]
    areas: dict = dataclasses.field(default_factory=dict)  # the view's grid areas (market-partner ids change)
    open_groups: dict = dataclasses.field(default_factory=dict)  # every open group, also outside an area's view
    closed_groups: dict[str, int] = dataclasses.field(default_factory=dict)  # group EIC -> period closed from

    def rotate_out(self, malo_id: str, old_key: bytes) -> None:
        self.old_keys[malo_id] = self.old_keys.get(malo_id, frozenset()) | {old_key}


@change_type
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

    def json_fields(self) -> dict:
        out = {"kind": self.kind_name, "malo_id": self.malo_id, "effective_period": self.effective_period,
               "signer": self.signer.hex()}
        for name in ("grid_area", "balancing_group", "supplier", "meter_operator", "point_kind", "source"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        if self.meter_key:
            out["meter_key"] = self.meter_key.hex()
        if self.max_power_w:
            out["max_power_w"] = self.max_power_w
        return out

    def apply(self, d: Draft) -> None:
        mp = d.meter_points.get(self.malo_id)
        if self.kind == METER_POINT_ADDED:
            d.meter_points[self.malo_id] = MeterPoint(self.malo_id, self.point_kind, self.source, self.grid_area,
                                                      self.balancing_group, self.meter_operator,
                                                      bytes(self.meter_key), self.max_power_w, supplier=self.supplier)
        elif mp is None:
            return  # the cascade never commits a change of a meter point that is not there
        elif self.kind == METER_POINT_RETIRED:
            del d.meter_points[self.malo_id]
            d.retired[self.malo_id] = self.effective_period
        elif self.kind == METER_KEY_ROTATED:
            d.rotate_out(self.malo_id, mp.meter_key)
            d.meter_points[self.malo_id] = mp._replace(meter_key=bytes(self.meter_key))
        elif self.kind == SUPPLIER_SWITCH:
            d.assignments.append(Assignment(self.malo_id, self.effective_period, self.balancing_group, self.supplier))
        group = self.balancing_group
        if group and group not in d.groups and group in d.open_groups:
            d.groups[group] = d.open_groups[group]


AnyChange = Union[RegistryChange, Message]  # any registered kind (CHANGE_TYPES)


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


def history_order(c: AnyChange) -> tuple[int, bytes]:
    """Committed changes are kept and applied in (effective period, digest) order."""
    return c.effective_period, c.digest()


def with_changes(history: tuple[AnyChange, ...], new: Iterable[AnyChange]) -> tuple[AnyChange, ...]:
    return tuple(sorted((*history, *new), key=history_order))


def version_hash(base: Registry, effective: tuple[AnyChange, ...]) -> bytes:
    if not effective:
        return base.hash
    return sha256(msgpack.packb([VERSION_DOMAIN, base.hash, [c.digest() for c in effective]], use_bin_type=True))


def registry_at(registry: Registry, period: int, changes: tuple[AnyChange, ...]) -> Registry:
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


def changes_in_effect(registry: Registry) -> tuple[AnyChange, ...]:
    """The changes a registry version applies to its genesis view (() for the genesis itself)."""
    return registry.__dict__.get("_effective", ())


def change_json(c: AnyChange) -> dict:
    """A change readable, with its canonical bytes (`encoded`, hex) which are what counts."""
    return {"encoded": c.encode().hex(), "digest": c.digest().hex(), **c.json_fields()}


def approving_keys(view: Registry, c: AnyChange, history: tuple) -> tuple[bytes, ...]:
    """The committee that must approve an approved change: the chain's committee just before it applies
    (with one pending change per kind and chain, the committee of the height that commits it)."""
    return registry_at(view, c.effective_period - 1, history).validator_keys()


def approval_terms(view: Registry, c: AnyChange, history: tuple) -> tuple[tuple[bytes, ...], str]:
    """(the keys that must approve `c`, the chain id their approvals sign under): a kind's own
    `approval_terms` (e.g. market changes: the network committee, the genesis chain id), else the chain's
    committee just before it applies and the chain's id."""
    own = getattr(c, "approval_terms", None)
    return own(view, history) if own is not None else (approving_keys(view, c, history), view.chain_id)


def approval_problem(view: Registry, c: AnyChange, history: tuple) -> Optional[tuple[str, str]]:
    """(reason, one line) for what is wrong with an approved change's approvals, or None."""
    keys, chain = approval_terms(view, c, history)
    return approvals_problem(c, keys, type(c).DOMAIN, chain)


def trust_problem(view: Registry, changes: Sequence[AnyChange]) -> Optional[str]:
    """The first approved change in `changes` (history order) that the committee in effect before it did not
    approve (more than 2/3, valid signatures under its kind's DOMAIN and the chain's id), as one line, or
    None: the chain of trust from the genesis committee. Other changes carry their signer's signature and are
    pinned by the registry version a certified result names."""
    history: tuple = ()
    for c in changes:
        if is_approved(c):
            problem = approval_problem(view, c, history)
            if problem is not None:
                return f"{c.describe()}: {problem[0]}: {problem[1]}"
        history = (*history, c)
    return None


def genesis_pool(registry: Registry) -> Registry:
    """The whole genesis a view was taken of (for balancing groups outside an area's view)."""
    return registry.__dict__.get("_genesis", registry)


def group_pool(registry: Registry) -> dict:
    """Every balancing group open in a registry version, also those outside an area's view: the genesis's,
    plus the groups opened, minus the groups closed by the changes in effect (registry/market.py)."""
    pool = registry.__dict__.get("_pool")
    return genesis_pool(registry).balancing_groups if pool is None else pool


def _apply(base: Registry, effective: tuple[AnyChange, ...]) -> Registry:
    pool = genesis_pool(base)
    d = Draft(base, pool, base.validators, dict(base.meter_points), list(base.assignments),
              dict(base.balancing_groups), {}, {}, dict(base.grid_areas), dict(group_pool(base)))
    for c in effective:
        c.apply(d)
    version = Registry(base.params, d.validators, d.areas.values(), d.groups.values(),
                       base.meter_operators.values(), d.meter_points.values(), d.assignments,
                       base.external_parties.values(), base.suppliers.values(),
                       network_committee=base.network_committee, scope=base.scope,
                       root_chain_id=base.root_chain_id)
    version.__dict__["hash"] = base.hash  # the chain's identity stays its genesis view's
    version.__dict__["_version"] = version_hash(base, effective)
    version.__dict__["_genesis"] = pool
    version.__dict__["_effective"] = effective
    version.__dict__["_pool"] = d.open_groups
    version.retired = d.retired
    version.old_keys = d.old_keys
    version.closed_groups = d.closed_groups
    return version
