"""A register meter's gap: its energy is spread over the gap's periods still in the window, never all in one
quarter hour; a late reading that would re-spread periods that left the window is refused."""

from __future__ import annotations

from stromledger.cascade import MEASURED, MISSING, SUBSTITUTED, Reason

from .test_settle import rejected
from .tiny import G, HOUSE1, REG, entry


def reg(net, period, r):
    return net.reading(REG, period, r, 0, register=True)


def test_a_gap_longer_than_the_window_spreads_over_what_is_still_open(net, ledger):  # window 4
    net.settle(ledger, net.batch([reg(net, G, 10_000)]))
    for p in range(G + 1, G + 7):
        net.settle(ledger, net.batch([net.reading(HOUSE1, p, 1)]))
    out = net.settle(ledger, net.batch([reg(net, G + 7, 17_003)]))
    # G+1 and G+2 left the window as missing; G+3..G+7 share the 7003 Wh, the odd Wh to the earliest
    assert [(r.period, r.version) for r in out.seal.results] == [(G + 3, 2), (G + 4, 2), (G + 5, 2), (G + 6, 2),
                                                                 (G + 7, 1)]
    assert [out.changes[p][REG][1:3] for p in range(G + 3, G + 8)] == \
        [(SUBSTITUTED, 1401), (SUBSTITUTED, 1401), (SUBSTITUTED, 1401), (SUBSTITUTED, 1400), (MEASURED, 1400)]


def test_a_late_reading_that_would_change_final_periods_is_refused(net, ledger):
    net.settle(ledger, net.batch([reg(net, G, 10_000)]))
    for p in range(G + 1, G + 6):
        net.settle(ledger, net.batch([net.reading(HOUSE1, p, 1)]))
    net.settle(ledger, net.batch([reg(net, G + 6, 16_000)]))  # spread over G+2..G+6 (G+1 left the window)
    before = [entry(ledger, p, REG)[:4] for p in range(G + 4, G + 7)]
    out = net.settle(ledger, net.batch([reg(net, G + 4, 13_000), net.reading(HOUSE1, G + 7, 1)]))
    assert rejected(out) == {Reason.PERIOD_TOO_OLD: 1}
    assert [entry(ledger, p, REG)[:4] for p in range(G + 4, G + 7)] == before


def test_the_first_gap_period_after_a_spread_is_missing_again(net, ledger):
    net.settle(ledger, net.batch([reg(net, G, 10_000)]))
    net.settle(ledger)
    net.settle(ledger, net.batch([reg(net, G + 2, 10_200)]))
    assert entry(ledger, G + 1, REG)[1:3] == (SUBSTITUTED, 100)
    net.settle(ledger)  # no reading: missing, not the spread value carried forward
    assert entry(ledger, G + 3, REG)[1:4] == (MISSING, 0, 0)
