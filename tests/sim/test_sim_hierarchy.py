"""The hierarchy simulator: area committees and the network committee, byzantine members, a stalled area."""

from __future__ import annotations

from stromledger.sim.hierarchy import (
    HierarchyConfig, SimNetworkValue, check_hierarchy, run_hierarchy_seeds, simulate_hierarchy,
)


def test_byzantine_members_and_a_stalled_area_keep_every_invariant():
    s = run_hierarchy_seeds(HierarchyConfig(seed=0, areas=3, byzantine=1, faults="all", heights=4), range(3))
    assert s.failing_seeds == [], s.examples
    assert s.absent >= 3 * 4  # the stalled area misses every deadline of its periods ...
    assert s.late_versions >= 3  # ... and comes in later as new versions


def test_an_honest_network_uses_every_checkpoint_that_came_in_time():
    result = simulate_hierarchy(HierarchyConfig(seed=5, areas=2, heights=3, stalled=1))
    assert check_hierarchy(result) == []
    used = set()
    for d in result.network.decisions:
        used |= {(e.area, e.period) for e in SimNetworkValue.decode(d.value).entries}
    first = result.network.config.first_height
    assert {(a, first + h) for a in (0, 1) for h in range(3)} <= used


def test_a_committee_beyond_its_bound_is_caught_across_levels():
    result = simulate_hierarchy(HierarchyConfig(seed=1, areas=2, byzantine=2, heights=3, stalled=0,
                                                byzantine_mode="split"))
    kinds = {v.kind for v in check_hierarchy(result)}
    assert {"agreement", "cross_level"} <= kinds


def test_the_same_seed_gives_the_same_hierarchy():
    a = simulate_hierarchy(HierarchyConfig(seed=3, areas=2, byzantine=1, faults="drop", heights=3))
    b = simulate_hierarchy(HierarchyConfig(seed=3, areas=2, byzantine=1, faults="drop", heights=3))
    assert [r.trace_hash for r in a.areas] == [r.trace_hash for r in b.areas]
    assert a.network.trace_hash == b.network.trace_hash
