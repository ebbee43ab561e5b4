"""The validator's collector schedule: set inside the block, undone after it."""

from __future__ import annotations

import gc

from nodes.gc_policy import FULL_EVERY, MIDDLE_EVERY, YOUNG_ALLOCATIONS, settled_collector


def test_the_schedule_holds_inside_the_block_and_is_undone_after_it():
    before = gc.get_threshold()
    kept = [[i] for i in range(1000)]  # tracked objects that exist before: frozen inside the block
    with settled_collector():
        assert gc.get_threshold() == (YOUNG_ALLOCATIONS, MIDDLE_EVERY, FULL_EVERY)
        assert gc.get_freeze_count() >= len(kept)
        oldest = {id(o) for o in gc.get_objects(generation=2)}  # what a full collection walks
        assert not any(id(x) in oldest for x in kept)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
