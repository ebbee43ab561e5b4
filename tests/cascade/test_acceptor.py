"""The acceptor: per-item verdicts with reasons, idempotence, evidence kept, receipts, the proposer's choice."""

from __future__ import annotations

from dataclasses import replace

from stromledger.cascade import Ledger, Reason, Receipt
from stromledger.cascade.ledger import READING, SCHEDULE
from stromledger.cascade.messages import RECEIPT_DOMAIN
from stromledger.crypto import verify
from stromledger.registry import Registry

from .tiny import CHAIN, G, G1, G2, HOUSE1, HOUSE2, MAX_30KW, PV, SWITCH, Net, key, make_registry, malo

NOW = G + 1


def reasons(admission):
    return [(kind, i, r.reason) for kind, i, r in admission.rejections]


def test_admission_reports_every_item(registry, net, ledger):
    b = net.batch([net.reading(HOUSE1, G, 5), net.reading(malo(99), G, 5), net.reading(PV, G, MAX_30KW + 1),
                   net.reading(HOUSE2, G, 5), net.reading(HOUSE2, G, 5)],
                  net.schedule(G1, G2, G, 10) + net.schedule(G1, G2, G, 10, "from"))
    a = ledger.admit(b, NOW)
    assert a.refused is None and a.stored and a.digest == b.digest()
    assert a.accepted == 4 and a.duplicates == 2
    assert reasons(a) == [(READING, 1, Reason.UNKNOWN_METER_POINT), (READING, 2, Reason.ABOVE_MAX_POWER),
                          (READING, 4, Reason.DUPLICATE), (SCHEDULE, 2, Reason.DUPLICATE)]


def test_whole_batch_refusals(registry, net, ledger):
    b = net.batch([net.reading(HOUSE1, G, 5)])
    assert ledger.admit(b, NOW).stored
    assert ledger.admit(b, NOW).refused.reason == Reason.DUPLICATE
    assert ledger.admit(b"\x01\x02", NOW).refused.reason == Reason.MALFORMED
    future = net.batch([net.reading(HOUSE1, NOW + 1, 5)])
    assert ledger.admit(future, NOW).refused.reason == Reason.PERIOD_IN_FUTURE
    far = net.batch([], net.schedule(G1, G2, NOW + 500, 5))
    assert ledger.admit(far, NOW).refused.reason == Reason.PERIOD_IN_FUTURE
    assert ledger.admit(net.batch([net.reading(HOUSE1, G, 5)], signer=key("x")), NOW).refused.reason == \
        Reason.WRONG_SIGNER


def test_against_the_settled_state(registry, net, ledger):
    first = net.reading(HOUSE1, G, 5)
    net.settle(ledger, net.batch([first, net.reading(PV, G, 1, 2, version=2)]))
    a = ledger.admit(net.batch([first, net.reading(HOUSE1, G, 6), net.reading(PV, G, 1, 2)]), NOW)
    assert reasons(a) == [(READING, 0, Reason.DUPLICATE), (READING, 1, Reason.CONFLICTING_DUPLICATE),
                          (READING, 2, Reason.SUPERSEDED)]
    assert a.stored and a.accepted == 0  # stored anyway: the conflicting reading is evidence for the seal
    out = ledger.propose()
    assert len(out.seal.evidence) == 1
    late = net.batch([], net.schedule(G1, G2, G, 5))
    a = ledger.admit(late, NOW)
    assert reasons(a) == [(SCHEDULE, 0, Reason.PERIOD_TOO_OLD), (SCHEDULE, 1, Reason.PERIOD_TOO_OLD)]
    assert not a.stored


def test_conflict_between_pending_batches(registry, net, ledger):
    ledger.admit(net.batch([net.reading(HOUSE1, G, 5)]), NOW)
    a = ledger.admit(net.batch([net.reading(HOUSE1, G, 6)]), NOW)
    assert reasons(a) == [(READING, 0, Reason.CONFLICTING_DUPLICATE)] and a.stored


def test_too_old_for_the_next_seal(registry, net, ledger):
    for _ in range(7):
        net.settle(ledger)
    a = ledger.admit(net.batch([net.reading(HOUSE1, G + 1, 5)]), None)
    assert reasons(a) == [(READING, 0, Reason.PERIOD_TOO_OLD)] and not a.stored


