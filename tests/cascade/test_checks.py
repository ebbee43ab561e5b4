"""Every rejection reason of the pure checks: readings, schedules and batches."""

from __future__ import annotations

import dataclasses

import pytest

from stromledger.cascade import (
    Batch, Reason, check_batch, check_reading, check_schedule, decode_batch, make_batch, sign_reading,
)
from stromledger.cascade.checks import MAX_BATCH_BYTES
from stromledger.cascade.messages import MAX_BATCH_READINGS
from stromledger.codec import CodecError

from .tiny import CHAIN, G, G1, G2, HOUSE1, MAX_30KW, PV, key, malo

NOW = G + 10


def reason(rejection):
    return None if rejection is None else rejection.reason


def test_valid_reading_passes(registry, net):
    assert check_reading(registry, net.reading(HOUSE1, NOW - 1, 100), NOW) is None
    assert check_reading(registry, net.reading(PV, NOW, 10, MAX_30KW), NOW) is None  # exactly max power is fine


@pytest.mark.parametrize("make, expected", [
    (lambda net: net.reading(malo(99), NOW, 1), Reason.UNKNOWN_METER_POINT),
    (lambda net: dataclasses.replace(net.reading(HOUSE1, NOW, 1), malo_id="12345678901"), Reason.MALFORMED),
    (lambda net: net.reading(HOUSE1, NOW, 1, version=0), Reason.MALFORMED),
    (lambda net: net.reading(HOUSE1, NOW, 1, signer=key(PV)), Reason.WRONG_SIGNER),
    (lambda net: dataclasses.replace(net.reading(HOUSE1, NOW, 1), import_wh=2), Reason.BAD_SIGNATURE),
    (lambda net: net.reading(HOUSE1, NOW, MAX_30KW + 1), Reason.ABOVE_MAX_POWER),
    (lambda net: net.reading(PV, NOW, 0, MAX_30KW + 1), Reason.ABOVE_MAX_POWER),
    (lambda net: net.reading(HOUSE1, G - 1, 1), Reason.PERIOD_TOO_OLD),
    (lambda net: net.reading(HOUSE1, NOW - 1 - 4 - 1, 1), Reason.PERIOD_TOO_OLD),  # window 4
    (lambda net: net.reading(HOUSE1, NOW + 1, 1), Reason.PERIOD_IN_FUTURE),
])
def test_reading_rejections(registry, net, make, expected):
    assert reason(check_reading(registry, make(net), NOW)) == expected


def test_reading_signed_for_another_chain_does_not_verify(registry):
    r = sign_reading(key(HOUSE1), "other-chain", HOUSE1, NOW, 5, 0)
    assert reason(check_reading(registry, r, NOW)) == Reason.BAD_SIGNATURE


def test_correction_window_edge(registry, net):
    oldest = NOW - 1 - registry.correction_window
    assert check_reading(registry, net.reading(HOUSE1, oldest, 1), NOW) is None
    assert reason(check_reading(registry, net.reading(HOUSE1, oldest - 1, 1), NOW)) == Reason.PERIOD_TOO_OLD


def test_register_values_are_not_bounded_by_one_period(registry, net):
    """A cumulative register is far above one period's energy; the bound applies to differences (settle)."""
    assert check_reading(registry, net.reading(HOUSE1, NOW, 10**9, register=True), NOW) is None


@pytest.mark.parametrize("make, expected", [
    (lambda net: net.schedule(G1, G2, NOW, 0, "from")[0], Reason.MALFORMED),
    (lambda net: net.schedule(G1, G1, NOW, 5, "from")[0], Reason.MALFORMED),
    (lambda net: dataclasses.replace(net.schedule(G1, G2, NOW, 5, "from")[0], to_group="11YNOTAREAL----X"),
     Reason.MALFORMED),
    (lambda net: dataclasses.replace(net.schedule(G1, G2, NOW, 5, "from")[0], wh=6), Reason.BAD_SIGNATURE),
    (lambda net: net.schedule(G1, G2, G - 1, 5, "from")[0], Reason.PERIOD_TOO_OLD),
    (lambda net: net.schedule(G1, G2, NOW - 2, 5, "from")[0], Reason.PERIOD_TOO_OLD),
    (lambda net: net.schedule(G1, G2, NOW + 193, 5, "from")[0], Reason.PERIOD_IN_FUTURE),
])
def test_schedule_rejections(registry, net, make, expected):
    assert reason(check_schedule(registry, make(net), NOW)) == expected


