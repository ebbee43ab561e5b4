"""Pure checks of readings, schedules and batches against the registry: no state, no clock, no I/O.

Safe to call from worker threads (the registry is only read; PyNaCl releases the GIL while verifying), so a
node can spread signature checks over threads with `check_batch(..., map=executor.map)`.

Order inside each check: cheap structural checks first, the signature last.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterable, Iterator, Union

import msgpack

from stromledger.codec import CodecError
from stromledger.crypto import SigningKey, sha256, signing_input, verify, verify_raw
from stromledger.ids import is_valid_eic, is_valid_malo_id
from stromledger.registry import Registry, RegistryChange, decode_change, registry_at

from .changes import approved_shape, change_shape, change_signature, opened_group_keys
from .messages import BATCH_DOMAIN, READING_DOMAIN, SCHEDULE_DOMAIN, Batch, Reading, Schedule
from .rejections import Reason, Rejection
from .wire import build_readings, fast_decode_rows, fast_signer, reading_body

NO_SIG = bytes(64)
MAX_BATCH_BYTES = 24 * 1024 * 1024
# 10 TWh in one period between two groups: with at most 100,000 groups (a seal's bound) the schedule sums of
# a group stay below 2**60, and with the genesis bound on meter energy (registry.genesis.MAX_TOTAL_WH) no
# total of a seal can overflow its I64/U64 field.
MAX_SCHEDULE_WH = 10**13
_CHUNK = 2048


# -- making signed messages (meters, group operators, submitters, tests) ------------------------------------


def sign_reading(key: SigningKey, chain_id: str, malo_id: str, period: int, import_wh: int, export_wh: int, *,
                 version: int = 1, register: bool = False) -> Reading:
    r = Reading(malo_id, period, version, register, import_wh, export_wh, key.public, NO_SIG)
    return dataclasses.replace(r, sig=key.sign(READING_DOMAIN, chain_id, r.body()))


def sign_schedule(key: SigningKey, chain_id: str, from_group: str, to_group: str, period: int, wh: int) -> Schedule:
    s = Schedule(from_group, to_group, period, wh, key.public, NO_SIG)
    return dataclasses.replace(s, sig=key.sign(SCHEDULE_DOMAIN, chain_id, s.body()))


def make_batch(key: SigningKey, chain_id: str, readings: Iterable[Reading] = (),
               schedules: Iterable[Schedule] = (), changes: Iterable[RegistryChange] = (),
               approved: Iterable = ()) -> Batch:
    """A signed batch; `approved`: approved changes (messages, or their canonical bytes)."""
    return signed_batch(key, chain_id, readings, schedules, changes, approved)[0]


def signed_batch(key: SigningKey, chain_id: str, readings: Iterable[Reading] = (),
                 schedules: Iterable[Schedule] = (), changes: Iterable[RegistryChange] = (),
                 approved: Iterable = ()) -> tuple[Batch, bytes]:
    """`make_batch` and its canonical bytes, encoded once: a batch's encoding is its signed body with the
    signature appended (the inverse of `_batch_body`), so a node that re-batches (nodes/chains.py) does not
    encode every reading twice."""
    blobs = tuple(a if isinstance(a, bytes) else a.encode() for a in approved)
    b = Batch(chain_id, key.public, tuple(readings), tuple(schedules), tuple(changes), blobs, NO_SIG)
    body = b.body()
    sig = key.sign(BATCH_DOMAIN, chain_id, body)
    return dataclasses.replace(b, sig=sig), bytes([0x98]) + body[1:] + b"\xc4\x40" + sig


# -- readings ----------------------------------------------------------------------------------------------


def reading_precheck(registry: Registry, r: Reading) -> Rejection | None:
    """Everything about a reading that needs neither the clock nor its signature."""
    mp = registry.meter_points.get(r.malo_id)
    if mp is None:
        if r.malo_id in registry.retired:
            return Rejection(Reason.RETIRED_METER_POINT,
                             f"{r.malo_id} is retired from period {registry.retired[r.malo_id]} on")
        if not is_valid_malo_id(r.malo_id):
            return Rejection(Reason.MALFORMED, f"{r.malo_id!r} is not a valid MaLo-ID")
        return Rejection(Reason.UNKNOWN_METER_POINT, f"{r.malo_id} is not in the registry")
    if r.version < 1:
        return Rejection(Reason.MALFORMED, "reading versions start at 1")
    if r.meter_key != mp.meter_key:
        if r.meter_key in registry.old_keys.get(r.malo_id, ()):
            return Rejection(Reason.ROTATED_KEY, f"{r.malo_id}: meter key {r.meter_key.hex()[:16]}... was rotated "
                                                 f"out before period {r.period}")
        return Rejection(Reason.WRONG_SIGNER, f"{r.malo_id} is read by meter key {mp.meter_key.hex()[:16]}...")
    if not r.register:
        limit = registry.max_wh(r.malo_id)
        if r.import_wh > limit or r.export_wh > limit:
            return Rejection(Reason.ABOVE_MAX_POWER,
                             f"{r.malo_id}: {max(r.import_wh, r.export_wh)} Wh in one period, at most {limit} Wh "
                             f"({mp.max_power_w} W)")
    return None


@functools.lru_cache(maxsize=16)
def _reading_prefix(chain_id: str) -> bytes:
    return signing_input(READING_DOMAIN, chain_id, b"")


def reading_signature(registry: Registry, r: Reading, raw: bytes | None = None) -> Rejection | None:
    # The hot path of ingestion: the body sliced from the reading's canonical bytes `raw` when the batch was
    # decoded by the fast path (wire.py), else written out field by field (what `r.body()` gives, without
    # the generic per-field encoders), after the chain's cached signing prefix.
    if raw is not None:
        body = reading_body(raw)
    else:
        body = msgpack.packb([Reading.TAG, r.malo_id, r.period, r.version, r.register, r.import_wh,
                              r.export_wh, r.meter_key], use_bin_type=True)
    if verify_raw(r.meter_key, r.sig, _reading_prefix(registry.root_chain_id) + body):
        return None
    return _bad_reading_signature(r)


def _bad_reading_signature(r: Reading) -> Rejection:
    return Rejection(Reason.BAD_SIGNATURE, f"reading of {r.malo_id} for period {r.period}")


def correctable_from(registry: Registry, next_height: int) -> int:
    """The earliest period the seal at `next_height` may still settle."""
    return max(registry.genesis_period, next_height - registry.correction_window)


def reading_window(registry: Registry, period: int, now_period: int) -> Rejection | None:
    """`now_period` is the period the clock is in; the next seal to be built settles about now_period - 1."""
    if period < registry.genesis_period:
        return Rejection(Reason.PERIOD_TOO_OLD, f"period {period} is before genesis {registry.genesis_period}")
    lo = correctable_from(registry, now_period - 1)
    if period < lo:
        return Rejection(Reason.PERIOD_TOO_OLD, f"period {period} is before the correction window (from {lo})")
    if period > now_period:
        return Rejection(Reason.PERIOD_IN_FUTURE, f"period {period} has not begun (now {now_period})")
    return None


def check_reading(registry: Registry, reading: Reading, now_period: int) -> Rejection | None:
    """Is this reading acceptable now? Pure and thread-safe; the signature is checked last."""
    return (reading_precheck(registry, reading) or reading_window(registry, reading.period, now_period)
            or reading_signature(registry, reading))


def reading_verdict(registry: Registry, reading: Reading, raw: bytes | None = None) -> Rejection | None:
    """The clock-free part of `check_reading`: what a seal needs to know about a reading in a batch.
    `raw`: the reading's canonical bytes, if known (saves encoding its signed body)."""
    return reading_precheck(registry, reading) or reading_signature(registry, reading, raw)