def test_receipt_is_signed_and_lists_the_real_problems(registry, net, ledger):
    b = net.batch([net.reading(HOUSE1, G, 5), net.reading(HOUSE1, G, 5), net.reading(malo(99), G, 1)])
    a = ledger.admit(b, NOW)
    validator = key("validator-1")
    receipt = a.receipt(validator, CHAIN)
    assert Receipt.decode(receipt.encode()) == receipt
    assert verify(validator.public, receipt.sig, RECEIPT_DOMAIN, CHAIN, receipt.body())
    assert (receipt.batch, receipt.accepted, receipt.duplicates) == (b.digest(), 1, 1)
    assert [(x.index, Reason(x.reason)) for x in receipt.rejected] == [(2, Reason.UNKNOWN_METER_POINT)]
    refused = ledger.admit(b"junk", NOW).receipt(validator, CHAIN)
    assert Reason(refused.batch_reason) == Reason.MALFORMED


def test_proposer_choice_is_sorted_and_forgets_settled_batches(registry, net, ledger):
    batches = [net.batch([net.reading(m, G, 1)]) for m in (HOUSE1, HOUSE2, PV)]
    ahead = net.batch([], net.schedule(G1, G2, G + 1, 4))
    for b in batches + [ahead]:
        ledger.admit(b, NOW)
    chosen = ledger.acceptor.eligible(G)
    assert [c.digest for c in chosen] == sorted(b.digest() for b in batches)  # `ahead` is not due yet
    ledger.commit(ledger.propose().seal_bytes)
    assert set(ledger.acceptor.batches) == {ahead.digest()}
    assert [c.digest for c in ledger.acceptor.eligible(G + 1)] == [ahead.digest()]
    ledger.commit(ledger.propose().seal_bytes)
    assert ledger.acceptor.batches == {}
    assert ledger.admit(ahead, NOW).refused.reason == Reason.DUPLICATE


def test_schedule_mismatch_is_a_warning_and_the_schedule_is_kept(registry, net, ledger):
    ledger.admit(net.batch([], net.schedule(G1, G2, NOW, 500, "from")), NOW)
    a = ledger.admit(net.batch([], net.schedule(G1, G2, NOW, 501, "to")), NOW)
    assert reasons(a) == [(SCHEDULE, 0, Reason.SCHEDULE_MISMATCH)] and a.stored
    assert "500" in a.rejections[0][2].message
    b = ledger.admit(net.batch([], net.schedule(G1, G2, NOW, 500, "to")), NOW)
    assert reasons(b) == [] and b.accepted == 1


def test_one_reading_in_300_distinct_batches_is_held_and_listed_once(registry, net, ledger):
    one = net.reading(HOUSE1, G, 5)
    # each batch made distinct by a junk reading for an unknown meter point: all 300 carry nothing new
    batches = [net.batch([one, net.reading(malo(99), G, i + 1)]) for i in range(300)]
    admissions = [ledger.admit(b, NOW) for b in batches]
    assert sum(a.stored for a in admissions) >= 1 and all(a.refused is None for a in admissions)
    lowest = min(b.digest() for b in batches)
    assert list(ledger.acceptor.batches) == [lowest]
    assert list(ledger.propose().seal.batches) == [lowest]


def test_the_held_set_does_not_depend_on_arrival_order(registry, net):
    a = net.batch([net.reading(HOUSE1, G, 5), net.reading(HOUSE2, G, 7)])
    b = net.batch([net.reading(HOUSE1, G, 5)])
    c = net.batch([net.reading(HOUSE2, G, 7), net.reading(PV, G, 1)])
    held = set()
    for order in ([a, b, c], [c, b, a], [b, c, a], [a, c, b]):
        ledger = Ledger(registry)
        for x in order:
            ledger.admit(x, NOW)
        held.add(tuple(sorted(ledger.acceptor.batches)))
    assert len(held) == 1


def test_a_submitter_over_its_quota_is_refused_until_the_next_period(registry, net):
    from stromledger.cascade.ledger import SubmitterQuota
    ledger = Ledger(registry, quota=SubmitterQuota(batches=2, items=3))
    assert ledger.admit(net.batch([net.reading(HOUSE1, G, 5)]), NOW).stored
    assert ledger.admit(net.batch([net.reading(HOUSE2, G, 5)]), NOW).stored
    third = net.batch([net.reading(PV, G, 1)])
    refused = ledger.admit(third, NOW).refused
    assert refused.reason == Reason.OVERSIZED and "quota" in refused.message
    assert ledger.admit(third, NOW + 1).stored  # a new period, a new quota
    big = net.batch([net.reading(HOUSE1, G, 6, version=2), net.reading(HOUSE2, G, 6, version=2),
                     net.reading(PV, G, 2, version=2), net.reading(HOUSE1, G, 7, version=3)])
    assert "new items" in ledger.admit(big, NOW + 1).refused.message
    assert ledger.admit(big, None, quota_period=NOW + 1).refused  # pushed by another validator: counted
    assert ledger.admit(big, None).stored  # fetched to validate a seal: no clock, no quota


