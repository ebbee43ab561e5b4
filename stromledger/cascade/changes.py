"""Checks of registry changes (registry/changes.py): who may sign what, and when a change may take effect.

Two parts, like readings:
- `change_shape` + `change_signature`: what the change itself says (fields for its kind, known area, group,
  operator, the signature): a pure function of the registry and the change, cached in the CheckedBatch;
- `change_verdict`: whether the seal of `height` may commit it, given the chain's committed history: the
  effective period lies beyond the gate (`CHANGE_LEAD`), the meter point exists then (or, for an addition,
  never did), the signer has the right for that meter point, and no other change of the meter point is
  committed for that or a later period, or already taken by this seal (at most one per meter point).

Approved changes (a `CommitteeChange`, ...) go the same way: `approved_shape` (their form, cached) and
`judge_change` (any kind: replay, gate, one pending change per conflict key, then the kind's own verdict,
including its approvals by the committee in office). A kind of approved change registers its two checks in
`APPROVED_KINDS`, next to its message class registered with `@change_type` (registry/changes.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from stromledger.ids import is_valid_eic, is_valid_malo_id
from stromledger.registry import SOURCES, Registry, RegistryChange, registry_at
from stromledger.registry.changes import (
    CHANGE_KINDS, METER_KEY_ROTATED, METER_POINT_ADDED, METER_POINT_RETIRED, SUPPLIER_SWITCH, AnyChange,
    approval_problem, change_signed, genesis_pool, group_pool,
)
from stromledger.registry.committee import SMALL_COMMITTEE, CommitteeChange
from stromledger.registry.market import grid_operator_keys, is_group_closing, is_group_opening
from stromledger.registry.genesis import MAX_POWER_W
from stromledger.registry.scopes import scopes

from .rejections import Reason, Rejection

# The seal of height h settles period h while period h + 1 is already open (its readings are arriving), so
# the earliest period boundary a change it commits can take effect at is h + 2: a period's registry version
# is fixed before the period begins.
CHANGE_LEAD = 2
ADDABLE_KINDS = ("consumer", "producer", "prosumer")
_PAYLOAD = ("grid_area", "balancing_group", "supplier", "meter_key", "meter_operator", "point_kind", "source",
            "max_power_w")
_USES = {
    METER_POINT_ADDED: set(_PAYLOAD),
    METER_POINT_RETIRED: set(),
    SUPPLIER_SWITCH: {"balancing_group", "supplier"},
    METER_KEY_ROTATED: {"meter_key"},
}


def earliest_effective(height: int) -> int:
    return height + CHANGE_LEAD


def change_shape(registry: Registry, c: RegistryChange) -> Rejection | None:
    """Everything about a change that needs neither the history nor its signature."""
    uses = _USES.get(c.kind)
    if uses is None:
        return Rejection(Reason.MALFORMED, f"unknown change kind {c.kind} (known: {sorted(CHANGE_KINDS)})")
    if not is_valid_malo_id(c.malo_id):
        return Rejection(Reason.MALFORMED, f"{c.malo_id!r} is not a valid MaLo-ID")
    extra = [f for f in _PAYLOAD if f not in uses and getattr(c, f)]
    if extra:
        return Rejection(Reason.MALFORMED, f"a {c.kind_name} change has no {', '.join(extra)}")
    pool = genesis_pool(registry)
    if c.kind in (METER_POINT_ADDED, METER_KEY_ROTATED) and len(c.meter_key) != 32:
        return Rejection(Reason.MALFORMED, "a meter key is 32 bytes (Ed25519)")
    if c.kind in (METER_POINT_ADDED, SUPPLIER_SWITCH):
        if not is_valid_eic(c.balancing_group):
            return Rejection(Reason.MALFORMED, f"{c.balancing_group!r} is not a valid EIC")
        if c.supplier:
            s = pool.suppliers.get(c.supplier)
            if s is None:
                return Rejection(Reason.MALFORMED, f"supplier {c.supplier} is not in the registry")
            if s.balancing_group != c.balancing_group:
                return Rejection(Reason.MALFORMED, f"supplier {c.supplier} balances in {s.balancing_group}, "
                                                   f"not {c.balancing_group}")
    if c.kind == METER_POINT_ADDED:
        if c.grid_area not in registry.grid_areas:
            if c.grid_area in pool.grid_areas:
                return Rejection(Reason.WRONG_CHAIN, f"a meter point of {c.grid_area} is added on its area's chain")
            return Rejection(Reason.MALFORMED, f"{c.grid_area!r} is no grid area of the genesis")
        if c.meter_operator not in registry.meter_operators:
            return Rejection(Reason.MALFORMED, f"meter operator {c.meter_operator!r} is not in the registry")
        if c.point_kind not in ADDABLE_KINDS:
            return Rejection(Reason.MALFORMED, f"kind {c.point_kind!r}: one of {', '.join(ADDABLE_KINDS)} "
                                               "(tie lines come with the genesis)")
        if c.source not in SOURCES:
            return Rejection(Reason.MALFORMED, f"source {c.source!r} is not one of {', '.join(SOURCES)}")
        if not 0 < c.max_power_w <= MAX_POWER_W:
            return Rejection(Reason.MALFORMED, f"max_power_w {c.max_power_w} is outside 1..{MAX_POWER_W}")
        if c.signer not in grid_operator_keys(registry, c.grid_area):
            return Rejection(Reason.WRONG_SIGNER, f"a meter point of {c.grid_area} is added by that area's grid "
                                                  "operator")
    return None


def change_signature(registry: Registry, c: RegistryChange) -> Rejection | None:
    if change_signed(registry, c):
        return None
    return Rejection(Reason.BAD_SIGNATURE, f"{c.kind_name} of {c.malo_id}")


def replay_or_late(c: AnyChange, digest: bytes, height: int, committed: frozenset[bytes]) -> Rejection | None:
    """A change (of any kind) already committed, or effective too early for the seal of `height`."""
    if digest in committed:
        return Rejection(Reason.DUPLICATE, f"{c.describe()} is already committed (a replayed change)")
    first = earliest_effective(height)
    if c.effective_period < first:
        return Rejection(Reason.CHANGE_TOO_LATE, f"{c.describe()}: the seal of height {height} takes changes "
                                                 f"effective from period {first} on")
    return None


def lead_and_conflicts(history: tuple, c, height: int, taken: Mapping[str, bytes],
                       committed: frozenset[bytes]) -> Rejection | None:
    """What every kind of change must meet for the seal of `height` to commit it: not committed yet, effective
    beyond the gate, no committed change of its conflict key (a meter point, a party) for that or a later
    period, none taken by this seal or pending."""
    digest = c.digest()
    why = replay_or_late(c, digest, height, committed)
    if why is not None:
        return why
    key = c.conflict_key
    for old in history:
        if old.conflict_key == key and old.effective_period >= c.effective_period:
            return Rejection(Reason.CONFLICTING_CHANGE, f"{c.describe()}: {old.describe()} is already committed")
    if taken.get(key, digest) != digest:
        return Rejection(Reason.CONFLICTING_CHANGE, f"{c.describe()}: another such change is pending (one per "
                                                    "meter point, party or chain until it is committed)")
    return None


def meter_point_then(registry: Registry, then: Registry, c) -> Rejection | None:
    """Why change `c` of an existing meter point cannot apply in its effective period (`then`), or None."""
    mp = then.meter_points.get(c.malo_id)
    if mp is None:
        if c.malo_id in then.retired:
            return Rejection(Reason.RETIRED_METER_POINT, f"{c.describe()}: retired from period "
                                                         f"{then.retired[c.malo_id]} on")
        if c.malo_id in genesis_pool(registry).meter_points:
            return Rejection(Reason.WRONG_CHAIN, f"{c.malo_id} is settled by another area's chain")
        return Rejection(Reason.UNKNOWN_METER_POINT, f"{c.malo_id} is not in the registry")
    if mp.kind == "boundary":
        return Rejection(Reason.MALFORMED, f"{c.malo_id} is a tie line: it changes with the genesis only")
    return None


def group_open_problem(then: Registry, history: tuple, group: str, period: int) -> Rejection | None:
    """Why a meter point cannot be put into `group` from `period` on: the group is not open then (not yet,
    not any more), or a committed closing ends it later (the meter point would be left in a closed group)."""
    if group not in group_pool(then):
        if group in then.closed_groups:
            return Rejection(Reason.UNKNOWN_BALANCING_GROUP, f"{group} is closed from period "
                                                             f"{then.closed_groups[group]} on")
        return Rejection(Reason.UNKNOWN_BALANCING_GROUP, f"{group} is not an open balancing group in period "
                                                         f"{period}")
    for old in history:
        if is_group_closing(old, group) and old.effective_period > period:
            return Rejection(Reason.UNKNOWN_BALANCING_GROUP, f"{group} closes from period {old.effective_period} "
                                                             "on (committed)")
    return None


def change_verdict(registry: Registry, history: tuple, c: RegistryChange, height: int,
                   taken: Mapping[str, bytes], committed: frozenset[bytes]) -> Rejection | None:
    """May the seal of `height` commit this (well-formed, signed) change? `history`: the chain's committed
    changes; `committed`: their digests; `taken`: conflict key -> digest of a change already taken (by this
    seal, or pending at the acceptor)."""
    why = lead_and_conflicts(history, c, height, taken, committed)
    if why:
        return why
    then = registry_at(registry, c.effective_period, history)
    if c.kind in (METER_POINT_ADDED, SUPPLIER_SWITCH):
        why = group_open_problem(then, history, c.balancing_group, c.effective_period)
        if why:
            return why
    mp = then.meter_points.get(c.malo_id)
    if c.kind == METER_POINT_ADDED:
        if mp is not None or c.malo_id in then.retired or c.malo_id in genesis_pool(registry).meter_points:
            return Rejection(Reason.MALFORMED, f"{c.malo_id} is already registered (MaLo-IDs are never reused)")
        return None
    why = meter_point_then(registry, then, c)
    if why:
        return why
    if c.kind == METER_KEY_ROTATED:
        operator = then.meter_operators.get(mp.meter_operator)
        if operator is None or c.signer != operator.public_key:
            return Rejection(Reason.WRONG_SIGNER, f"the key of {c.malo_id} is rotated by its meter operator "
                                                  f"{mp.meter_operator}")
        if c.meter_key == mp.meter_key or c.meter_key in then.old_keys.get(c.malo_id, ()):
            return Rejection(Reason.MALFORMED, f"{c.malo_id}: a rotation names a key the meter never had")
        return None
    if c.signer not in grid_operator_keys(registry, mp.grid_area):
        return Rejection(Reason.WRONG_SIGNER, f"a {c.kind_name} of {c.malo_id} is signed by the grid operator of "
                                              f"{mp.grid_area}")
    if c.kind == SUPPLIER_SWITCH and then.group_of(c.malo_id, c.effective_period) == c.balancing_group and \
            then.supplier_of(c.malo_id, c.effective_period) == c.supplier:
        return Rejection(Reason.MALFORMED, f"{c.malo_id} is already in {c.balancing_group} in period "
                                           f"{c.effective_period}")
    return None


def opened_group_keys(history: tuple) -> frozenset[bytes]:
    """The operator keys of the balancing groups opened by committed changes: they submit batches (their
    schedules) like the genesis's group operators; each schedule is judged by its period's version."""
    return frozenset(bytes(c.operator_key) for c in history if is_group_opening(c))


# -- approved changes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovedKind:
    """The checks of one kind of approved change. `shape(registry, c)`: its form (no history, no approvals);
    `verdict(registry, history, c, height)`: may the seal of `height` commit it, given the committed history
    (replay, gate and pending conflicts are judged before, by `judge_change`); it checks the approvals."""

    shape: Callable[[Registry, Any], Optional[Rejection]]
    verdict: Callable[[Registry, tuple, Any, int], Optional[Rejection]]


_APPROVAL_REASONS = {"unsorted_approvals": Reason.MALFORMED, "unknown_approver": Reason.UNKNOWN_APPROVER,
                     "bad_signature": Reason.BAD_SIGNATURE, "insufficient_approvals": Reason.INSUFFICIENT_APPROVALS}


def approvals_rejection(registry: Registry, history: tuple, c: Any) -> Rejection | None:
    """Are `c`'s approvals more than 2/3 of the committee in office before it applies (registry/approvals.py)?"""
    problem = approval_problem(registry, c, history)
    if problem is None:
        return None
    return Rejection(_APPROVAL_REASONS[problem[0]], f"{c.describe()}: {problem[1]}")


