"""Who may hold a connection to us, and how much of our memory a peer may pin (issue 19, findings 1, 4, 8).

``Budgets`` holds every limit with its default; docs/operations.md ("Network budgets") explains each.
The enforcement lives in ``p2p``; the bookkeeping is here:

- ``Outsiders``: connections not (yet) known to belong to an admitted key, i.e. still in the TCP/Noise/yamux
  handshake or authenticated as an unregistered key and being refused. They share ``outsider_slots`` (and
  ``outsider_slots_per_address`` per source IP), so idle sockets and unregistered peers can never take the
  connection slots registry keys need: libp2p's inbound cap (250) minus the outsider slots stays theirs.
- ``ByteBudget``: bytes of partly received or still-handled frames, per peer and in total.
- ``StreamSlots``: inbound streams being served per admitted peer (one more is reset at once).
- ``PeerRates``: frames and bytes per second per admitted peer, as token buckets; a peer over its rate is
  slowed down (its stream is read later: yamux's flow control then holds its writes), never dropped, so an
  honest burst costs time, not data, and a flood costs the node a bounded rate of work.
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
    streams_per_peer: int = 32  # inbound streams served at once for one admitted peer
    frames_per_second: float = 200.0  # inbound frames per second per admitted peer, sustained ...
    frames_burst: int = 400  # ... and in a burst
    bytes_per_second: int = 16 * MiB  # inbound bytes per second per admitted peer, sustained ...
    bytes_burst: int = 32 * MiB  # ... and in a burst

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


class StreamSlots:
    """Inbound streams being served, per admitted peer."""

    def __init__(self, per_peer: int) -> None:
        self.per_peer = per_peer
        self.by_peer: Counter[bytes] = Counter()

    def take(self, peer: bytes) -> bool:
        if self.by_peer[peer] >= self.per_peer:
            return False
        self.by_peer[peer] += 1
        return True

    def give_back(self, peer: bytes) -> None:
        self.by_peer[peer] -= 1
        if self.by_peer[peer] <= 0:
            del self.by_peer[peer]


class _Bucket:
    """A token bucket that may go into debt: a frame larger than the burst is let through, and the debt is
    waited off before the next one."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = burst, now

    def take(self, n: float, now: float) -> float:
        """Take `n` tokens; the seconds to wait before the caller may go on (0: at once)."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class PeerRates:
    """Frames and bytes per second per admitted peer (admitted keys only: the table is bounded by the
    registry)."""

    def __init__(self, budgets: Budgets, clock: Callable[[], float]) -> None:
        self._budgets = budgets
        self._clock = clock
        self._buckets: dict[bytes, tuple[_Bucket, _Bucket]] = {}

    def delay(self, peer: bytes, nbytes: int) -> float:
        """Count one frame of `nbytes` from `peer`; the seconds its stream must wait before the next read."""
        now = self._clock()
        buckets = self._buckets.get(peer)
        if buckets is None:
            b = self._budgets
            buckets = self._buckets[peer] = (_Bucket(b.frames_per_second, b.frames_burst, now),
                                             _Bucket(b.bytes_per_second, b.bytes_burst, now))
        frames, size = buckets
        return max(frames.take(1, now), size.take(nbytes, now))


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
