"""`bench attack`: hostile inputs against the decoders and the batch acceptor, measured.

- fuzz: messages of every registered type, generated from their annotations, then mutated (bytes flipped,
  inserted, deleted, truncated, length headers rewritten) and decoded. Anything but a CodecError is a crash;
  bytes that decode but do not re-encode to themselves are a non-canonical acceptance. Both must stay 0.
- bombs: crafted headers (millions of empty arrays where a batch expects readings or a string, a length
  that lies, a deep nest), each decoded once: wall time and peak traced memory, next to decoding an honest
  batch of the same size (the baseline of the same run).
- duplicates: one valid reading sent in many distinct batches: how many batches a validator holds and
  lists in its next seal (one is right).

The generators are shared with the fuzz test in `make test` (tests/base/test_fuzz.py), which runs a few
hundred inputs; this runs as many as asked.
"""

from __future__ import annotations

import functools
import random
import tracemalloc
import typing
from collections import Counter
from typing import Annotated, Any, Callable, get_args, get_origin

import msgpack

from stromledger import codec
from stromledger.codec import CodecError, Len, MaxLen, Message, Range

from .timing import stopwatch

MESSAGE_MODULES = ("stromledger.cascade.messages", "stromledger.consensus.messages",
                   "stromledger.consensus.evidence", "stromledger.sim.apps", "nodes.protocol")


def message_types() -> list[type[Message]]:
    """Every wire message type of the project, by tag (test-only types registered by tests left out)."""
    import importlib

    for name in MESSAGE_MODULES:
        importlib.import_module(name)
    return [cls for _, cls in sorted(codec.registered().items())
            if cls.__module__.split(".")[0] in ("stromledger", "nodes")]


# -- generating valid messages from their annotations ---------------------------------------------------------


def sample(tp: Any, rng: random.Random) -> Any:
    """A random value of annotation `tp` within its bounds (sequences and strings kept short)."""
    meta: tuple = ()
    if get_origin(tp) is Annotated:
        tp, *rest = get_args(tp)
        meta = tuple(rest)
    origin = get_origin(tp)
    bound = next((m for m in meta if isinstance(m, (Range, Len, MaxLen))), None)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        inner = [a for a in get_args(tp) if a is not type(None)][0]
        return None if rng.random() < 0.3 else sample(inner, rng)
    if tp is bool:
        return rng.random() < 0.5
    if tp is int:
        lo, hi = (bound.lo, bound.hi) if isinstance(bound, Range) else (-(2**63), 2**64 - 1)
        edge = rng.choice([lo, hi, 0 if lo <= 0 <= hi else lo, min(hi, max(lo, 127)), min(hi, max(lo, 128))])
        return edge if rng.random() < 0.4 else rng.randint(lo, hi)
    if tp is str:
        n = bound.n if isinstance(bound, MaxLen) else codec.DEFAULT_MAX_STR
        return "".join(rng.choice("abcXYZ019-_.äß€") for _ in range(rng.randint(0, min(n, 12))))
    if tp is bytes:
        if isinstance(bound, Len):
            return rng.randbytes(bound.n)
        n = bound.n if isinstance(bound, MaxLen) else codec.DEFAULT_MAX_BYTES
        return rng.randbytes(rng.randint(0, min(n, 40)))
    if origin is tuple:
        n = bound.n if isinstance(bound, MaxLen) else codec.DEFAULT_MAX_ITEMS
        return tuple(sample(get_args(tp)[0], rng) for _ in range(rng.randint(0, min(n, 3))))
    if isinstance(tp, type) and issubclass(tp, Message):
        return tp(*[sample(field, rng) for field in _fields(tp)])
    raise TypeError(f"cannot sample {tp}")


@functools.lru_cache(maxsize=None)
def _fields(cls: type[Message]) -> tuple:
    hints = typing.get_type_hints(cls, include_extras=True)
    return tuple(hints[name] for name, _ in cls._wire_fields)


