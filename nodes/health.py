"""A node's health: the fields every role puts in status.json, and what `stromledger status` makes of them.

    peers               registry parties (validators, operators) this node is connected to
    quorum              validator: it and the validators it is connected to are a quorum (more than 2/3),
                        so periods can settle; light and balancing-group nodes: a validator is connected
    catching_up         behind, and able to catch up (has a quorum)
    behind_periods      periods whose gate has closed that this node has not settled (validator), verified
                        (meter-point) or followed (balancing-group) yet; 0 or 1 is normal
    halted              the node has stopped making progress on its own and needs an operator
    settlement_waiting  validator: a committed height it cannot apply yet (null normally)

`stale` is not a field: `stromledger status` derives it from `updated_at`.
"""

from __future__ import annotations

from typing import Any, Optional

from stromledger.registry import Registry

FIELDS = ("peers", "quorum", "catching_up", "behind_periods", "halted", "settlement_waiting")
BEHIND_ALERT = 2  # behind_periods from which status calls a node behind (1 is normal right after a gate closure)


def quorum_of(n: int) -> int:
    return 2 * n // 3 + 1


def health_fields(connected: set[bytes], registry: Registry, own_key: bytes, *, behind_periods: int,
                  halted: bool, settlement_waiting: Optional[int] = None) -> dict[str, Any]:
    validators = list(registry.validator_keys())
    linked = sum(1 for k in validators if k != own_key and k in connected)
    if own_key in validators:
        quorum = linked + 1 >= quorum_of(len(validators))
    else:
        quorum = linked > 0
    behind = max(0, int(behind_periods))
    return {"peers": sum(1 for k in connected if k in registry.submitter_keys), "quorum": quorum,
            "catching_up": behind >= BEHIND_ALERT and quorum and not halted, "behind_periods": behind,
            "halted": bool(halted), "settlement_waiting": settlement_waiting}


def gate_closed_period(registry: Registry, now: float) -> int:
    """The newest period whose gate has closed at `now` (period end + grace <= now)."""
    return (int(now) - registry.params.grace_seconds) // registry.period_seconds - 1


def health_problems(role: str, liveness: dict[str, Any], status: Optional[dict[str, Any]],
                    registry: Optional[Registry], now: int) -> list[str]:
    """Why a node is not healthy, one line each (empty: it is). `liveness` is nodes.setup.node_liveness."""
    state = liveness["state"]
    if state in ("never started", "stopped"):
        return [f"the node is {state}"]
    if state == "stale":
        return [f"stale: status.json was last written {liveness.get('age_s')} s ago although the process lives "
                f"(stuck? see its log)"]
    status = status or {}
    problems = []
    before_genesis = registry is not None and now < registry.period(registry.genesis_period).start
    if status.get("halted"):
        why = status.get("halted_reason") or (f"it cannot apply committed height {status['settlement_waiting']}"
                                              if status.get("settlement_waiting") is not None else "see its log")
        problems.append(f"halted: {why}")
    if status.get("quorum") is False:
        if role == "validator" and registry is not None:
            n = len(registry.validators)
            problems.append(f"no quorum: connected to {status.get('peers', 0)} registry peer(s); it needs "
                            f"{quorum_of(n) - 1} of the {n - 1} other validators"
                            + (" before the genesis time" if before_genesis else ""))
        else:
            problems.append("no validator connected")
    behind = status.get("behind_periods")
    if isinstance(behind, int) and behind >= BEHIND_ALERT:
        problems.append(f"{behind} periods behind the clock"
                        + (" (catching up)" if status.get("catching_up") else ""))
    return problems


def genesis_countdown(registry: Optional[Registry], now: int) -> Optional[str]:
    """'genesis in N min' before the chain's first period starts, else None."""
    if registry is None:
        return None
    start = registry.period(registry.genesis_period).start
    if now >= start:
        return None
    seconds = start - now
    return f"genesis in {seconds // 60} min" if seconds >= 120 else f"genesis in {seconds} s"
