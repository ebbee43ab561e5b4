"""`bench ingest`: signed readings through the validator's real ingestion path, next to raw Ed25519 verify.

The path is what `nodes.validator.Validator._on_submit` does with a submitted batch, minus the network:
  check_batch(registry, bytes, map=pool.map, parts=workers)   decode (the fast decoder of cascade/wire.py for
                                                readings-only batches), batch signature, every reading's checks
                                                and signature
  Ledger.admit(checked, now_period)             duplicates, conflicts, correction window: keep or refuse
  Store.put_batch(digest, bytes, ...)           durable in SQLite (WAL, synchronous=FULL) before the receipt
  Admission.receipt(key, chain).encode()        the signed receipt
The physical limit is PyNaCl's `crypto_sign_open` over the same readings' signing inputs (prepared before
timing), spread over the same number of threads in chunks of check_batch's size, over all readings at
once (the ingestion path's per-batch barrier is part of its cost). Both run interleaved, best of `repeat`,
so other load on the machine hits both alike.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import statistics
import tempfile
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Callable

import nacl.bindings as sodium

from stromledger.cascade import Ledger, check_batch, checks
from stromledger.cascade.checks import _batch_body, decode_batch
from stromledger.cascade.messages import BATCH_DOMAIN, READING_DOMAIN
from stromledger.cascade.wire import build_readings, fast_decode_rows
from nodes.datagen.synthetic import key_for, make_synthetic
from nodes.gc_policy import settled_collector
from stromledger.crypto import signing_input, verify

from .machine import parallel_capacity
from .timing import Lap, best, rate, stopwatch

CHUNK = 2048  # check_batch's chunk size: the raw run hands the threads the same amount of work per task
TARGET_RATIO = 0.85


def _raw_chunk(items: list[tuple[bytes, bytes]]) -> int:
    open_ = sodium.crypto_sign_open
    for pk, signed in items:
        open_(signed, pk)
    return len(items)


def raw_verify(messages: list[tuple[bytes, bytes]], pool: concurrent.futures.Executor) -> Lap:
    chunks = [messages[i:i + CHUNK] for i in range(0, len(messages), CHUNK)]
    with stopwatch(gc_off=False) as lap:  # as the ingestion path: the collector runs as in a validator
        done = sum(pool.map(_raw_chunk, chunks))
    assert done == len(messages)
    return lap


def pipeline(registry, datas: list[bytes], now_period: int, pool: concurrent.futures.Executor, receipt_key,
             db_dir: Path, in_flight: int = 1, raw: list[list[tuple[bytes, bytes]]] | None = None,
             ) -> tuple[Lap, dict[str, float], int, Lap | None]:
    """One pass of every batch through the ingestion path into a fresh ledger and store. Returns the lap,
    seconds per stage, the number of readings accepted, and the raw verify lap when `raw` is given.

    `raw` (one batch at a time only): each batch's signed readings; before each batch its raw verify runs on
    the same pool, in one equal part per worker, timed apart. Ingestion and raw verify then alternate every
    few hundred milliseconds and share whatever load the machine has: their ratio is paired.

    `in_flight` 1: one batch after the other (one submitter waiting for each receipt). More: that many
    batches are checked at once on their own threads while this thread admits, stores and signs the receipt
    of the oldest, in order: what the validator does with concurrent submissions (`_on_submit` checks on a
    `trio.to_thread` worker, admits on the trio thread, stores on another worker). Stages are then the wait
    for each check, not its cost."""
    from stromledger.store import Store  # sqlite: only the shell and the bench touch it

    ledger = Ledger(registry)
    store = Store(db_dir / "ledger.sqlite3")
    stages = {"check_batch": 0.0, "admit": 0.0, "store": 0.0, "receipt": 0.0}
    accepted = 0
    clock = time.perf_counter
    check = partial(check_batch, registry, map=pool.map, parts=pool._max_workers)

    def finish(data, checked, t0):
        nonlocal accepted
        t1 = clock()
        admission = ledger.admit(checked, now_period)
        t2 = clock()
        if admission.stored:
            periods = sorted(set(checked.reading_periods) | set(checked.schedule_periods))
            store.put_batch(checked.digest, data, int(time.time()), periods)
        t3 = clock()
        admission.receipt(receipt_key, registry.chain_id).encode()
        t4 = clock()
        stages["check_batch"] += t1 - t0
        stages["admit"] += t2 - t1
        stages["store"] += t3 - t2
        stages["receipt"] += t4 - t3
        accepted += admission.accepted

    submitters = concurrent.futures.ThreadPoolExecutor(max(1, in_flight - 1) if in_flight > 1 else 1,
                                                       thread_name_prefix="submit")
    submitters.submit(int).result()  # started before timing
    raw_lap: Lap | None = None
    try:
        # the collector on, on the validator's schedule (run_ingest settles it): collections are part of the cost
        with stopwatch(gc_off=False) as lap:
            if raw is not None:
                raw_lap, ingest_lap = Lap(), Lap()
                cpu = time.process_time
                workers = pool._max_workers
                for data, signed in zip(datas, raw):
                    size = max(1, -(-len(signed) // workers))
                    w0, c0 = clock(), cpu()
                    assert sum(pool.map(_raw_chunk, [signed[i:i + size] for i in range(0, len(signed), size)])) \
                        == len(signed)
                    w1, c1 = clock(), cpu()
                    finish(data, check(data), w1)
                    w2, c2 = clock(), cpu()
                    raw_lap.wall += w1 - w0
                    raw_lap.cpu += c1 - c0
                    ingest_lap.wall += w2 - w1
                    ingest_lap.cpu += c2 - c1
            elif in_flight <= 1:
                for data in datas:
                    t0 = clock()
                    finish(data, check(data), t0)
            else:
                # up to in_flight - 1 checks at once on the submit threads while this thread admits, stores
                # and answers the oldest checked batch
                pending: collections.deque = collections.deque()
                for data in datas:
                    pending.append((data, submitters.submit(check, data)))
                    if len(pending) >= in_flight:
                        data0, future = pending.popleft()
                        t0 = clock()
                        finish(data0, future.result(), t0)
                while pending:
                    data0, future = pending.popleft()
                    t0 = clock()
                    finish(data0, future.result(), t0)
    finally:
        submitters.shutdown()
        store.close()
    if raw_lap is not None:
        return ingest_lap, stages, accepted, raw_lap
    return lap, stages, accepted, None


@contextmanager
def _verify_skipped():
    """check_batch's worker loop with its Ed25519 verify answered by a constant: the loop's own Python work
    (the verify is timed apart, on the same readings)."""
    saved = checks.verify_raw
    checks.verify_raw = lambda public, sig, message: True
    try:
        yield
    finally:
        checks.verify_raw = saved


def stage_costs(registry, datas: list[bytes], messages: list[tuple[bytes, bytes]]) -> dict[str, float]:
    """Single-thread cost of each piece of check_batch, in µs per reading, measured one piece at a time on
    the same data: where the time goes, and which of it holds the GIL."""
    n = len(messages)
    chain = registry.chain_id
    with stopwatch() as lap:
        batches = [decode_batch(d) for d in datas]
    strict = lap.wall
    with stopwatch() as lap:
        fast = [fast_decode_rows(d) for d in datas]
    decode = lap.wall
    with stopwatch() as lap:
        built = [build_readings(f[2]) for f in fast]
    build = lap.wall
    assert all(tuple(made) == b.readings for made, b in zip(built, batches))
    with stopwatch() as lap:
        for b, d in zip(batches, datas):
            verify(b.submitter, b.sig, BATCH_DOMAIN, chain, _batch_body(d))
    batch_sig = lap.wall
    with _verify_skipped(), stopwatch() as lap:
        for f in fast:
            checks._built_reading_verdicts(registry, (), f[2], f[4], range(len(f[2])))
    loop = lap.wall
    readings = [r for b in batches for r in b.readings]
    with stopwatch() as lap:
        for r in readings:
            signing_input(READING_DOMAIN, chain, r.body())
    encoded_body = lap.wall
    with stopwatch() as lap:
        _raw_chunk(messages)
    ed25519 = lap.wall
    us = 1e6 / n
    return {
        "strict_decode_batch": strict * us,  # the reference codec, for comparison (not on the path)
        "encoded_body_and_signing_input": encoded_body * us,  # likewise: `r.body()`, encoded again
        "decode_rows": decode * us,
        "batch_signature": batch_sig * us,
        "build_readings": build * us,
        "worker_loop": loop * us,  # build, registry checks, body and signing input: all but the verify
        "ed25519_verify": ed25519 * us,
        "gil_held_python": (decode + batch_sig + loop) * us,
    }


def run_ingest(readings: int = 50_000, batch_size: int = 5_000, workers: tuple[int, ...] | None = None, repeat: int = 3,
               seed: int = 1, in_flight: int = 2, progress: Callable[[str], None] = lambda s: None) -> dict:
    workers = tuple(workers or range(1, (os.cpu_count() or 1) + 1))  # 1..N: every worker count the machine has
    setup = {}
    capacity = parallel_capacity()  # before any thread exists: fork is safe
    with stopwatch() as lap:
        grid = make_synthetic(readings, seed=seed)
    setup["registry_s"] = lap.wall
    reg = grid.registry
    period = reg.genesis_period
    now_period = period + 1  # readings arrive after their period ended, before gate closure
    progress(f"signing {readings} readings ...")
    with stopwatch() as lap:
        batches = grid.batches(period, size=batch_size)
    setup["sign_s"] = lap.wall
    datas = [b.encode() for b in batches]
    chain = reg.chain_id
    messages = [(r.meter_key, r.sig + signing_input(READING_DOMAIN, chain, r.body())) for b in batches
                for r in b.readings]
    n = len(messages)
    receipt_key = key_for(seed, "validator-1")

    raw: dict[int, list[Lap]] = {w: [] for w in workers}
    pipe: dict[int, list[Lap]] = {w: [] for w in workers}
    flight: dict[int, list[Lap]] = {w: [] for w in workers}
    paired: dict[int, list[tuple[Lap, Lap]]] = {w: [] for w in workers}  # (raw, ingest), alternating per batch
    per_batch = [[(r.meter_key, r.sig + signing_input(READING_DOMAIN, chain, r.body())) for r in b.readings]
                 for b in batches]
    stages: dict[int, dict[str, float]] = {}
    accepted: dict[int, int] = {}
    # the validator's collector schedule (nodes/gc_policy.py) over what exists now, undone at the end
    with tempfile.TemporaryDirectory(prefix="stromledger-bench-ingest-") as tmp, settled_collector():
        for rep in range(repeat):
            for w in workers:
                with concurrent.futures.ThreadPoolExecutor(max_workers=w, thread_name_prefix="verify") as pool:
                    list(pool.map(_raw_chunk, [messages[:16]] * w))  # threads started before timing
                    progress(f"round {rep + 1}/{repeat}: raw verify, {w} thread(s)")
                    raw[w].append(raw_verify(messages, pool))
                    progress(f"round {rep + 1}/{repeat}: ingestion path, {w} worker(s)")
                    db = Path(tmp) / f"w{w}-r{rep}"
                    lap, st, ok, _ = pipeline(reg, datas, now_period, pool, receipt_key, db)
                    pipe[w].append(lap)
                    if lap is best(pipe[w]):
                        stages[w], accepted[w] = st, ok
                    progress(f"round {rep + 1}/{repeat}: ingestion path and raw verify alternating per batch, "
                             f"{w} worker(s)")
                    lap, _, ok2, raw_lap = pipeline(reg, datas, now_period, pool, receipt_key, Path(f"{db}-p"),
                                                    raw=per_batch)
                    assert ok2 == ok
                    paired[w].append((raw_lap, lap))
                    if in_flight > 1:
                        progress(f"round {rep + 1}/{repeat}: ingestion path, {w} worker(s), {in_flight} batches "
                                 f"in flight")
                        lap, _, ok2, _ = pipeline(reg, datas, now_period, pool, receipt_key, Path(f"{db}-f"),
                                                  in_flight)
                        assert ok2 == ok
                        flight[w].append(lap)
        progress("stage costs (single thread)")
        costs = stage_costs(reg, datas, messages)

    rows = []
    for w in workers:
        r, p = best(raw[w]), best(pipe[w])
        raw_rate, pipe_rate = rate(n, r.wall), rate(n, p.wall)
        rows.append({
            "workers": w,
            "raw_verify_per_s": raw_rate,
            "ingest_per_s": pipe_rate,
            "ratio": pipe_rate / raw_rate,
            "raw_cpu_s": r.cpu,
            "ingest_cpu_s": p.cpu,
            "ingest_wall_s": p.wall,
            "raw_wall_s": r.wall,
            "accepted": accepted[w],
            "stages_us_per_reading": {k: v * 1e6 / n for k, v in stages[w].items()},
            "samples_raw_s": [x.wall for x in raw[w]],
            "samples_ingest_s": [x.wall for x in pipe[w]],
        })
        # paired: each round's ratio from raw verify and ingestion alternating batch by batch, the median over
        # rounds (the best round would pick the one where raw verify happened to be disturbed most)
        ratios = sorted(a.wall / b.wall for a, b in paired[w])
        rows[-1].update({"paired_ratio": statistics.median(ratios), "paired_ratios": ratios,
                         "samples_paired_s": [(a.wall, b.wall) for a, b in paired[w]]})
        if in_flight > 1:
            f = best(flight[w])
            rows[-1].update({"in_flight_per_s": rate(n, f.wall), "in_flight_ratio": rate(n, f.wall) / raw_rate,
                             "in_flight_cpu_s": f.cpu, "samples_in_flight_s": [x.wall for x in flight[w]]})
    worst = min(row["ratio"] for row in rows)
    targets = [{"name": f"ingest / raw verify ({row['workers']} worker(s), one batch at a time)",
                "target": f">= {TARGET_RATIO}", "measured": round(row["ratio"], 3),
                "met": row["ratio"] >= TARGET_RATIO} for row in rows]
    targets += [{"name": f"ingest / raw verify ({row['workers']} worker(s), paired per batch, median of rounds)",
                 "target": f">= {TARGET_RATIO}", "measured": round(row["paired_ratio"], 3),
                 "met": row["paired_ratio"] >= TARGET_RATIO} for row in rows]
    if in_flight > 1:
        targets += [{"name": f"ingest / raw verify ({row['workers']} worker(s), {in_flight} batches in flight)",
                     "target": f">= {TARGET_RATIO}", "measured": round(row["in_flight_ratio"], 3),
                     "met": row["in_flight_ratio"] >= TARGET_RATIO} for row in rows]
    return {
        "readings": n,
        "batches": len(datas),
        "batch_size": batch_size,
        "batch_bytes": sum(map(len, datas)) // max(1, len(datas)),
        "repeat": repeat,
        "in_flight": in_flight,
        "setup": setup,
        "rows": rows,
        "stage_costs_us_per_reading": costs,
        # cores this process really got, measured before the run (see machine.parallel_capacity): with 1.0,
        # two threads cannot beat one, for raw verify and the ingestion path alike
        "parallel_capacity": capacity,
        "targets": targets,
        "headline": {"ratio_min": worst,
                     "in_flight_ratio_min": min(row.get("in_flight_ratio", worst) for row in rows)},
    }
