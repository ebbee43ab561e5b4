"""The cyclic garbage collector's schedule for a validator process.

With CPython's default thresholds (700, 10, 10) a full collection runs whenever the objects that survived
since the last one exceed a quarter of the old ones: ingesting readings keeps Reading objects alive (held
batches until a seal settles them), so full collections come every few ten thousand readings, and each one
walks the whole heap (the registry, the acceptor) holding the GIL, while every verify thread waits.
Measured on the ingestion path (600,000 readings checked and admitted, the acceptors kept alive, 20,000
meter points; docs/benchmarks.md section ingest): 5.5 µs of collection per reading with the defaults,
0.7 µs with this schedule, against about 57 µs per Ed25519 verify.

The schedule: what exists once the node has loaded (the registry above all, which never becomes garbage)
is frozen out of every collection, young collections run every 50,000 allocations instead of 700 (short-
lived cycles, e.g. of finished network tasks, are still collected there), and a full collection only
after 20 x 10 of those. Memory that only a full collection would free (cycles that lived long) waits
longer; nothing else changes: objects without cycles are freed by reference counting as always.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator

YOUNG_ALLOCATIONS = 50_000  # CPython's default 700
MIDDLE_EVERY = 20  # young collections per middle one (default 10)
FULL_EVERY = 10  # middle collections per full one (default 10)


def settle_collector() -> None:
    """Freeze what exists now and set the schedule above. Call once the node has loaded its registry."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_ALLOCATIONS, MIDDLE_EVERY, FULL_EVERY)


@contextmanager
def settled_collector() -> Iterator[None]:
    """`settle_collector` for a block, undone after it (the benchmarks share their process with other work)."""
    before = gc.get_threshold()
    settle_collector()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
