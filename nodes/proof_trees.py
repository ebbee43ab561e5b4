"""The Merkle trees a validator serves light proofs from: built once per (period, version), in a worker
thread, never on the event loop (at a million meter points a build takes seconds).

Concurrent requests for a tree not yet built wait for the one build; builds run one at a time, so a flood
of requests for many periods costs one core at most and the event loop stays free. The newest `keep`
trees stay cached (each is ~300 MB at a million meter points).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, TypeVar

import trio

T = TypeVar("T")


class ProofTrees(Generic[T]):
    def __init__(self, build: Callable[[int, int], T], keep: int = 2):
        self._build = build
        self._keep = keep
        self._cache: OrderedDict[tuple[int, int], T] = OrderedDict()
        self._building = trio.Lock()
        self.builds = 0  # trees built so far (status and tests)

    async def get(self, period: int, version: int) -> T:
        key = (period, version)
        tree = self._cache.get(key)
        if tree is None:
            async with self._building:
                tree = self._cache.get(key)  # built while this request waited
                if tree is None:
                    tree = await trio.to_thread.run_sync(self._build, period, version)
                    self.builds += 1
                    self._cache[key] = tree
                    while len(self._cache) > self._keep:
                        self._cache.popitem(last=False)
        return tree
