"""The fast batch decoder (cascade/wire.py) against the strict codec, which stays the reference: whatever the
fast path accepts, `Batch.decode` accepts too, as the same Batch, and the bytes are canonical; whatever it
does not recognise is left to the strict codec. And `check_batch` gives the same verdicts either way."""

from __future__ import annotations

import dataclasses
import random

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from nodes.bench.attack import mutate, sample
from stromledger.cascade import Batch, Reading, Reason, Rejection, check_batch, checks, make_batch, sign_reading
from stromledger.cascade.wire import fast_decode_batch, reading_body
from stromledger.codec import CodecError

from .tiny import CHAIN, G, G1, G2, HOUSE1, HOUSE2, PV, REG, key, malo

NOW = G + 10
INTS = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1]


def strict(data: bytes):
    try:
        return Batch.decode(data)
    except CodecError as e:
        return e.reason


def agrees(data: bytes) -> bool:
    """The fast path's answer on `data` is None or exactly the strict one; returns whether it decided."""
    fast = fast_decode_batch(data)
    if fast is None:
        return False
    batch, raws = fast
    ref = strict(data)
    assert isinstance(ref, Batch), f"fast path accepted what Batch.decode refuses ({ref}): {data.hex()}"
    assert batch == ref and hash(batch) == hash(ref)
    assert batch.encode() == data
    assert [type(r) for r in batch.readings] == [Reading] * len(batch.readings)
    assert [reading_body(raw) for raw in raws] == [r.body() for r in ref.readings]
    return True


def random_reading(rng: random.Random) -> Reading:
    r = sample(Reading, rng)
    if rng.random() < 0.6:  # mostly ASCII MaLo-IDs (multi-byte ones soon exceed 11 bytes: the strict path)
        r = dataclasses.replace(r, malo_id="".join(rng.choice("0123456789X") for _ in range(rng.randint(0, 11))))
    if rng.random() < 0.5:
        r = dataclasses.replace(r, period=rng.choice(INTS), import_wh=rng.choice(INTS),
                                export_wh=rng.choice(INTS), version=rng.choice(INTS[:7]))
    return r


def random_batch(rng: random.Random, n: int) -> Batch:
    chain = rng.choice([CHAIN, "", "x" * 31, "x" * 32, "ä" * 16, "€" * 64, "y" * 64, sample(Batch, rng).chain_id])
    return Batch(chain, rng.randbytes(32), tuple(random_reading(rng) for _ in range(n)), (), (), (), rng.randbytes(64))


def test_a_batch_of_the_common_shape_takes_the_fast_path(net):
    b = net.batch([net.reading(m, NOW, 5) for m in (HOUSE1, HOUSE2, PV, REG)])
    assert agrees(b.encode())
    big = net.batch([net.reading(HOUSE1, NOW - i % 3, i) for i in range(70)])  # array16 header
    assert agrees(big.encode())


@pytest.mark.parametrize("n", [16, 65536])
def test_array_headers_of_every_size(n):
    r = sign_reading(key(HOUSE1), CHAIN, HOUSE1, NOW, 1, 0)
    b = Batch(CHAIN, key("meter-operator").public, (r,) * n, (), (), (), bytes(64))
    assert agrees(b.encode())


def test_what_it_leaves_to_the_strict_codec(net):
    r = net.reading(HOUSE1, NOW, 1)
    with_schedules = net.batch([r], net.schedule(G1, G2, NOW + 3, 7)).encode()
    assert fast_decode_batch(with_schedules) is None and isinstance(strict(with_schedules), Batch)
    empty = Batch(CHAIN, key("m").public, (), (), (), (), bytes(64)).encode()
    assert fast_decode_batch(empty) is None and isinstance(strict(empty), Batch)
    utf8_malo = Batch(CHAIN, key("m").public, (dataclasses.replace(r, malo_id="äöü"),), (), (), (),
                      bytes(64)).encode()
    assert agrees(utf8_malo)  # 6 bytes of UTF-8: a fixstr of at most 11 bytes, fast
    wide = Batch(CHAIN, key("m").public, (dataclasses.replace(r, malo_id="ääääää"),), (), (), (),
                 bytes(64)).encode()
    assert fast_decode_batch(wide) is None and isinstance(strict(wide), Batch)  # 12 bytes: more than 11


