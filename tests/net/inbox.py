"""A handler that records what arrives, for the network tests: tests wait on a count, never on time."""

from __future__ import annotations

import trio


class Inbox:
    """Records (peer, payload); `wait_for(n)` returns once n messages arrived."""

    def __init__(self) -> None:
        self.items: list[tuple[bytes, bytes]] = []
        self._waiters: list[tuple[int, trio.Event]] = []

    async def handler(self, peer: bytes, payload: bytes) -> None:
        self.items.append((peer, payload))
        for n, event in self._waiters:
            if len(self.items) >= n:
                event.set()

    async def wait_for(self, n: int) -> None:
        if len(self.items) < n:
            event = trio.Event()
            self._waiters.append((n, event))
            await event.wait()

    def from_(self, peer: bytes) -> list[bytes]:
        return [p for k, p in self.items if k == peer]