# -- schedules ---------------------------------------------------------------------------------------------


def schedule_precheck(registry: Registry, s: Schedule) -> Rejection | None:
    if not registry.settles_schedules:
        return Rejection(Reason.WRONG_CHAIN, "schedules are settled by the network chain, not by an area's")
    if s.wh == 0:
        return Rejection(Reason.MALFORMED, "a schedule moves a positive number of Wh")
    if s.wh > MAX_SCHEDULE_WH:
        return Rejection(Reason.OVERSIZED, f"a schedule of {s.wh} Wh, at most {MAX_SCHEDULE_WH} Wh")
    if s.from_group == s.to_group:
        return Rejection(Reason.MALFORMED, "a schedule is between two different balancing groups")
    keys = registry.group_keys
    external = registry.external_parties
    for eic in (s.from_group, s.to_group):
        if eic not in keys and eic not in external:
            if not is_valid_eic(eic):
                return Rejection(Reason.MALFORMED, f"{eic!r} is not a valid EIC")
            return Rejection(Reason.UNKNOWN_BALANCING_GROUP, f"{eic} is not in the registry")
    if s.from_group in external and s.to_group in external:
        return Rejection(Reason.MALFORMED, "a schedule between two external parties does not touch the network")
    if s.signer != keys.get(s.from_group) and s.signer != keys.get(s.to_group):
        if s.from_group in external or s.to_group in external:
            return Rejection(Reason.WRONG_SIGNER, "a schedule with an external party is signed by the operator "
                                                  "of the network's group")
        return Rejection(Reason.WRONG_SIGNER, "a schedule is signed by the operator of its from or to group")
    return None