def test_non_canonical_integers_are_never_fast(net):
    """Each integer field written in a wider form than needed: the strict codec refuses it, the fast path too."""
    r = net.reading(HOUSE1, NOW, 100, 7)
    canonical = net.batch([r]).encode()
    for field, value in (("period", r.period), ("version", r.version), ("import_wh", 100), ("export_wh", 7)):
        for wide in (b"\xcc", b"\xcd", b"\xce", b"\xcf"):
            size = {b"\xcc": 1, b"\xcd": 2, b"\xce": 4, b"\xcf": 8}[wide]
            if value >= 2 ** (8 * size) or (field == "version" and size > 2):
                continue
            good = msgpack.packb(value)
            bad = wide + value.to_bytes(size, "big")
            if bad == good:
                continue
            fields = [r.malo_id, r.period, r.version, r.register, r.import_wh, r.export_wh, r.meter_key, r.sig]
            i = ["malo_id", "period", "version", "register", "import_wh", "export_wh", "meter_key", "sig"].index(field)
            head = b"\x98" + b"".join(msgpack.packb(v, use_bin_type=True) for v in fields[:i])
            tail = b"".join(msgpack.packb(v, use_bin_type=True) for v in fields[i + 1:])
            reading = b"\x98" + head[1:] + bad + tail
            good_reading = head + good + tail
            assert good_reading in canonical
            data = canonical.replace(good_reading, reading)
            assert fast_decode_batch(data) is None
            assert strict(data) == "non_canonical", (field, bad.hex())


def test_other_non_canonical_forms(net):
    r = net.reading(HOUSE1, NOW, 1)
    data = net.batch([r]).encode()
    assert data[1:2] == b"\x03"
    readings_at = data.index(b"\x91\x98")
    forms = [
        data[:readings_at] + b"\xdc\x00\x01" + data[readings_at + 1:],  # array16 for 1 reading
        data[:readings_at] + b"\xdd\x00\x00\x00\x01" + data[readings_at + 1:],
        data.replace(b"\xab" + HOUSE1.encode(), b"\xd9\x0b" + HOUSE1.encode()),  # str8 for 11 bytes
        data.replace(b"\xc4\x20" + r.meter_key, b"\xc5\x00\x20" + r.meter_key),  # bin16 for 32 bytes
        data[:2] + b"\xd9" + bytes([len(CHAIN)]) + data[3:],  # chain id as str8
        data[:-68] + b"\xdc\x00\x00" + data[-67:],  # empty schedules as array16
    ]
    for bad in forms:
        assert bad != data
        assert fast_decode_batch(bad) is None
        assert isinstance(strict(bad), str)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False), st.integers(1, 20))
def test_generated_batches_decode_alike(rng, n):
    data = random_batch(rng, n).encode()
    assert agrees(data) or fast_decode_batch(data) is None


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False), st.integers(1, 6), st.integers(1, 4))
def test_mutated_batches_are_never_accepted_unless_the_strict_codec_agrees(rng, n, damages):
    data = random_batch(rng, n).encode()
    for _ in range(damages):
        data = mutate(data, rng)
        agrees(data)


def test_mutating_every_byte_of_a_small_batch(net):
    """Each byte of a real batch set to a few other values: the fast path decides only what the reference
    decodes the same way."""
    data = net.batch([net.reading(HOUSE1, NOW, 200, 3), net.reading(PV, NOW - 1, 0, 7000)]).encode()
    decided = 0
    for at in range(len(data)):
        for value in {0x00, 0x7F, 0x80, 0x90, 0x98, 0xA0, 0xAB, 0xC0, 0xC2, 0xC3, 0xC4, 0xCC, 0xCF, 0xD9, 0xFF,
                      data[at] ^ 1}:
            bad = data[:at] + bytes([value]) + data[at + 1:]
            if bad != data:
                decided += agrees(bad)
    assert decided > 0  # changed values inside fixed-size fields (keys, signatures, strings) still decode