def committee_shape(registry: Registry, c: CommitteeChange) -> Rejection | None:
    pool = genesis_pool(registry)
    if c.scope not in scopes(pool):
        return Rejection(Reason.MALFORMED, f"{c.scope!r} is neither 'network' nor a grid area of the genesis")
    if c.scope != registry.scope:
        return Rejection(Reason.WRONG_CHAIN, f"a committee change of {c.scope} is committed by that chain")
    if not c.members:
        return Rejection(Reason.MALFORMED, "a committee has at least one member")
    if len(set(c.members)) != len(c.members):
        return Rejection(Reason.MALFORMED, "a committee names each validator once")
    known = {v.name for v in pool.validators}
    unknown = [n for n in c.members if n not in known]
    if unknown:
        return Rejection(Reason.MALFORMED, f"{', '.join(unknown[:3])}: no validator of the genesis")
    return None


def committee_verdict(registry: Registry, history: tuple, c: CommitteeChange, height: int) -> Rejection | None:
    for old in history:
        if isinstance(old, CommitteeChange) and old.scope == c.scope and \
                (old.effective_period >= c.effective_period or old.effective_period > height):
            return Rejection(Reason.CONFLICTING_CHANGE, f"{c.describe()}: {old.describe()} is already committed")
    then = registry_at(registry, c.effective_period - 1, history)
    if tuple(v.name for v in then.validators) == tuple(c.members):
        return Rejection(Reason.MALFORMED, f"{c.describe()}: that is the committee already")
    return approvals_rejection(registry, history, c)