def test_schedule_unknown_group_and_wrong_signer(registry, net):
    from nodes.datagen.synthetic import eic_for
    from stromledger.cascade import sign_schedule

    unknown = eic_for("NOSUCHBG", 1)
    s = sign_schedule(key(G1), CHAIN, G1, unknown, NOW, 5)
    assert reason(check_schedule(registry, s, NOW)) == Reason.UNKNOWN_BALANCING_GROUP
    third = sign_schedule(key("someone"), CHAIN, G1, G2, NOW, 5)
    assert reason(check_schedule(registry, third, NOW)) == Reason.WRONG_SIGNER
    ok = net.schedule(G1, G2, NOW + 192, 5, "to")[0]  # day-ahead, within the horizon
    assert check_schedule(registry, ok, NOW) is None


def test_batch_rejections(registry, net):
    good = net.batch([net.reading(HOUSE1, NOW, 1)])
    assert check_batch(registry, good).digest == good.digest()
    other_chain = make_batch(key("meter-operator"), "other", good.readings)
    assert reason(check_batch(registry, other_chain)) == Reason.WRONG_CHAIN
    stranger = net.batch(good.readings, signer=key("stranger"))
    assert reason(check_batch(registry, stranger)) == Reason.WRONG_SIGNER
    forged = dataclasses.replace(good, readings=good.readings * 2)
    assert reason(check_batch(registry, forged)) == Reason.BAD_SIGNATURE
    assert reason(check_batch(registry, net.batch())) == Reason.MALFORMED
    assert reason(check_batch(registry, b"\x93\x01\x02")) == Reason.MALFORMED
    assert reason(check_batch(registry, good.encode()[:-3])) == Reason.MALFORMED
    assert reason(check_batch(registry, b"\x00" * (MAX_BATCH_BYTES + 1))) == Reason.OVERSIZED


def test_oversized_batch_is_refused_by_the_codec():
    r = sign_reading(key(HOUSE1), CHAIN, HOUSE1, NOW, 1, 0)
    too_many = Batch(CHAIN, key("meter-operator").public, (r,) * (MAX_BATCH_READINGS + 1), (), (), (), bytes(64))
    with pytest.raises(CodecError):
        Batch.decode(too_many.encode())
    assert reason(decode_batch(too_many.encode())) == Reason.OVERSIZED


def test_batch_item_verdicts_and_periods(registry, net):
    b = net.batch([net.reading(HOUSE1, NOW, 1), net.reading(HOUSE1, NOW - 1, MAX_30KW + 1),
                   net.reading(malo(99), NOW - 2, 1)], net.schedule(G1, G2, NOW + 3, 7))
    cb = check_batch(registry, b)
    assert [reason(v) for v in cb.reading_verdicts] == [None, Reason.ABOVE_MAX_POWER, Reason.UNKNOWN_METER_POINT]
    assert cb.reading_periods == (NOW,)  # only valid items count
    assert cb.schedule_periods == (NOW + 3,)
    assert cb.max_period == NOW + 3


def test_check_batch_with_a_thread_pool_gives_the_same_verdicts(registry, net):
    from concurrent.futures import ThreadPoolExecutor

    readings = [net.reading(HOUSE1, NOW, i % 3) for i in range(5)] + [net.reading(PV, NOW, MAX_30KW + 1)]
    b = net.batch(readings)
    with ThreadPoolExecutor(2) as pool:
        threaded = check_batch(registry, b, map=pool.map)
    assert threaded == check_batch(registry, b)