def schedule_signature(registry: Registry, s: Schedule) -> Rejection | None:
    if verify(s.signer, s.sig, SCHEDULE_DOMAIN, registry.root_chain_id, s.body()):
        return None
    return Rejection(Reason.BAD_SIGNATURE, f"schedule {s.from_group} -> {s.to_group} for period {s.period}")


def schedule_window(registry: Registry, period: int, now_period: int) -> Rejection | None:
    if period < registry.genesis_period:
        return Rejection(Reason.PERIOD_TOO_OLD, f"period {period} is before genesis {registry.genesis_period}")
    if period < now_period - 1:
        return Rejection(Reason.PERIOD_TOO_OLD, f"period {period} is past its gate closure (now {now_period})")
    horizon = now_period + registry.params.schedule_horizon
    if period > horizon:
        return Rejection(Reason.PERIOD_IN_FUTURE, f"period {period} is beyond the schedule horizon ({horizon})")
    return None


def check_schedule(registry: Registry, schedule: Schedule, now_period: int) -> Rejection | None:
    return (schedule_precheck(registry, schedule) or schedule_window(registry, schedule.period, now_period)
            or schedule_signature(registry, schedule))


def schedule_verdict(registry: Registry, schedule: Schedule) -> Rejection | None:
    return schedule_precheck(registry, schedule) or schedule_signature(registry, schedule)


# -- batches -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckedBatch:
    """A batch whose signature and every item's clock-free verdict are known. A pure function of
    (registry, committed registry changes, batch), so it can be cached by digest and shared by the acceptor
    and the seal builder. A change's verdict here covers its form and signature; whether it may take effect
    is decided by the seal (cascade/changes.py), against the history it is settled on."""

    digest: bytes
    batch: Batch
    reading_verdicts: tuple[Rejection | None, ...]
    schedule_verdicts: tuple[Rejection | None, ...]
    reading_periods: tuple[int, ...]  # distinct periods of its valid readings, ascending
    schedule_periods: tuple[int, ...]
    change_verdicts: tuple[Rejection | None, ...] = ()
    history: tuple = ()  # the committed changes the readings were judged under
    approved: tuple = ()  # the batch's approved changes decoded (None: did not decode)
    approved_verdicts: tuple[Rejection | None, ...] = ()

    @classmethod
    def of(cls, digest: bytes, batch: Batch, reading_verdicts: tuple, schedule_verdicts: tuple,
           change_verdicts: tuple | None = None, history: tuple = (),
           approved: tuple[tuple, tuple] | None = None) -> CheckedBatch:
        """`approved`: (decoded approved changes, their verdicts); decoded here, unjudged, when None."""
        rp = sorted({r.period for r, v in zip(batch.readings, reading_verdicts) if v is None})
        sp = sorted({s.period for s, v in zip(batch.schedules, schedule_verdicts) if v is None})
        cv = (None,) * len(batch.changes) if change_verdicts is None else tuple(change_verdicts)
        ac, av = decode_approved(batch.approved) if approved is None else approved
        return cls(digest, batch, tuple(reading_verdicts), tuple(schedule_verdicts), tuple(rp), tuple(sp), cv,
                   tuple(history), tuple(ac), tuple(av))

    def registry_changes(self) -> Iterator[tuple[int, int, Any, Rejection | None]]:
        """(item kind, index, change, verdict on its form) of every registry change the batch carries: its
        RegistryChanges (CHANGE_ITEM), then its approved changes (APPROVED_ITEM; change None: undecodable)."""
        for i, (c, v) in enumerate(zip(self.batch.changes, self.change_verdicts)):
            yield CHANGE_ITEM, i, c, v
        for i, (c, v) in enumerate(zip(self.approved, self.approved_verdicts)):
            yield APPROVED_ITEM, i, c, v

    @property
    def items_max_period(self) -> int:
        """The last period of its valid readings and schedules (-1: none)."""
        return max(self.reading_periods[-1:] + self.schedule_periods[-1:], default=-1)

    @property
    def max_period(self) -> int:
        """The last period it names: of its readings and schedules, and of its changes' effective periods (so a
        node remembers that a batch's changes were judged for as long as they could matter)."""
        effective = [c.effective_period for _, _, c, v in self.registry_changes() if v is None]
        return max([self.items_max_period, *effective])

    @property
    def carries_changes(self) -> bool:
        return any(v is None for v in self.change_verdicts) or any(v is None for v in self.approved_verdicts)


