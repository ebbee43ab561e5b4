"""A small hand-made grid for cascade tests: two areas with a tie line and an upstream feed, three supplier
groups and two loss groups, households, a PV prosumer, a wind park, a register meter and a supplier switch."""

from __future__ import annotations

from dataclasses import dataclass

from stromledger.cascade import (
    Batch, Ledger, Outcome, Reading, Schedule, make_batch, sign_reading, sign_schedule,
)
from nodes.datagen.synthetic import GENESIS_2026, eic_for
from stromledger.crypto import SigningKey
from stromledger.ids import make_malo_id
from stromledger.registry import (
    Assignment, BalancingGroup, ChainParams, GridArea, MeterOperator, MeterPoint, Registry, Validator,
)

PERIOD = 900
G = GENESIS_2026 // PERIOD  # genesis period
A1, A2 = eic_for("TESTAREA", 1), eic_for("TESTAREA", 2)
G1, G2, G3 = eic_for("TESTBG", 1), eic_for("TESTBG", 2), eic_for("TESTBG", 3)
L1, L2 = eic_for("TESTLOSS", 1), eic_for("TESTLOSS", 2)
CHAIN = "test-chain"


def key(label: str) -> SigningKey:
    return SigningKey.from_label(f"test-{label}")


def malo(n: int) -> str:
    return make_malo_id(f"{7_000_000_000 + n:010d}")


HOUSE1, HOUSE2, PV, WIND, REG, TIE, UP, SWITCH = (malo(i) for i in range(8))
MAX_30KW = 30_000 * PERIOD // 3600  # 7500 Wh per period


def make_registry(window: int = 4) -> Registry:
    params = ChainParams(CHAIN, G, PERIOD, 60, window, 192)
    groups = [BalancingGroup(g, f"group {g}", key(g).public) for g in (G1, G2, G3, L1, L2)]
    areas = [GridArea(A1, "Area one", "Grid One GmbH", L1), GridArea(A2, "Area two", "Grid Two GmbH", L2)]
    validators = [Validator(f"validator-{i}", key(f"validator-{i}").public, (A1, A1, A2, A2)[i - 1])
                  for i in range(1, 5)]
    operator = MeterOperator("Test Metering", key("meter-operator").public)

    def mp(m, kind, source, area, group, power, out="", into=""):
        return MeterPoint(m, kind, source, area, group, operator.name, key(m).public, power, out, into)

    points = [
        mp(HOUSE1, "consumer", "grid", A1, G1, 30_000),
        mp(HOUSE2, "consumer", "grid", A2, G2, 30_000),
        mp(PV, "prosumer", "pv", A1, G2, 30_000),
        mp(WIND, "producer", "wind", A2, G3, 3_000_000),
        mp(REG, "consumer", "grid", A1, G1, 30_000),
        mp(TIE, "boundary", "grid", A1, "", 10_000_000, A1, A2),
        mp(UP, "boundary", "grid", A1, "", 10_000_000, "", A1),
        mp(SWITCH, "consumer", "grid", A2, G1, 30_000),
    ]
    return Registry(params, validators, areas, groups, [operator], points, [Assignment(SWITCH, G + 2, G3)])


@dataclass
class Net:
    """Signs test messages for the small registry."""

    registry: Registry

    def reading(self, m: str, period: int, imp: int, exp: int = 0, *, version: int = 1, register: bool = False,
                signer: SigningKey | None = None) -> Reading:
        return sign_reading(signer or key(m), self.registry.chain_id, m, period, imp, exp, version=version,
                            register=register)

    def schedule(self, frm: str, to: str, period: int, wh: int, side: str = "both") -> list[Schedule]:
        chain = self.registry.chain_id
        out = []
        if side in ("both", "from"):
            out.append(sign_schedule(key(frm), chain, frm, to, period, wh))
        if side in ("both", "to"):
            out.append(sign_schedule(key(to), chain, frm, to, period, wh))
        return out

    def batch(self, readings=(), schedules=(), signer: SigningKey | None = None) -> Batch:
        return make_batch(signer or key("meter-operator"), self.registry.chain_id, readings, schedules)

    def settle(self, ledger: Ledger, *batches: Batch) -> Outcome:
        """Admit the batches (no clock checks), propose the next seal, check a second node agrees, commit."""
        for b in batches:
            ledger.admit(b, None)
        outcome = ledger.propose()
        ledger.commit(outcome.seal_bytes)
        return outcome


def entry(ledger: Ledger, period: int, m: str) -> tuple:
    return ledger.state.entries[period][m]


def result(outcome: Outcome, period: int):
    r = outcome.seal.result(period)
    assert r is not None, f"no result for period {period}"
    return r


def group(res, eic: str):
    return next(g for g in res.groups if g.group == eic)


def area(res, eic: str):
    return next(a for a in res.areas if a.area == eic)
