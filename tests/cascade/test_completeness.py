"""Complete proposals (issue 18, D3): a seal must list what this node held in time, or leave it out for a
reason the rules allow."""

from __future__ import annotations

from stromledger.cascade import Ledger, check_batch
from stromledger.cascade.completeness import omissions

from .tiny import G, G1, G2, HOUSE1, HOUSE2, PV, key


def _checked(registry, batch):
    return check_batch(registry, batch)


def _judge(registry, mine: Ledger, seal_bytes: bytes, held):
    from stromledger.cascade import PeriodSeal

    seal = PeriodSeal.decode(seal_bytes)
    listed = {d: _checked(registry, b) for d, b in held.get("listed", {}).items()}
    return omissions(registry, mine.state, seal, listed, [_checked(registry, b) for b in held["held"]])


def test_a_seal_without_a_held_batch_is_incomplete(registry, net):
    batch = net.batch([net.reading(HOUSE1, G, 100)])
    empty = Ledger(registry).propose().seal_bytes  # a proposer that never got the batch
    mine = Ledger(registry)
    mine.admit(batch, None)
    [o] = _judge(registry, mine, empty, {"held": [batch]})
    assert o.digest == batch.digest() and f"MaLo {HOUSE1} for period {G}" in str(o)
    full = Ledger(registry)
    full.admit(batch, None)
    assert _judge(registry, mine, full.propose().seal_bytes, {"held": [batch], "listed": {batch.digest(): batch}}) == []


def test_allowed_exclusions_nothing_to_settle_or_carried_by_a_listed_batch(registry, net):
    r1, r2 = net.reading(HOUSE1, G, 100), net.reading(HOUSE2, G, 50)
    mine_only = net.batch([r1])  # this node kept the batch with r1 alone
    theirs = net.batch([r1, r2], signer=key("meter-operator"))  # the proposer kept a batch carrying r1 and r2
    proposer = Ledger(registry)
    proposer.admit(theirs, None)
    seal = proposer.propose().seal_bytes
    mine = Ledger(registry)
    mine.admit(mine_only, None)
    assert _judge(registry, mine, seal, {"held": [mine_only], "listed": {theirs.digest(): theirs}}) == []
    # a batch whose only reading is for a period after the seal's height has nothing to settle there
    future = net.batch([net.reading(PV, G + 1, 10)])
    assert _judge(registry, mine, Ledger(registry).propose().seal_bytes, {"held": [future]}) == []


def test_a_held_schedule_of_the_height_must_be_listed(registry, net):
    batch = net.batch(schedules=net.schedule(G1, G2, G, 40))
    mine = Ledger(registry)
    [o] = _judge(registry, mine, Ledger(registry).propose().seal_bytes, {"held": [batch]})
    assert f"schedule {G1} -> {G2} for period {G}" in o.what