def reference_check(registry, data, **kw):
    """check_batch with the fast path switched off."""
    saved = checks.fast_decode_rows
    checks.fast_decode_rows = lambda data: None
    try:
        return check_batch(registry, data, **kw)
    finally:
        checks.fast_decode_rows = saved


def test_check_batch_verdicts_are_the_same_on_both_paths(registry, net):
    from concurrent.futures import ThreadPoolExecutor

    r = [net.reading(HOUSE1, NOW, 1), net.reading(PV, NOW, 7), net.reading(malo(99), NOW, 1),
         net.reading(HOUSE2, NOW, 10**9), net.reading(REG, NOW, 3, register=True)]
    tampered = dataclasses.replace(r[1], import_wh=8)  # no longer what the meter signed
    wrong_key = net.reading(HOUSE1, NOW - 1, 1, signer=key(PV))
    resigned = dataclasses.replace(r[0], sig=key(HOUSE1).sign("stromledger/reading/1", "other", r[0].body()))
    good = net.batch(r + [tampered, wrong_key, resigned])
    cases = [
        good.encode(),
        net.batch(r).encode(),
        dataclasses.replace(good, sig=bytes(64)).encode(),  # batch signature wrong
        make_batch(key("meter-operator"), "other", r).encode(),  # another chain
        net.batch(r, signer=key("stranger")).encode(),  # no registered submitter
        dataclasses.replace(good, readings=good.readings[:2]).encode(),  # readings dropped after signing
    ]
    data = good.encode()
    rng = random.Random(7)
    cases += [mutate(data, rng) for _ in range(200)]
    with ThreadPoolExecutor(2) as pool:
        for case in cases:
            fast = check_batch(registry, case, map=pool.map, parts=2)
            assert fast == reference_check(registry, case), case.hex()
            assert fast == check_batch(registry, case)
            if not isinstance(fast, Rejection):
                assert fast.batch == Batch.decode(case)
                assert [type(r) for r in fast.batch.readings] == [Reading] * len(fast.batch.readings)
    verdicts = check_batch(registry, data).reading_verdicts
    assert [v and v.reason for v in verdicts] == [
        None, None, Reason.UNKNOWN_METER_POINT, Reason.ABOVE_MAX_POWER, None, Reason.BAD_SIGNATURE,
        Reason.WRONG_SIGNER, Reason.BAD_SIGNATURE]


def test_check_batch_under_a_registry_history_agrees(registry, net):
    """The history branch (each reading by its period's registry version) with the fast path's bodies: a key
    rotated at NOW - 1, readings before and after it signed by the old and the new key."""
    from stromledger.registry import METER_KEY_ROTATED, sign_change

    new = key(HOUSE1 + "-new")
    history = (sign_change(key("meter-operator"), CHAIN, METER_KEY_ROTATED, HOUSE1, NOW - 1, meter_key=new.public),)
    readings = [net.reading(HOUSE1, p, 1) for p in (NOW - 3, NOW - 2, NOW - 1, NOW)]
    readings += [sign_reading(new, CHAIN, HOUSE1, p, 2, 0) for p in (NOW - 2, NOW - 1, NOW)]
    data = net.batch(readings).encode()
    assert fast_decode_batch(data) is not None
    checked = check_batch(registry, data, history=history)
    assert checked == reference_check(registry, data, history=history)
    assert [v and v.reason for v in checked.reading_verdicts] == [
        None, None, Reason.ROTATED_KEY, Reason.ROTATED_KEY, Reason.WRONG_SIGNER, None, None]