_HEADERS = [b"\x90", b"\x9f", b"\xdc\xff\xff", b"\xdd\xff\xff\xff\xff", b"\xdd\x00\x40\x00\x00", b"\xc4\xff",
            b"\xc6\xff\xff\xff\xff", b"\xd9\xff", b"\xdb\x7f\xff\xff\xff", b"\x80", b"\xde\xff\xff", b"\xc0",
            b"\xc1", b"\xca\x00\x00\x00\x00", b"\xcf" + b"\xff" * 8, b"\xd3\x80" + bytes(7), b"\xc7\x01\x01\x00"]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random damage to `data`."""
    b = bytearray(data)
    at = rng.randrange(len(b) + 1)
    kind = rng.randrange(6)
    if kind == 0 and b:
        b[min(at, len(b) - 1)] ^= 1 << rng.randrange(8)
    elif kind == 1:
        b[at:at] = rng.choice(_HEADERS)
    elif kind == 2 and b:
        del b[at:at + rng.randint(1, 8)]
    elif kind == 3:
        del b[at:]
    elif kind == 4 and b:
        b[min(at, len(b) - 1)] = rng.randrange(256)
    else:
        b[at:at] = rng.randbytes(rng.randint(1, 8))
    return bytes(b)


def verdict(data: bytes) -> str:
    """'ok', 'refused:<reason>', 'non_canonical_accepted' or 'crash:<exception>' for one input."""
    try:
        msg = codec.decode(data)
    except CodecError as e:
        return f"refused:{e.reason}"
    except Exception as e:  # the bug this looks for
        return f"crash:{type(e).__name__}: {e}"[:200]
    return "ok" if msg.encode() == data else "non_canonical_accepted"


def fuzz(inputs: int, seed: int = 1) -> dict:
    rng = random.Random(seed)
    types = message_types()
    counts: Counter = Counter()
    examples: dict[str, str] = {}
    with stopwatch() as lap:
        for i in range(inputs):
            cls = types[i % len(types)]
            data = sample(cls, rng).encode()
            if i % 10 == 0:
                v = verdict(data)  # the unmutated message must decode
                counts["generated_" + ("ok" if v == "ok" else "failed")] += 1
            for _ in range(rng.randint(1, 3)):
                data = mutate(data, rng)
            v = verdict(data)
            key = v.split(":")[0] if v.startswith("refused") else v.split(":")[0]
            counts[key] += 1
            if key not in ("ok", "refused"):
                examples.setdefault(v, data.hex()[:400])
    return {"inputs": inputs, "types": len(types), "seconds": lap.wall, "per_s": inputs / lap.wall if lap.wall else None,
            "ok": counts["ok"], "refused": counts["refused"], "crashes": counts["crash"],
            "non_canonical_accepted": counts["non_canonical_accepted"],
            "generated_ok": counts["generated_ok"], "generated_failed": counts["generated_failed"],
            "examples": examples}


# -- header bombs --------------------------------------------------------------------------------------------


def _batch_bytes(readings: bytes, chain: bytes = b"\xa1c") -> bytes:
    from stromledger.cascade.messages import Batch
    return (b"\x98" + msgpack.packb(Batch.TAG) + chain + msgpack.packb(bytes(32), use_bin_type=True) + readings
            + b"\x90\x90\x90" + msgpack.packb(bytes(64), use_bin_type=True))  # no schedules, no registry changes


def bombs(mib: int = 4) -> dict[str, bytes]:
    n = mib * 1024 * 1024
    array32 = b"\xdd" + n.to_bytes(4, "big")
    return {
        f"{mib} MiB of empty arrays as a batch's readings": _batch_bytes(array32 + b"\x90" * n),
        f"{mib} MiB of empty arrays where the chain id (a string) belongs": _batch_bytes(b"\x90",
                                                                                         array32 + b"\x90" * n),
        f"{mib} MiB nest of one-element arrays as a reading": _batch_bytes(b"\x91" + b"\x91" * n + b"\x90"),
        "a byte string announcing 4 GiB": _batch_bytes(b"\x90", b"\xc6\xff\xff\xff\xff" + bytes(16)),
    }


def honest_batch(size: int) -> bytes:
    """A canonical batch of about `size` bytes of (unsigned: decoding does not verify) readings."""
    from stromledger.cascade.messages import Batch, Reading
    one = Reading("50000000000", 1, 1, False, 1000, 7, bytes(32), bytes(64))
    count = max(1, size // len(one.encode()))
    return Batch("c", bytes(32), (one,) * count, (), (), (), bytes(64)).encode()


def measure_decode(data: bytes) -> dict:
    """Wall time of one decode, then its peak memory in a second, traced run (tracing slows allocation)."""
    with stopwatch() as lap:
        v = verdict(data)
    tracemalloc.start()
    try:
        verdict(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return {"bytes": len(data), "ms": lap.wall * 1000, "peak_mib": peak / 2**20, "verdict": v}


# -- one reading in many batches -------------------------------------------------------------------------------


def duplicate_flood(batches: int) -> dict:
    from nodes.datagen.devnet_genesis import devnet_key, devnet_registry, meter_label
    from stromledger.cascade import Ledger, make_batch, sign_reading

    reg = devnet_registry(validators=4, balancing_groups=2, meters=20, period_seconds=900)
    p = reg.genesis_period
    operator = next(o for o in reg.meter_operators.values())
    op_key = devnet_key(next(label for label in ("meter-operator-1", "meter-operator-2")
                             if devnet_key(label).public == operator.public_key))
    malo = next(iter(reg.meter_points))
    one = sign_reading(devnet_key(meter_label(malo)), reg.chain_id, malo, p, 5, 0)
    junk = [sign_reading(devnet_key("nobody"), reg.chain_id, malo, p, 6 + i, 0, version=2) for i in range(batches)]
    sent = [make_batch(op_key, reg.chain_id, [one, j]).encode() for j in junk]  # distinct: a bad-signature extra
    ledger = Ledger(reg)
    with stopwatch() as lap:
        stored = sum(ledger.admit(b, p + 1).stored for b in sent)
    listed = len(ledger.propose().seal.batches)
    return {"batches": batches, "stored": stored, "held": len(ledger.acceptor.batches), "listed": listed,
            "us_per_batch": lap.wall / batches * 1e6}


def run_attack(inputs: int = 200_000, bomb_mib: int = 4, duplicates: int = 300, seed: int = 1,
               progress: Callable[[str], None] = lambda s: None) -> dict:
    progress(f"fuzzing every decoder with {inputs:,} mutated messages")
    fuzzed = fuzz(inputs, seed)
    progress("header bombs")
    rows = []
    for name, data in bombs(bomb_mib).items():
        rows.append({"bomb": name, **measure_decode(data)})
    baseline = {"bomb": f"baseline: an honest batch of {bomb_mib} MiB", **measure_decode(honest_batch(bomb_mib << 20))}
    progress(f"one reading in {duplicates} distinct batches")
    dup = duplicate_flood(duplicates)
    targets = [
        {"name": "decoder crashes", "target": "0", "measured": fuzzed["crashes"], "met": fuzzed["crashes"] == 0},
        {"name": "non-canonical acceptances", "target": "0", "measured": fuzzed["non_canonical_accepted"],
         "met": fuzzed["non_canonical_accepted"] == 0},
        {"name": "bomb peak memory / honest batch's", "target": "<= 1",
         "measured": round(max(r["peak_mib"] for r in rows) / baseline["peak_mib"], 3),
         "met": max(r["peak_mib"] for r in rows) <= baseline["peak_mib"]},
        {"name": f"batches held of {duplicates} carrying one reading", "target": "1", "measured": dup["held"],
         "met": dup["held"] == 1 and dup["listed"] == 1},
    ]
    return {"fuzz": fuzzed, "bombs": rows, "baseline": baseline, "duplicates": dup, "targets": targets}