CHANGE_ITEM, APPROVED_ITEM = 3, 4  # ItemRejection kinds of a RegistryChange and of an approved change


def decode_approved(blobs: tuple[bytes, ...]) -> tuple[tuple, tuple]:
    """(changes, verdicts) of a batch's approved changes: each decoded strictly by the allow-list of approved
    kinds; one that does not decode is None with a MALFORMED verdict (the rest of the batch still counts)."""
    changes, verdicts = [], []
    for blob in blobs:
        try:
            changes.append(decode_change(blob, approved_only=True))
            verdicts.append(None)
        except CodecError as e:
            changes.append(None)
            verdicts.append(Rejection(Reason.MALFORMED, f"approved change: {e}"))
    return tuple(changes), tuple(verdicts)


def decode_batch(data: bytes) -> Batch | Rejection:
    if len(data) > MAX_BATCH_BYTES:
        return Rejection(Reason.OVERSIZED, f"batch of {len(data)} bytes, at most {MAX_BATCH_BYTES}")
    try:
        return Batch.decode(data, max_bytes=MAX_BATCH_BYTES)
    except CodecError as e:
        reason = Reason.OVERSIZED if e.reason == "oversized" else Reason.MALFORMED
        return Rejection(reason, str(e))


def _chunks(items: tuple, parts: int | None = None) -> list[tuple]:
    """`parts` equal chunks (one or two per worker keeps every worker busy to the end), else chunks of
    _CHUNK items."""
    size = -(-len(items) // parts) if parts else _CHUNK
    size = max(1, size)
    return [items[i:i + size] for i in range(0, len(items), size)]


def _batch_body(data: bytes) -> bytes:
    """The signed body of a canonical batch, sliced from its bytes instead of re-encoded: a Batch is an
    8-element array whose last element, the signature, is bin8 of 64 bytes (0xc4 0x40 + 64 bytes)."""
    assert data[0] == 0x98 and data[-66:-64] == b"\xc4\x40", "not a canonical batch"
    return bytes([0x97]) + data[1:-66]


def _schedule_verdicts(registry: Registry, history: tuple, schedules: tuple) -> list[Rejection | None]:
    """Each schedule against the registry version of its period: groups opened and closed (registry/market.py)
    decide which groups may trade then."""
    return [schedule_verdict(registry_at(registry, s.period, history), s) for s in schedules]


def _reading_verdicts(registry: Registry, history: tuple[RegistryChange, ...], readings: tuple,
                      raws: list[bytes] | None, span: range) -> list:
    """Each reading of `readings[span]` against the registry version of its own period (one lookup per
    distinct period). `raws`: the readings' canonical bytes (fast path), or None."""
    items = readings[span.start:span.stop]
    raw = raws[span.start:span.stop] if raws is not None else [None] * len(items)
    if not history:
        return [reading_verdict(registry, r, b) for r, b in zip(items, raw)]
    versions: dict[int, Registry] = {}
    out = []
    for r, b in zip(items, raw):
        reg = versions.get(r.period)
        if reg is None:
            reg = versions[r.period] = registry_at(registry, r.period, history)
        out.append(reading_verdict(reg, r, b))
    return out


def _built_reading_verdicts(registry: Registry, history: tuple[RegistryChange, ...], rows: list[list],
                            raws: list[bytes], span: range) -> tuple[list[Reading], list]:
    """The fast path's readings of `rows[span]` built here, on the worker thread, each next to its checks:
    building holds the GIL while the other workers verify without it. Returns (readings, verdicts).

    Lean, because this Python work holds the GIL on every worker: a reading that passes the registry checks
    as written inline here (known meter point, its meter key, version from 1, within the meter point's
    power) goes straight to its signature; any other gets `reading_verdict`, which finds the same outcome
    and the precise reason."""
    rows, raws = rows[span.start:span.stop], raws[span.start:span.stop]
    made = build_readings(rows)
    out: list = []
    add = out.append
    versions: dict[int, tuple] = {}  # period -> its registry version and what the checks read of it
    period = None
    for r, row, raw in zip(made, rows, raws):
        malo, p, version, register, imp, exp, meter_key, sig = row
        if p != period:  # a batch's readings mostly share one period
            period = p
            got = versions.get(p)
            if got is None:
                reg = registry_at(registry, p, history) if history else registry
                got = versions[p] = (reg, reg.meter_points, reg.params.period_seconds,
                                     _reading_prefix(reg.root_chain_id))
            reg, points, seconds, prefix = got
        mp = points.get(malo)
        if mp is None or meter_key != mp.meter_key or version < 1 or \
                (not register and max(imp, exp) > mp.max_power_w * seconds // 3600):
            add(reading_verdict(reg, r, raw))
        elif verify_raw(meter_key, sig, prefix + reading_body(raw)):
            add(None)
        else:
            add(_bad_reading_signature(r))
    return made, out


def _spans(n: int, parts: int | None = None) -> list[range]:
    """Index ranges of `_chunks`: `parts` equal ones, else of _CHUNK items."""
    size = max(1, -(-n // parts) if parts else _CHUNK)
    return [range(i, min(n, i + size)) for i in range(0, n, size)]


def _early_batch_signature(registry: Registry, data: bytes, map: Callable
                           ) -> tuple[tuple[bytes, bytes], Iterator[bool]] | None:
    """((submitter, signature), its verdict) of a batch whose outer shape is the fast decoder's and whose
    submitter is registered, the verify handed to `map` at once: with a thread pool's map it runs (without
    the GIL) while this thread decodes the readings, instead of after. The same verify, only earlier; the
    verdict counts only if the decoded batch names the same submitter and signature."""
    signer = fast_signer(data)
    if signer is None or signer[0] not in registry.submitter_keys:
        return None
    return signer, map(partial(verify, signer[0], signer[1], BATCH_DOMAIN, registry.chain_id), [_batch_body(data)])


def check_batch(registry: Registry, batch: Union[Batch, bytes], *, map: Callable = map,
                parts: int | None = None, history: tuple[RegistryChange, ...] = ()) -> CheckedBatch | Rejection:
    """Check a batch and every item in it. `map` may be a thread pool's map: items are checked in chunks
    (`parts` equal chunks, e.g. the pool's worker count, or chunks of _CHUNK items). `history`: the chain's
    committed registry changes (SettledState.changes); each reading is judged by its period's version."""
    fast = early = None
    if isinstance(batch, (bytes, bytearray, memoryview)):
        data = bytes(batch)
        if len(data) <= MAX_BATCH_BYTES:
            early = _early_batch_signature(registry, data, map)
            # the common shape (readings only) by the fast decoder, which proves the bytes canonical without
            # re-encoding them; anything else, and every refusal, by the strict codec
            fast = fast_decode_rows(data)
        if fast is not None:
            chain_id, submitter, rows, sig, raws = fast
            empty = not rows
        else:
            decoded = decode_batch(data)
            if isinstance(decoded, Rejection):
                return decoded
            batch = decoded
        digest = sha256(data)
        body = _batch_body(data)  # both decoders checked that `data` is canonical
    else:
        digest = batch.digest()
        body = batch.body()
    if fast is None:
        chain_id, submitter, sig = batch.chain_id, batch.submitter, batch.sig
        empty = not batch.readings and not batch.schedules and not batch.changes and not batch.approved
    if chain_id != registry.chain_id:
        return Rejection(Reason.WRONG_CHAIN, f"batch for chain {chain_id!r}, this is {registry.chain_id!r}")
    if submitter not in registry.submitter_keys and submitter not in opened_group_keys(history):
        return Rejection(Reason.WRONG_SIGNER, "the submitter is no registered meter operator, group operator "
                                              "or validator")
    if empty:
        return Rejection(Reason.MALFORMED, "an empty batch")
    if early is not None and early[0] == (submitter, sig):
        signed = next(early[1])
    else:
        signed = verify(submitter, sig, BATCH_DOMAIN, registry.chain_id, body)
    if not signed:
        return Rejection(Reason.BAD_SIGNATURE, "batch signature")
    rv: list = []
    if fast is not None:
        readings: list = []
        for made, part in map(partial(_built_reading_verdicts, registry, history, rows, raws),
                              _spans(len(rows), parts)):
            readings.extend(made)
            rv.extend(part)
        batch = Batch(chain_id, submitter, tuple(readings), (), (), (), sig)
    else:
        for part in map(partial(_reading_verdicts, registry, history, batch.readings, None),
                        _spans(len(batch.readings), parts)):
            rv.extend(part)
    sv: list = []
    for part in map(partial(_schedule_verdicts, registry, history), _chunks(batch.schedules)):
        sv.extend(part)
    cv = tuple(change_shape(registry, c) or change_signature(registry, c) for c in batch.changes)
    ac, av = decode_approved(batch.approved)
    av = tuple(v or approved_shape(registry, c) for c, v in zip(ac, av))
    return CheckedBatch.of(digest, batch, tuple(rv), tuple(sv), cv, history, (ac, av))
