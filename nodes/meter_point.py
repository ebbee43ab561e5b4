"""The meter-point light node: a meter operator's node.

Its meters are the registry's meter points whose `meter_operator` is the operator holding this node's key.
Every period, shortly after the period ends (well before gate closure = end + grace), it takes its meters'
signed readings for that period from its feed, packs them into batches, keeps each batch in the store's
outbox and sends it to its validator (the first [[peers]] entry; the others if that one fails, with
backoff). A validator that does not answer soon (stopped, overloaded: its kernel may still accept the
connection) does not hold the batch past gate closure: after half the time left until the period's "in
time" ends (between HEDGE_MIN and HEDGE_MAX) the next validator is asked as well, the first valid receipt
wins, and the slow one is asked last for DEMOTE_SECONDS. Each validator receipt is kept; rejected items are
logged with their reasons. A batch leaves the outbox only with a receipt, so a restart loses nothing.
Verifying runs beside submitting, so a validator slow to give proofs never delays the next period's batches.

Once a period is committed it verifies, with nothing but the genesis, that every reading it sent was settled
exactly as sent (nodes/light.py): the commit certificate, the seal, the period result and each reading's
Merkle proof. A mismatch is logged at ERROR with the MaLo-ID and what differs, and counted in status.json.

    [meter_point]
    feed = "simulated"      # or "inbox": signed Batch files dropped into data/inbox/
    seed = 1                # the simulated feed's seed
    start = "2026-06-21T00:00"  # optional: the simulated quarter hour of the genesis period (default: its real time)
    energies = "simulated-energies.npz"  # optional: energies the devnet computed once for all its nodes
    batch_size = 5000       # readings per batch (at most 20000: a batch must fit in one network frame)
    submit_delay_ms = ...   # after period end (default: a tenth of the grace, at most 1 s)

The submit client (`submit_batch`) and the durable `Outbox` are shared with the balancing-group node and
the `stromledger submit` command.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import trio

from stromledger.cascade import Batch, Reading, Reason, Receipt, make_batch
from stromledger.cascade.checks import correctable_from
from stromledger.cascade.messages import RECEIPT_DOMAIN
from stromledger.codec import CodecError, decode
from stromledger.crypto import sha256, verify
from stromledger.net import LIGHT, MAX_FRAME, SUBMIT, FrameTooLarge, NetError, Network
from stromledger.periods import gate_margin_ms
from stromledger.registry import Registry

from .feed import InboxError, InboxFeed, SimulatedFeed
from .health import gate_closed_period, health_fields
from .light import Failure, LightCheck, LightError, latest_readings, verify_light_reply
from .protocol import MAX_LIGHT_IDS, ErrorReply, LightReply, LightRequest
from .runtime import NodeContext, RoleNode, run_role

REQUEST_TIMEOUT = 10.0
MAX_BACKOFF = 30.0
HEDGE_MIN = 0.1  # s a validator has to answer a submit before the next one is asked as well ...
HEDGE_MAX = 2.0  # ... at most (a batch with time to spare, or already late)
DEMOTE_SECONDS = 30.0  # a validator that did not answer in time is asked last for this long
READING = 1
MAX_BATCH = 20_000  # readings per batch: about 150 bytes each, and a batch must fit in one 4 MiB frame


# -- submitting batches ------------------------------------------------------------------------------------


class SubmitFailed(Exception):
    """No validator answered with a valid receipt; the message lists what each one did."""


class BatchTooLarge(SubmitFailed):
    """The batch does not fit in one network frame: no validator will ever take it (split it)."""


def reason_label(code: int) -> str:
    try:
        return Reason(code).label
    except ValueError:
        return f"reason_{code}"


def receipt_problem(receipt: Receipt, digest: bytes, validator: bytes, chain_id: str) -> Optional[str]:
    """Why a receipt is not a valid answer from `validator` for the batch `digest` (None when it is)."""
    if receipt.batch != digest and not (receipt.batch == bytes(32) and receipt.batch_reason):
        return "the receipt is for another batch"
    if receipt.validator != validator:
        return "the receipt is signed by another validator than the one asked"
    if not verify(receipt.validator, receipt.sig, RECEIPT_DOMAIN, chain_id, receipt.body()):
        return "the receipt's signature does not verify"
    return None


def short_key(key: bytes) -> str:
    """A peer in a log line when its registry name is not at hand (NodeContext.peer_name gives that)."""
    return key.hex()[:12]


async def submit_batch(net: Network, validators: Sequence[bytes], data: bytes, chain_id: str, *,
                       timeout: float = REQUEST_TIMEOUT, hedge_after: Optional[float] = None,
                       name: Callable[[bytes], str] = short_key, slow: Optional[list[bytes]] = None,
                       on_receipt: Optional[Callable[[], None]] = None) -> tuple[bytes, Receipt]:
    """Send canonical Batch bytes to the validators in order until one answers with a valid signed receipt;
    returns (that validator's key, the receipt). Raises SubmitFailed if none does.

    Each request has its own `timeout`. A validator that fails is followed by the next at once. With
    `hedge_after` (seconds), one that has not answered by then does not hold up the next either: the next is
    asked as well while its request goes on; the first valid receipt wins and the other requests are
    cancelled (a validator that gets the batch twice calls it a duplicate). The validators that failed or did
    not answer within `hedge_after` are appended to `slow`; `on_receipt` is called as soon as the winning
    receipt is in (before the other requests have ended)."""
    digest = sha256(data)
    problems: dict[bytes, str] = {}
    won: list[tuple[bytes, Receipt]] = []
    too_large: list[str] = []

    async def attempt(peer: bytes, finished: trio.Event, race: trio.CancelScope) -> None:
        try:
            outcome = await _submit_one(net, peer, data, digest, chain_id, timeout)
        except FrameTooLarge as e:
            too_large.append(str(e))
            race.cancel()
            return
        finally:
            finished.set()  # the loop below goes on only once this task is blocked again: after what follows
        if isinstance(outcome, str):
            problems[peer] = outcome
        elif not won:
            won.append((peer, outcome))
            race.cancel()
            if on_receipt is not None:
                on_receipt()

    wait = math.inf if hedge_after is None else max(0.0, hedge_after)
    late: list[bytes] = []
    async with trio.open_nursery() as nursery:
        for peer in validators:
            if nursery.cancel_scope.cancel_called:  # a receipt came (or the batch is too large): ask no more
                break
            finished = trio.Event()
            nursery.start_soon(attempt, peer, finished, nursery.cancel_scope)
            with trio.move_on_after(wait):
                await finished.wait()
            if not finished.is_set():
                late.append(peer)
    if too_large:
        raise BatchTooLarge(f"{len(data)} bytes: {too_large[0]}; split it into smaller batches")
    if slow is not None:
        slow.extend(p for p in validators if p in problems or p in late)
    if won:
        return won[0]
    raise SubmitFailed("; ".join(f"{name(p)}: {problems[p]}" for p in validators if p in problems)
                       or "no validator to send to")


async def _submit_one(net: Network, peer: bytes, data: bytes, digest: bytes, chain_id: str,
                      timeout: float) -> Receipt | str:
    """One validator's valid receipt for the batch, or why there is none (FrameTooLarge passes through)."""
    try:
        reply = decode(await net.request(peer, SUBMIT, data, timeout=timeout))
    except FrameTooLarge:
        raise
    except NetError as e:
        return str(e)
    except CodecError as e:
        return f"malformed reply: {e}"
    if isinstance(reply, ErrorReply):
        return f"{reply.reason}: {reply.message}"
    if not isinstance(reply, Receipt):
        return f"unexpected {type(reply).__name__}"
    return receipt_problem(reply, digest, peer, chain_id) or reply


def hedge_delay(seconds_left: float) -> float:
    """How long one validator may take to answer a submit before the next is asked as well: half the time
    left until the batch is no longer in time, between HEDGE_MIN and HEDGE_MAX (HEDGE_MAX once it is late)."""
    if not seconds_left > 0:  # also NaN
        return HEDGE_MAX
    return min(HEDGE_MAX, max(HEDGE_MIN, seconds_left / 2))


def receipted_readings(store, digest: bytes) -> Optional[list[Reading]]:
    """The readings of a stored batch that its validator's receipt accepted; None without a receipt or when
    the batch was refused as a whole."""
    raw = store.get_receipt(digest)
    if raw is None:
        return None
    receipt = Receipt.decode(raw)
    if batch_refused(receipt):
        return None
    skip = rejected_readings(receipt)
    return [r for i, r in enumerate(Batch.decode(store.get_batch(digest)).readings) if i not in skip]


def rejected_readings(receipt: Receipt) -> set[int]:
    """Indices of the batch's readings the receipt rejects (duplicates are not rejections)."""
    return {r.index for r in receipt.rejected if r.kind == READING}


def batch_refused(receipt: Receipt) -> bool:
    """The whole batch was refused (a batch the validator already has counts as delivered)."""
    return receipt.batch_reason not in (0, Reason.DUPLICATE)


@dataclass
class Delivery:
    digest: bytes
    batch: Batch
    validator: bytes
    receipt: Receipt
    at: float


class Outbox:
    """Batches waiting for a receipt, in the store (`put_outbox`) so that a restart loses none. Each batch is
    also kept in the store's batches table (the record of what was sent, read back for verification)."""

    def __init__(self, store, net: Network, validators: Sequence[bytes], chain_id: str, log: logging.Logger, *,
                 period_seconds: int, clock: Callable[[], float] = time.time, timeout: float = REQUEST_TIMEOUT,
                 correction_window: Optional[int] = None, name: Callable[[bytes], str] = short_key,
                 in_time_seconds: Optional[float] = None):
        self.store = store
        self.correction_window = correction_window  # periods; None: a future batch is retried forever
        self.name = name
        self.period_seconds = period_seconds
        self.net = net
        self.validators = list(validators)
        self.chain_id = chain_id
        self.log = log
        self.clock = clock
        self.timeout = timeout
        self.backoff = 0.0
        self.next_try = 0.0
        self.last_error = ""
        self._retry: dict[bytes, tuple[float, float]] = {}  # batch refused as future -> (next try, backoff)
        self._keys = {bytes(k) for k, _ in store.outbox()}  # what waits, without reading the batches again
        # After a period's end, how long a batch of it is still in time (gate closure grace minus the margin);
        # None: no deadline known, a slow validator is followed by the next after HEDGE_MAX.
        self.in_time_seconds = in_time_seconds
        self.demoted: dict[bytes, float] = {}  # validator -> until when it is asked last (it was slow)
        self.acked: dict[bytes, float] = {}  # batch digest -> when its receipt came (this run)

    def _can_still_settle(self, data: bytes) -> bool:
        """Whether some item of the batch is for a period a seal may still settle by our clock: a refusal as
        `period_in_future` (the validator's clock lags, or a schedule beyond the horizon) is then retried."""
        if self.correction_window is None:
            return True
        batch = Batch.decode(data)
        periods = [r.period for r in batch.readings] + [s.period for s in batch.schedules]
        oldest_settleable = int(self.clock()) // self.period_seconds - 1 - self.correction_window
        return bool(periods) and max(periods) >= oldest_settleable

    def add(self, batch: Batch) -> bytes:
        data = batch.encode()
        digest = sha256(data)
        periods = sorted({r.period for r in batch.readings} | {s.period for s in batch.schedules})
        with self.store.transaction():
            self.store.put_batch(digest, data, int(self.clock()), periods)
            self.store.put_outbox(digest, data)
        self._keys.add(digest)
        return digest

    def keys(self) -> set[bytes]:
        return set(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def _drop(self, key: bytes) -> None:
        self.store.drop_outbox(key)
        self._keys.discard(bytes(key))
        self._retry.pop(bytes(key), None)

    def order(self) -> list[bytes]:
        """The validators to ask, in the configured order except that those slow of late come last."""
        now = self.clock()
        for peer, until in list(self.demoted.items()):
            if not until > now:
                del self.demoted[peer]
        return sorted(self.validators, key=lambda v: v in self.demoted)  # stable: configured order otherwise

    def _hedge_after(self, data: bytes) -> float:
        """How long the first validator asked may take before the next is asked as well (`hedge_delay`)."""
        if self.in_time_seconds is None:
            return HEDGE_MAX
        try:
            batch = Batch.decode(data)
        except CodecError:
            return HEDGE_MAX
        periods = [r.period for r in batch.readings] + [s.period for s in batch.schedules]
        if not periods:
            return HEDGE_MAX
        deadline = (min(periods) + 1) * self.period_seconds + self.in_time_seconds
        return hedge_delay(deadline - self.clock())

    def _demote(self, slow: Sequence[bytes], key: bytes) -> None:
        until = self.clock() + DEMOTE_SECONDS
        for peer in dict.fromkeys(slow):
            if peer not in self.demoted:
                self.log.warning("validator %s did not answer batch %s in time: asking the others first for "
                                 "%.0f s", self.name(peer), key.hex()[:12], DEMOTE_SECONDS)
            self.demoted[peer] = until

    def retrying(self) -> int:
        """Batches a validator refused as `period_in_future` that wait for their next try."""
        return len(self._retry)

    async def flush(self, force: bool = False) -> list[Delivery]:
        """Send what waits, oldest first, unless backing off; stops at the first batch no validator takes.
        A batch refused as `period_in_future` stays, retried with its own back-off, while it can still settle;
        every other answer is final: the receipt is kept and the batch leaves the outbox."""
        if not force and self.clock() < self.next_try:
            return []
        done = []
        for key, data in self.store.outbox():
            key = bytes(key)
            if not force and self.clock() < self._retry.get(key, (0.0, 0.0))[0]:
                continue
            slow: list[bytes] = []
            received: list[float] = []
            try:
                validator, receipt = await submit_batch(
                    self.net, self.order(), data, self.chain_id, timeout=self.timeout,
                    hedge_after=self._hedge_after(data), name=self.name, slow=slow,
                    on_receipt=lambda: received.append(self.clock()))
            except BatchTooLarge as e:
                self.log.error("dropping batch %s from the outbox: %s", key.hex()[:12], e)
                self._drop(key)
                continue
            except SubmitFailed as e:
                self._demote(slow, key)
                self.backoff = min(MAX_BACKOFF, max(0.5, self.backoff * 2))
                self.next_try = self.clock() + self.backoff
                self.last_error = str(e)
                self.log.warning("no validator took batch %s (%d waiting), retrying in %.1f s: %s",
                                 key.hex()[:12], len(self), self.backoff, e)
                break
            self._demote(slow, key)
            self.backoff = 0.0
            self.last_error = ""
            at = received[0] if received else self.clock()
            if receipt.batch_reason == Reason.PERIOD_IN_FUTURE and self._can_still_settle(data):
                backoff = min(MAX_BACKOFF, max(0.5, self._retry.get(key, (0.0, 0.0))[1] * 2))
                self._retry[key] = (self.clock() + backoff, backoff)
                self.log.warning("validator %s says batch %s is for a future period (is its clock behind?): "
                                 "retrying in %.1f s", self.name(validator), key.hex()[:12], backoff)
                continue
            with self.store.transaction():
                self.store.put_receipt(sha256(data), receipt.encode())
                self.store.drop_outbox(key)
            self.acked[sha256(data)] = at  # with the drop: verifying (beside this) never sees one without the other
            self._keys.discard(key)
            self._retry.pop(key, None)
            done.append(Delivery(sha256(data), Batch.decode(data), validator, receipt, at))
        return done


def log_receipt(log: logging.Logger, d: Delivery, what: str = "reading",
                name: Callable[[bytes], str] = short_key) -> None:
    r = d.receipt
    who = name(d.validator)
    if r.batch_reason == Reason.DUPLICATE:
        log.info("batch %s: validator %s had it already", d.digest.hex()[:12], who)
        return
    if batch_refused(r):
        log.error("validator %s refused batch %s as a whole: %s", who, d.digest.hex()[:12], reason_label(r.batch_reason))
        return
    log.info("batch %s: validator %s accepted %d, %d duplicates, %d rejected", d.digest.hex()[:12], who,
             r.accepted, r.duplicates, len(r.rejected))
    for item in r.rejected:
        items = d.batch.readings if item.kind == READING else d.batch.schedules
        subject = items[item.index] if item.index < len(items) else None
        if item.kind == READING and subject is not None:
            where = f"reading of MaLo {subject.malo_id} for period {subject.period}"
        elif subject is not None:
            where = f"schedule {subject.from_group} -> {subject.to_group} for period {subject.period}"
        else:
            where = f"{what} #{item.index}"
        log.warning("rejected %s: %s: %s", where, reason_label(item.reason), item.message)


# -- asking for proofs -------------------------------------------------------------------------------------


class NotCommitted(Exception):
    pass


async def light_request(net: Network, validators: Sequence[bytes], period: int, malo_ids: Sequence[str], *,
                        timeout: float = REQUEST_TIMEOUT, name: Callable[[bytes], str] = short_key,
                        behind: Optional[list[str]] = None) -> LightReply:
    """A LightReply for (period, malo_ids) from the first validator that gives one. NotCommitted if the
    period is not settled yet; SubmitFailed (with each validator's problem) if none answers. With a `behind`
    list, a validator's not_committed is not the last word: the next ones are asked, and the names of those
    that said not_committed are appended to it."""
    payload = LightRequest(period, tuple(malo_ids)).encode()
    problems = []
    for peer in validators:
        try:
            reply = decode(await net.request(peer, LIGHT, payload, timeout=timeout))
        except (NetError, CodecError) as e:
            problems.append(f"{name(peer)}: {e}")
            continue
        if isinstance(reply, LightReply):
            return reply
        if isinstance(reply, ErrorReply) and reply.reason == "not_committed":
            if behind is None:
                raise NotCommitted(reply.message)
            behind.append(name(peer))
            continue
        problems.append(f"{name(peer)}: {getattr(reply, 'reason', type(reply).__name__)}: "
                        f"{getattr(reply, 'message', '')}")
    if behind:
        raise NotCommitted(f"period {period} is not committed at {', '.join(behind)}")
    raise SubmitFailed("; ".join(problems) or "no validator to ask")


def own_meters(registry: Registry, key: bytes) -> list[str]:
    """The meter points read by the meter operator(s) whose key this is, in MaLo-ID order."""
    names = {o.name for o in registry.meter_operators.values() if o.public_key == key}
    return [m for m in registry.malo_order if registry.meter_points[m].meter_operator in names]


# -- the node ----------------------------------------------------------------------------------------------


class MeterPointNode(RoleNode):
    """The light node's logic, clock injected: `step()` does everything due at `clock()`; the parts
    (`produce_due`, `take_inbox`, `flush`, `verify_due`) can be called one by one (tests)."""

    def __init__(self, ctx: NodeContext, store, net: Network, *, clock: Callable[[], float] = time.time,
                 feed: Any = None):
        super().__init__(ctx, store, net, clock)
        cfg = ctx.config.meter_point
        self.batch_size = max(1, min(int(cfg.get("batch_size", 5000)), MAX_BATCH))
        grace = self.reg.params.grace_seconds
        self.submit_delay = float(cfg.get("submit_delay_ms", min(1000, grace * 100))) / 1000
        self.timeout = float(cfg.get("timeout_ms", REQUEST_TIMEOUT * 1000)) / 1000
        self.poll = max(0.2, min(5.0, self.reg.period_seconds / 20))
        self.meters = own_meters(self.reg, ctx.key.public)
        self.validators = [p.key for p in ctx.config.peers if p.key != ctx.key.public] or \
            list(self.reg.validator_keys())
        self.outbox = Outbox(store, net, self.validators, self.reg.chain_id, self.log,
                             period_seconds=self.reg.period_seconds, clock=clock, timeout=self.timeout,
                             correction_window=self.reg.correction_window, name=ctx.peer_name,
                             in_time_seconds=grace - gate_margin_ms(grace) / 1000)
        kind = str(cfg.get("feed", "simulated"))
        if feed is None:
            if kind == "simulated":
                feed = SimulatedFeed.from_config(self.reg, cfg)
            elif kind == "inbox":
                feed = InboxFeed(ctx.config.data_dir / "inbox")
            else:
                raise ValueError(f"[meter_point] feed must be \"simulated\" or \"inbox\", not {kind!r}")
        self.feed = feed
        self.started = clock()
        self.next_period = self._meta_int("meter.next_period", self.reg.genesis_period)
        self.verify_from = self._meta_int("meter.verify_from", self.reg.genesis_period)
        self.sent_through = self._meta_int("meter.sent_through", self.next_period - 1)
        self.acked = self.outbox.acked  # batch digest -> when its receipt came (this run)
        self.inbox_files: dict[bytes, Path] = {}  # batch digest -> its inbox file, while it waits for an answer
        self._inbox_held: dict[str, tuple] = {}  # inbox file name -> ((mtime, size), newest reading, schedule)
        self.next_poll = 0.0
        saved = store.get_meta("meter.counters")
        c = json.loads(saved) if saved else {}
        self.submitted = {"periods": 0, "readings": 0, "batches": 0, **c.get("submitted", {})}
        self.receipts = {"accepted": 0, "duplicates": 0, "rejected": {}, **c.get("receipts", {})}
        self.verified = {"periods": 0, "readings": 0, "failures": 0, "late": 0, "last_period": None,
                         **c.get("verified", {})}
        # Readings a period's latest version did not settle yet (substituted): re-checked in later versions
        # until settled as sent ("settled late", a delay) or the correction window ends (a failure).
        self.late: dict[int, dict[str, Any]] = {int(p): v for p, v in json.loads(
            store.get_meta("meter.late") or b"{}").items()}
        self.next_recheck = 0.0
        self.validators_behind = 0  # times a validator said not_committed while another had the period

    # -- persistence -------------------------------------------------------------------------------------

    def _meta_int(self, key: str, default: int) -> int:
        v = self.store.get_meta(key)
        return int(v.decode()) if v else default

    def _save(self) -> None:
        counters = {"submitted": self.submitted, "receipts": self.receipts, "verified": self.verified}
        with self.store.transaction():
            self.store.set_meta("meter.next_period", str(self.next_period).encode())
            self.store.set_meta("meter.verify_from", str(self.verify_from).encode())
            self.store.set_meta("meter.sent_through", str(self.sent_through).encode())
            self.store.set_meta("meter.counters", json.dumps(counters, sort_keys=True).encode())
            self.store.set_meta("meter.late", json.dumps(self.late, sort_keys=True).encode())

    # -- producing readings --------------------------------------------------------------------------------

    def due_period(self, now: float) -> int:
        """The last period whose readings are due at `now` (it ended at least submit_delay ago)."""
        return int((now - self.submit_delay) // self.reg.period_seconds) - 1

    def produce_due(self) -> list[int]:
        """Queue the readings of every period that has ended since the last call (simulated feed)."""
        if not isinstance(self.feed, SimulatedFeed):
            return []
        now = self.clock()
        last = self.due_period(now)
        first = max(self.next_period, correctable_from(self.reg, int(now // self.reg.period_seconds) - 1))
        if first > self.next_period and last >= self.next_period:
            self.log.warning("skipping periods %d..%d: their correction window has passed", self.next_period,
                             first - 1)
        done = []
        for p in range(first, last + 1):
            self.produce(p)
            done.append(p)
        if last + 1 > self.next_period:
            self.next_period = last + 1
            self._save()
        return done

    def produce(self, period: int) -> list[bytes]:
        """Sign the period's readings (simulated feed), batch them, put the batches in the outbox."""
        readings = self.feed.readings(period, self.meters)
        digests = self.enqueue(readings)
        self.submitted["periods"] += 1
        self.next_period = max(self.next_period, period + 1)
        self._save()
        self.log.info("period %s: %d readings of %d meters queued in %d batches", self.reg.period(period).iso(),
                      len(readings), len(self.meters), len(digests))
        return digests

    def enqueue(self, readings: Sequence[Reading]) -> list[bytes]:
        digests = []
        for i in range(0, len(readings), self.batch_size):
            chunk = readings[i:i + self.batch_size]
            digests.append(self.outbox.add(make_batch(self.ctx.key, self.reg.chain_id, chunk)))
        if readings:
            self.sent_through = max(self.sent_through, max(r.period for r in readings))
        return digests

    def take_inbox(self) -> int:
        """Queue the operator's dropped Batch files (inbox feed) whose periods are due: readings once their
        period has ended (a validator refuses earlier ones), schedules within the schedule horizon. A file
        stays in the inbox until its batch has a final answer (`_inbox_answered`). Returns how many were
        queued."""
        if not isinstance(self.feed, InboxFeed):
            return 0
        now = self.clock()
        due, horizon = self.due_period(now), int(now) // self.reg.period_seconds + self.reg.params.schedule_horizon
        queued = set(self.inbox_files.values())
        n = 0
        for path in self.feed.pending():
            if path in queued:
                continue
            try:
                stamp = path.stat().st_mtime_ns, path.stat().st_size
                held = self._inbox_held.get(path.name)
                if held and held[0] == stamp and not self._inbox_ready(held[1], held[2], due, horizon):
                    continue  # unchanged and still not due: not read again
                batch = self.feed.load(path, self.ctx.key, self.reg.chain_id)
                data = batch.encode()
                if len(data) > MAX_FRAME - 1024:
                    raise InboxError(f"{path.name} is too large for one network frame ({MAX_FRAME} bytes): "
                                     f"split it into smaller batches")
            except (InboxError, OSError) as e:
                self.log.error("inbox: %s: moved to %s", e, self.feed.refused_dir)
                self.ctx.reject("inbox_file", str(e))
                self._inbox_held.pop(path.name, None)
                self.feed.mark_refused(path, str(e))
                continue
            newest_reading = max((r.period for r in batch.readings), default=None)
            newest_schedule = max((s.period for s in batch.schedules), default=None)
            if not self._inbox_ready(newest_reading, newest_schedule, due, horizon):
                if path.name not in self._inbox_held:
                    self.log.info("inbox: %s held until its periods are due (readings up to %s, schedules up "
                                  "to %s)", path.name, _iso(self.reg, newest_reading), _iso(self.reg, newest_schedule))
                self._inbox_held[path.name] = (stamp, newest_reading, newest_schedule)
                continue
            self._inbox_held.pop(path.name, None)
            digest = sha256(data)
            answered = self.store.get_receipt(digest)
            if answered is not None:  # answered before a restart, but the file was not moved yet
                self._inbox_answered(path, Receipt.decode(answered))
                continue
            if digest not in self.outbox.keys():
                self.outbox.add(batch)
                if batch.readings:
                    periods = {r.period for r in batch.readings}
                    self.sent_through = max(self.sent_through, max(periods))
                    self.verify_from = min(self.verify_from, min(periods))
                self._save()
            self.inbox_files[digest] = path
            self.log.info("inbox: %s queued (%d readings, %d schedules)", path.name, len(batch.readings),
                          len(batch.schedules))
            n += 1
        return n

    @staticmethod
    def _inbox_ready(newest_reading: Optional[int], newest_schedule: Optional[int], due: int, horizon: int) -> bool:
        return (newest_reading is None or newest_reading <= due) and \
            (newest_schedule is None or newest_schedule <= horizon)

    def _inbox_answered(self, path: Path, receipt: Receipt) -> None:
        """A queued inbox file's batch has its final answer: to sent/ if taken, to refused/ with the reason."""
        if batch_refused(receipt):
            reason = (f"validator {self.ctx.peer_name(receipt.validator)} refused batch "
                      f"{receipt.batch.hex()[:12]} as a whole: {reason_label(receipt.batch_reason)}")
            dest = self.feed.mark_refused(path, reason)
            self.log.error("inbox: %s: %s; moved to %s", path.name, reason, dest)
        else:
            self.feed.mark_sent(path)

    # -- sending -----------------------------------------------------------------------------------------

    async def flush(self, force: bool = False) -> list[Delivery]:
        deliveries = await self.outbox.flush(force)
        for d in deliveries:
            self.acked[d.digest] = d.at
            path = self.inbox_files.pop(d.digest, None)
            if path is not None:
                self._inbox_answered(path, d.receipt)
            r = d.receipt
            log_receipt(self.log, d, name=self.ctx.peer_name)
            if batch_refused(r):
                key = f"batch_{reason_label(r.batch_reason)}"
                self.receipts["rejected"][key] = self.receipts["rejected"].get(key, 0) + 1
                continue
            self.submitted["batches"] += 1
            self.submitted["readings"] += len(d.batch.readings)
            self.receipts["accepted"] += r.accepted
            self.receipts["duplicates"] += r.duplicates
            for item in r.rejected:
                key = reason_label(item.reason)
                self.receipts["rejected"][key] = self.receipts["rejected"].get(key, 0) + 1
        if deliveries:
            self._save()
        return deliveries

    # -- verifying -----------------------------------------------------------------------------------------

    def settle_height(self, period: int, acked_at: float) -> int:
        """The height by which a batch acknowledged at `acked_at` is surely settled: the period's own if it was
        in well before gate closure, else (a correction) the next seal whose proposal is built after it."""
        p = self.reg.params
        gate = self.reg.period(period).gate_closure(p.grace_seconds)
        margin = gate_margin_ms(p.grace_seconds) / 1000
        if acked_at < gate - margin:
            return period
        return max(period, int((acked_at - p.grace_seconds) // p.period_seconds) + 1)

    def expected(self, period: int) -> Optional[tuple[dict[str, Reading], int]]:
        """The readings of `period` that validators accepted, and the height that must be committed before
        they are all settled; None while some batch of the period still waits for a receipt."""
        waiting = self.outbox.keys()
        readings: list[Reading] = []
        need = period
        for digest in self.store.batches_for_periods([period]):
            if digest in waiting:
                return None
            accepted = receipted_readings(self.store, digest)
            if accepted is None:
                continue  # never acknowledged (should not happen), or refused: nothing to expect
            readings.extend(r for r in accepted if r.period == period)
            need = max(need, self.settle_height(period, self.acked.setdefault(digest, self.started)))
        return latest_readings(readings, period), need

    async def verify_due(self) -> list[LightCheck]:
        """Verify every period in order whose readings are all acknowledged and whose seal is committed."""
        now = self.clock()
        if now < self.next_poll:
            return []
        checks = []
        while self.verify_from <= self.sent_through:
            p = self.verify_from
            if now < self.reg.period(p).gate_closure(self.reg.params.grace_seconds):
                break
            exp = self.expected(p)
            if exp is None:
                break
            sent, need = exp
            if sent:
                try:
                    check = await self.verify_period(p, sent, need)
                except NotCommitted:
                    self.next_poll = now + self.poll
                    break
                except SubmitFailed as e:
                    self.log.warning("cannot ask for proofs of period %d: %s", p, e)
                    self.next_poll = now + max(self.poll, self.outbox.backoff)
                    break
                checks.append(check)
            self.verify_from = p + 1
            self._save()
        return checks + await self.recheck_late()

    async def verify_period(self, period: int, sent: dict[str, Reading], need: int) -> LightCheck:
        """Ask for proofs of `sent` in `period` and check them; raises NotCommitted while `need` (the height
        that settles the last of them) is not committed."""
        ids = sorted(sent)
        if need > period:
            await self._ask(need, ids[:1])
        total = await self._prove(period, sent)
        self._record(total)
        if total.waiting:
            self.late[period] = {"version": total.version, "malos": sorted(f.malo_id for f in total.waiting)}
            self.next_recheck = max(self.next_recheck, self.clock() + self._recheck_every())
            self._save()
        return total

    def _overdue(self, period: int) -> bool:
        """Past gate closure plus the grace: the period should be committed by now."""
        p = self.reg.params
        return self.clock() >= self.reg.period(period).gate_closure(p.grace_seconds) + p.grace_seconds

    async def _ask(self, period: int, ids: Sequence[str]) -> LightReply:
        """A light reply for (period, ids). Once the period is overdue, a validator that says not_committed
        is not the last word: the others are asked (it may be behind, or unable to apply that height)."""
        behind: Optional[list[str]] = [] if self._overdue(period) else None
        reply = await light_request(self.net, self.outbox.order(), period, ids, timeout=self.timeout,
                                    name=self.ctx.peer_name, behind=behind)
        if behind:
            self.validators_behind += 1
            self.log.warning("period %s: %s said it is not committed, another validator has it (behind?)",
                             self.reg.period(period).iso(), ", ".join(behind))
        return reply

    async def _prove(self, period: int, sent: dict[str, Reading]) -> LightCheck:
        """Proofs of `sent` in the latest version of `period`, asked of its area chains and checked."""
        ids = sorted(sent)
        total = LightCheck(period, 0, 0)
        mps = self.reg.meter_points
        chunks = []  # each request asks one area chain (its meter points' area): sorted by area, then MaLo-ID
        for _, group in itertools.groupby(sorted(ids, key=lambda m: (mps[m].grid_area, m)),
                                          key=lambda m: mps[m].grid_area):
            group = list(group)
            chunks += [group[i:i + MAX_LIGHT_IDS] for i in range(0, len(group), MAX_LIGHT_IDS)]
        for chunk in chunks:
            reply = await self._ask(period, chunk)
            part = {m: sent[m] for m in chunk}
            try:
                check = verify_light_reply(self.reg, reply, period, part)
            except LightError as e:
                self.log.error("VERIFICATION FAILED for period %s: the validator's proof is invalid: %s; "
                               "%d readings (MaLo %s...) unproven", self.reg.period(period).iso(), e, len(chunk),
                               chunk[0])
                check = LightCheck(period, reply.height, reply.version,
                                   failures=[Failure(m, f"invalid proof: {e}") for m in chunk])
            total.height, total.version = check.height, check.version
            total.verified += check.verified
            total.failures += check.failures
            total.waiting += check.waiting
        return total

    async def recheck_late(self) -> list[LightCheck]:
        """Check again the readings a period's earlier version did not settle: settled as sent in a later
        version is a delay ("settled late in version N", counted in `late`); a real difference, or nothing
        settled by the end of the correction window, is a failure."""
        now = self.clock()
        if not self.late or now < self.next_recheck:
            return []
        self.next_recheck = now + self._recheck_every()
        checks = []
        for period in sorted(self.late):
            seen = self.late[period]
            exp = self.expected(period)
            sent = {m: r for m, r in (exp[0] if exp else {}).items() if m in set(seen["malos"])}
            try:
                check = await self._prove(period, sent) if sent else LightCheck(period, 0, seen["version"])
                closed = bool(check.waiting) and check.version <= seen["version"] and \
                    await self._window_closed(period, sorted(sent)[:1])
            except (NotCommitted, SubmitFailed) as e:
                self.log.info("re-checking period %d later: %s", period, e)
                break
            self._record_late(check, seen["version"], closed)
            if check.waiting and not closed:
                self.late[period] = {"version": check.version, "malos": sorted(f.malo_id for f in check.waiting)}
            else:
                del self.late[period]
            checks.append(check)
        self._save()
        return checks

    def _recheck_every(self) -> float:
        return max(self.poll, self.reg.period_seconds / 2)

    async def _window_closed(self, period: int, ids: list[str]) -> bool:
        """Is the last height that may still correct `period` committed?"""
        try:
            await self._ask(period + self.reg.correction_window, ids)
            return True
        except NotCommitted:
            return False

    def _record_late(self, check: LightCheck, earlier: int, closed: bool) -> None:
        iso = self.reg.period(check.period).iso()
        for m in check.verified:
            self.log.warning("MaLo %s, period %s: settled late in version %d (version %d did not hold the reading)",
                             m, iso, check.version, earlier)
        if closed:  # no version can settle them any more
            check.failures += [Failure(f.malo_id, f"not settled by the end of the correction window: {f.what}")
                               for f in check.waiting]
            check.waiting = []
        for f in check.failures:
            self.log.error("VERIFICATION FAILED: MaLo %s, period %s: %s", f.malo_id, iso, f.what)
        self.verified["late"] += len(check.verified)
        self.verified["readings"] += len(check.verified)
        self.verified["failures"] += len(check.failures)

    def _record(self, check: LightCheck) -> None:
        iso = self.reg.period(check.period).iso()
        for f in check.failures:
            self.log.error("VERIFICATION FAILED: MaLo %s, period %s: %s", f.malo_id, iso, f.what)
        self.verified["periods"] += 1
        self.verified["readings"] += len(check.verified)
        self.verified["failures"] += len(check.failures)
        self.verified["last_period"] = iso
        if check.waiting:
            self.log.warning("period %s: %d readings not settled in version %d yet (e.g. MaLo %s: %s); checking "
                             "later versions", iso, len(check.waiting), check.version, check.waiting[0].malo_id,
                             check.waiting[0].what)
        if check.failures:
            self.log.error("period %s: %d of %d readings NOT settled as sent (seal height %d, version %d)", iso,
                           len(check.failures), len(check.failures) + len(check.verified), check.height,
                           check.version)
        else:
            self.log.info("period %s verified: %d readings settled as sent (seal height %d, version %d)", iso,
                          len(check.verified), check.height, check.version)

    # -- running -------------------------------------------------------------------------------------------

    async def step(self) -> None:
        self.produce_due()
        self.take_inbox()
        await self.flush()
        await self.verify_due()

    def status(self) -> dict[str, Any]:
        return {
            "listen": getattr(self.net, "listen_addr", None),
            "meters": len(self.meters),
            "feed": type(self.feed).__name__,
            "next_period": self.reg.period(self.next_period).iso(),
            "submitted": dict(self.submitted),
            "receipts": {**self.receipts, "rejected": dict(sorted(self.receipts["rejected"].items()))},
            "verified": {**self.verified, "waiting": sum(len(v["malos"]) for v in self.late.values())},
            "validators_behind": self.validators_behind,
            "pending": len(self.outbox),
            "retrying": self.outbox.retrying(),
            "inbox_held": len(self._inbox_held),
            "last_submit_error": self.outbox.last_error or None,
            **health_fields(self.net.connected_peers(), self.reg, self.ctx.key.public,
                            behind_periods=min(self.sent_through, gate_closed_period(self.reg, self.clock()))
                            - self.verify_from + 1, halted=False),
        }

    async def run(self) -> None:
        if not self.meters:
            self.log.warning("no meter point in the genesis is read by the meter operator with key %s",
                             self.ctx.key.public.hex()[:16])
        if isinstance(self.feed, SimulatedFeed):
            self.log.warning("simulated feed: the %d meters sign with DEVNET keys (devnet_key(meter_label(malo))); "
                             "never use this feed outside a devnet", len(self.meters))
        self.log.info("meter-point node up: %d meters, validators %s, next period %s", len(self.meters),
                      ", ".join(self.ctx.peer_name(v) for v in self.validators), self.reg.period(self.next_period).iso())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._verify_loop)
            await self._submit_loop()

    async def _submit_loop(self) -> None:
        """Produce, take the inbox and send: never waits for verification (a validator slow to give proofs
        must not hold a period's readings past gate closure)."""
        tick = max(0.05, min(1.0, self.reg.period_seconds / 20))
        while True:
            self.produce_due()
            self.take_inbox()
            await self.flush()
            self.ctx.write_status(self.status())
            now = self.clock()
            next_due = (self.due_period(now) + 2) * self.reg.period_seconds + self.submit_delay
            await trio.sleep(max(0.01, min(tick, next_due - now)))

    async def _verify_loop(self) -> None:
        tick = max(0.05, min(1.0, self.reg.period_seconds / 20))
        while True:
            await self.verify_due()
            await trio.sleep(tick)


def _iso(registry: Registry, period: Optional[int]) -> str:
    return "none" if period is None else registry.period(period).iso()


async def run(ctx: NodeContext) -> int:
    return await run_role(ctx, MeterPointNode)


__all__ = ["BatchTooLarge", "Delivery", "MeterPointNode", "NotCommitted", "Outbox", "SubmitFailed", "batch_refused", "light_request",
           "log_receipt", "own_meters", "reason_label", "receipt_problem", "rejected_readings", "run", "submit_batch"]
