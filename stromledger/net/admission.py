"""Who may hold a connection to us, and how much of our memory a peer may pin (issue 19, findings 1, 4, 8).

``Budgets`` holds every limit with its default; docs/operations.md ("Network budgets") explains each.
The enforcement lives in ``p2p``; the bookkeeping is here:

- ``Outsiders``: connections not (yet) known to belong to an admitted key, i.e. still in the TCP/Noise/yamux
  handshake or authenticated as an unregistered key and being refused. They share ``outsider_slots`` (and
  ``outsider_slots_per_address`` per source IP), so idle sockets and unregistered peers can never take the
  connection slots registry keys need: libp2p's inbound cap (250) minus the outsider slots stays theirs.
- ``ByteBudget``: bytes of partly received or still-handled frames, per peer and in total.
- ``RefusalLog``: every refusal is counted; its log line is written at most once per reason per interval,
  with the number left out since.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True)
class Budgets:
    handshake_timeout: float = 3.0  # s from TCP accept to a finished Noise + yamux upgrade
    outsider_slots: int = 64  # connections handshaking or being refused, all sources together
    outsider_slots_per_address: int = 8  # ... of them from one source IP address
    refusal_grace: float = 0.5  # s an unregistered peer stays connected after its handshake (no stream opened)
    first_frame_timeout: float = 0.25  # s a refused stream may take to send its first frame before the answer
    frame_deadline: float = 10.0  # s a frame may take from its first byte to its last
    inflight_per_peer: int = 12 * MiB  # bytes of frames being received or handled, per peer
    inflight_total: int = 64 * MiB  # ... for all peers together
    refusal_log_every: float = 10.0  # s between two log lines of one refusal reason

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value > 0:
                raise ValueError(f"network budget {name} must be positive, not {value!r}")
        if self.outsider_slots_per_address > self.outsider_slots:
            raise ValueError("outsider_slots_per_address cannot exceed outsider_slots")


class Outsiders:
    """Counts outsider slots in use, in total and per source address."""

    def __init__(self, budgets: Budgets) -> None:
        self._budgets = budgets
        self.total = 0
        self.by_address: Counter[str] = Counter()

    def take(self, address: str) -> str | None:
        """Take a slot for a connection from ``address``; None if taken, else why not."""
        if self.total >= self._budgets.outsider_slots:
            return "outsider_slots"
        if self.by_address[address] >= self._budgets.outsider_slots_per_address:
            return "address_slots"
        self.total += 1
        self.by_address[address] += 1
        return None

    def give_back(self, address: str) -> None:
        self.total -= 1
        self.by_address[address] -= 1
        if self.by_address[address] <= 0:
            del self.by_address[address]


class ByteBudget:
    """In-flight bytes per peer and in total; ``for_peer`` hands a frame reader its peer's share."""

    def __init__(self, per_peer: int, total: int) -> None:
        self.per_peer = per_peer
        self.total_limit = total
        self.total = 0
        self.by_peer: Counter[bytes] = Counter()

    def reserve(self, peer: bytes, n: int) -> str | None:
        if self.by_peer[peer] + n > self.per_peer:
            return "peer_inflight"
        if self.total + n > self.total_limit:
            return "total_inflight"
        self.by_peer[peer] += n
        self.total += n
        return None

    def release(self, peer: bytes, n: int) -> None:
        self.total -= n
        self.by_peer[peer] -= n
        if self.by_peer[peer] <= 0:
            del self.by_peer[peer]

    def for_peer(self, peer: bytes) -> PeerShare:
        return PeerShare(self, peer)


@dataclass(frozen=True)
class PeerShare:
    """One peer's view of a ``ByteBudget`` (the ``framing.Allowance`` protocol)."""

    budget: ByteBudget
    peer: bytes

    def reserve(self, n: int) -> str | None:
        return self.budget.reserve(self.peer, n)

    def release(self, n: int) -> None:
        self.budget.release(self.peer, n)


class RefusalLog:
    """Counts each refusal in ``stats[key]`` and logs each key at most once per ``every`` seconds."""

    def __init__(self, log: logging.Logger, stats: Counter[str], every: float,
                 clock: Callable[[], float]) -> None:
        self._log = log
        self._stats = stats
        self._every = every
        self._clock = clock
        self._next_at: dict[str, float] = {}
        self._left_out: Counter[str] = Counter()

    def count(self, key: str, detail: str) -> None:
        self._stats[key] += 1
        now = self._clock()
        if now < self._next_at.get(key, float("-inf")):
            self._left_out[key] += 1
            return
        self._next_at[key] = now + self._every
        more = self._left_out.pop(key, 0)
        suffix = f" (and {more} more since the last line)" if more else ""
        self._log.warning("%s: %s%s", key, detail, suffix)
