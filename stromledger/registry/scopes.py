"""Scopes: the chains one genesis defines, and the registry view each chain settles with.

A genesis defines one chain per grid area (scope = the area's EIC) and one network chain (scope
"network"). Each chain has its own chain id, derived from the genesis chain id, and its own committee (the
validators the genesis names for it; none named = every validator). `view(registry, scope)` is the
Registry that chain's cascade runs on, so the existing settlement code runs unchanged on every level:

- an area view holds the area, the balancing groups its meter points and loss can name, the meter points the
  area operates and every tie line touching the area (a tie line between two areas is settled by both: the
  same signed readings, so the network can check that both sides agree). A tie line's side in another area is "outside" in the view (it
  is booked as exchange with outside the area); it does not settle schedules;
- the network view holds every area and group and no meter point: its own cascade settles only the
  schedules; the area results come in as certified checkpoints (cascade/network.py).

Readings and schedules keep the genesis chain id in their signatures (`Registry.root_chain_id`): which
chain may settle a reading follows from its meter point, so a reading replayed on another area's chain is
refused as an unknown meter point. Batches, receipts, votes, proposals and certificates are signed under
the chain's own id and never verify on another chain.
"""

from __future__ import annotations

from dataclasses import replace

from .model import Registry, Validator

NETWORK = "network"
AREA_PREFIX = "/area/"
NETWORK_SUFFIX = "/" + NETWORK


def scopes(registry: Registry) -> tuple[str, ...]:
    """Every chain of the genesis: the areas by EIC, then the network."""
    return (*registry.grid_areas, NETWORK)


def chain_id(registry: Registry, scope: str) -> str:
    """`<genesis chain id>/area/<EIC>` or `<genesis chain id>/network` (at most 64 characters: the genesis
    chain id has at most 42)."""
    _known(registry, scope)
    root = registry.root_chain_id
    return root + NETWORK_SUFFIX if scope == NETWORK else root + AREA_PREFIX + scope


def committee(registry: Registry, scope: str) -> tuple[Validator, ...]:
    """The validators of a scope's chain, in genesis order (the proposer order)."""
    _known(registry, scope)
    names = registry.network_committee if scope == NETWORK else registry.grid_areas[scope].committee
    if not names:
        return registry.validators
    wanted = set(names)
    return tuple(v for v in registry.validators if v.name in wanted)


def scopes_of(registry: Registry, name: str) -> tuple[str, ...]:
    """The chains a validator (by name) sits on."""
    return tuple(s for s in scopes(registry) if any(v.name == name for v in committee(registry, s)))


def view(registry: Registry, scope: str) -> Registry:
    """The registry a scope's chain settles with (cached on the genesis registry)."""
    if registry.scope:
        raise ValueError(f"{registry.chain_id} is already a view: views are taken of the genesis registry")
    cache = registry.__dict__.setdefault("_views", {})
    got = cache.get(scope)
    if got is None:
        got = cache[scope] = _make_view(registry, scope)
        got.__dict__["_genesis"] = registry  # registry versions take switched-to groups from the genesis
    return got


def _make_view(registry: Registry, scope: str) -> Registry:
    params = replace(registry.params, chain_id=chain_id(registry, scope))
    members = committee(registry, scope)
    if scope == NETWORK:
        return Registry(params, members, registry.grid_areas.values(), registry.balancing_groups.values(),
                        registry.meter_operators.values(), (), (), registry.external_parties.values(),
                        registry.suppliers.values(), scope=NETWORK,
                        root_chain_id=registry.root_chain_id)
    meters = _meter_points_by_area(registry)[scope]
    kept = {m.malo_id for m in meters}
    assignments = [a for a in registry.assignments if a.malo_id in kept]
    area = registry.grid_areas[scope]
    # the groups the area's cells and loss can name (not all of a country's: the seal lists every group)
    wanted = {m.balancing_group for m in meters if m.balancing_group} | {a.group for a in assignments}
    wanted.add(area.loss_group)
    groups = [g for e, g in registry.balancing_groups.items() if e in wanted]
    return Registry(params, members, [area], groups, registry.meter_operators.values(), meters, assignments,
                    registry.external_parties.values(), registry.suppliers.values(), scope=scope,
                    root_chain_id=registry.root_chain_id)


def _meter_points_by_area(registry: Registry) -> dict[str, list]:
    """Every area's meter points for its view, in MaLo-ID order, from one pass over the genesis (a country
    has millions of meter points and hundreds of areas). A tie line's side in another area becomes ""."""
    got = registry.__dict__.get("_by_area")
    if got is not None:
        return got
    by_area: dict[str, list] = {a: [] for a in registry.grid_areas}
    for malo in registry.malo_order:
        mp = registry.meter_points[malo]
        if mp.kind != "boundary":
            by_area[mp.grid_area].append(mp)
            continue
        for area in dict.fromkeys(a for a in (mp.grid_area, mp.area_out, mp.area_in) if a):
            by_area[area].append(mp._replace(area_out=mp.area_out if mp.area_out == area else "",
                                             area_in=mp.area_in if mp.area_in == area else ""))
    registry.__dict__["_by_area"] = by_area
    return by_area


def tie_lines(registry: Registry) -> dict[str, tuple[str, str]]:
    """Boundary meters between two areas of the genesis: MaLo-ID -> (area_out, area_in)."""
    out = {}
    for malo in registry.boundary:
        mp = registry.meter_points[malo]
        if mp.area_out and mp.area_in:
            out[malo] = (mp.area_out, mp.area_in)
    return out


def _known(registry: Registry, scope: str) -> None:
    if scope != NETWORK and scope not in registry.grid_areas:
        raise KeyError(f"{scope!r} is neither {NETWORK!r} nor a grid area of the genesis")