# Every kind of approved change and its checks: the one place a kind plugs into the cascade.
APPROVED_KINDS: dict[type, ApprovedKind] = {CommitteeChange: ApprovedKind(committee_shape, committee_verdict)}


def approved_shape(registry: Registry, c: Any) -> Rejection | None:
    kind = APPROVED_KINDS.get(type(c))
    if kind is None:
        return Rejection(Reason.MALFORMED, f"{type(c).__name__} is no approved change this node judges")
    return kind.shape(registry, c)


def judge_change(registry: Registry, history: tuple, c: AnyChange, height: int, taken: Mapping[Any, bytes],
                 committed: frozenset[bytes]) -> Rejection | None:
    """May the seal of `height` commit this change (of any kind, its form already checked)? `taken`: conflict
    key -> digest of a change already taken (by this seal, or pending at the acceptor)."""
    if isinstance(c, RegistryChange):
        return change_verdict(registry, history, c, height, taken, committed)
    return lead_and_conflicts(history, c, height, taken, committed) or \
        APPROVED_KINDS[type(c)].verdict(registry, history, c, height)


def small_committee_warning(c: CommitteeChange) -> str | None:
    """What `genesis check` warns of a committee too small to tolerate a fault."""
    if len(c.members) < SMALL_COMMITTEE:
        return (f"a committee of {len(c.members)} tolerates no faulty validator (4 tolerate one): "
                f"the chain of {c.scope} stops when one member does")
    return None