def test_totals_that_would_overflow_drop_the_batch_instead_of_crashing_propose():
    # a registry built by hand, past the genesis bounds: five meters of 2**64 - 1 W in one cell
    base = make_registry()
    houses = [malo(20 + i) for i in range(5)]
    points = list(base.meter_points.values()) + [
        base.meter_points[HOUSE1]._replace(malo_id=m, meter_key=key(m).public, max_power_w=2**64 - 1)
        for m in houses]
    reg = Registry(base.params, base.validators, base.grid_areas.values(), base.balancing_groups.values(),
                   base.meter_operators.values(), points, base.assignments)
    net = Net(reg)
    ledger = Ledger(reg)
    ok = net.batch([net.reading(HOUSE1, G, 5)])
    bomb = net.batch([net.reading(m, G, 2**64 // 5) for m in houses])
    assert ledger.admit(ok, None).stored and ledger.admit(bomb, None).stored
    outcome = ledger.propose()  # on main: OverflowError
    assert list(outcome.seal.batches) == [ok.digest()]
    assert bomb.digest() not in ledger.acceptor.batches
    again = [net.batch([net.reading(m, G, 2**64 // 5) for m in houses] + [net.reading(HOUSE2, G, i)])
             for i in range(1, 6)]
    for b in again:  # copies of the dropped items, some with a lower digest than the dropped batch
        ledger.admit(b, None)
    # a seal that lists it anyway is a rejection for the validators, not a crash
    listing = replace(outcome.seal, batches=(bomb.digest(),))
    other = Ledger(reg)
    other.admit(bomb, None)
    assert other.validate(listing.encode()).reason == Reason.INVARIANT_VIOLATED


def test_a_schedule_above_the_bound_is_refused(registry, net, ledger):
    from stromledger.cascade.checks import MAX_SCHEDULE_WH
    a = ledger.admit(net.batch([], net.schedule(G1, G2, NOW, MAX_SCHEDULE_WH + 1, "from")
                               + net.schedule(G1, G2, NOW, MAX_SCHEDULE_WH, "to")), NOW)
    assert reasons(a) == [(SCHEDULE, 0, Reason.OVERSIZED)] and a.stored


def test_bulk_admission_equals_the_verdict_of_each_reading(registry, net):
    """Batches of readings that need no verdict of their own are admitted in bulk (Acceptor._fresh_readings);
    the answers and everything the acceptor keeps are exactly those of judging each reading, over random
    batches with repeats inside a batch and across batches, conflicts, several periods, unknown meter
    points, a settled period and a quota."""
    import random

    from stromledger.cascade.ledger import SubmitterQuota

    rng = random.Random(7)
    pool = [net.reading(m, p, imp, version=v) for m in (HOUSE1, HOUSE2, PV, SWITCH, malo(99))
            for p in (G, G + 1, G + 2) for v in range(1, 9) for imp in (5, 6)]
    quota = SubmitterQuota(batches=1_000, items=150)
    bulk, each = Ledger(registry, quota=quota), Ledger(registry, quota=quota)
    each.acceptor._fresh_readings = lambda checked, lo: None
    taken = 0
    for step in range(120):
        if step % 40 == 39:  # settle what is held: later readings of that period are judged against it
            outcome = bulk.propose()
            assert each.propose().seal_bytes == outcome.seal_bytes
            bulk.commit(outcome.seal_bytes)
            each.commit(outcome.seal_bytes)
        if rng.random() < 0.5:  # one period, distinct meter points: the bulk path's shape
            period, version = rng.choice((G, G + 1, G + 2)), rng.randint(1, 8)
            readings = [rng.choice([r for r in pool if (r.malo_id, r.period, r.version) == (m, period, version)])
                        for m in (HOUSE1, HOUSE2, PV, SWITCH) if rng.random() < 0.6]
        else:
            readings = rng.sample([r for r in pool if r.version <= 2], rng.randint(1, 6))
        if not readings:
            continue
        batch = net.batch(readings)
        fresh = bulk.acceptor._fresh_readings(bulk.acceptor.check(batch), G)
        taken += fresh is not None
        a, b = bulk.admit(batch, G + 3), each.admit(batch, G + 3)
        assert (a.digest, a.refused, a.rejections, a.accepted, a.duplicates, a.stored) == \
            (b.digest, b.refused, b.rejections, b.accepted, b.duplicates, b.stored)
        for name in ("batches", "_readings", "_schedules", "_carrier", "_carries", "_used"):
            assert getattr(bulk.acceptor, name) == getattr(each.acceptor, name), name
    assert taken >= 10  # the bulk path was exercised, not only the per-reading one
