"""Where a meter-point node's readings and a balancing-group node's schedules come from.

- `SimulatedFeed` (the devnet): realistic, deterministic readings for every meter point of the registry, from
  `nodes.profiles`. The devnet is a time-lapse: devnet period k (= index - genesis period) stands for the
  simulated quarter-hour `simulated_instant(start, k)`; its energy is power x period length. Boundary meters
  (tie lines) carry the flows that leave each grid area a loss of 2-5 % of its withdrawal; the tie line to
  the grid outside the network balances the area. Every 10th meter point of each meter operator sends
  cumulative registers. Meters sign with their devnet keys (`devnet_key(meter_label(malo_id))`): devnet
  only, never production.
- `InboxFeed`: an operator drops signed readings as canonical Batch files into `data/inbox/`; the node
  submits each once its periods have ended and moves it to `data/inbox/sent/` when a validator took it, or
  to `data/inbox/refused/` (its reason in NAME.reason) when the refusal is final.
- `devnet_trades`: the schedules the devnet's supplier balancing groups trade, derived from the seed so both
  sides of a trade compute the same (from, to, period, Wh) without talking to each other.

Floats stay inside this module: what leaves it is integer Wh, which is what meters and groups sign.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

from stromledger.cascade import Batch, Reading, make_batch, sign_reading
from stromledger.cascade.checks import NO_SIG
from nodes.datagen.devnet_genesis import devnet_key, meter_label
from stromledger.codec import CodecError
from stromledger.crypto import SigningKey
from stromledger.registry import Registry

from .profiles import meter_power, simulated_instant, to_wh

DEVNET_START = dt.datetime(2026, 6, 15, 4, 0, tzinfo=dt.timezone.utc)  # a June sunrise: PV shows up early
REGISTER_EVERY = 10  # every 10th (non-boundary) meter point sends cumulative registers
LOSS_RANGE = (0.02, 0.05)  # an area's grid loss as a share of its withdrawal
COMMERCE_W = 50_000  # consumers from this connection size on follow the commerce profile (G0)
TRADE_W = (40_000, 400_000)  # traded power between two supplier groups, W
ONE_SIDED_EVERY = 7  # every 7th period one schedule is signed by one side only (shows up as an issue)
_CACHE = 8

log = logging.getLogger("stromledger.feed")


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) for the given key."""
    h = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def battery_power(max_power_w: int, t: dt.datetime, key: str) -> tuple[float, float]:
    """A home battery behind a household meter: charges from the grid around midday, discharges in the evening."""
    imp, exp = meter_power("consumer", "grid", max_power_w, t, key)
    hour = t.hour + t.minute / 60
    if 10 <= hour < 15:
        imp += 0.25 * max_power_w * (0.6 + 0.4 * _unit("bat", key, t.date()))
    elif 17 <= hour < 22:
        exp += 0.3 * max_power_w * (0.6 + 0.4 * _unit("bat", key, t.date()))
    net = imp - exp
    return (max(net, 0.0), max(-net, 0.0))


class SimulatedFeed:
    """Deterministic devnet readings. Any node computes every meter point's value for any period from
    (registry, seed) alone: that is how the boundary meters know the area totals."""

    def __init__(self, registry: Registry, seed: int = 1, *, start: dt.datetime = DEVNET_START,
                 register_every: int = REGISTER_EVERY,
                 meter_key: Callable[[str], SigningKey] | None = None):
        self.registry = registry
        self.seed = seed
        self.start = start
        self._meter_key = meter_key or (lambda m: devnet_key(meter_label(m)))
        self._keys: dict[str, SigningKey] = {}
        by_operator: dict[str, list[str]] = {}  # every operator's node exercises the register path
        for m in registry.malo_order:
            mp = registry.meter_points[m]
            if mp.kind != "boundary":
                by_operator.setdefault(mp.meter_operator, []).append(m)
        self.register_meters = frozenset(m for ms in by_operator.values() for m in ms[::register_every]) \
            if register_every > 0 else frozenset()
        self._energies: dict[int, dict[str, tuple[int, int]]] = {}
        self._registers: dict[str, tuple[int, int, int]] = {}  # malo -> (period, 1.8.0, 2.8.0) at period end

    # -- energies -----------------------------------------------------------------------------------------

    def instant(self, period: int) -> dt.datetime:
        return simulated_instant(self.start, period - self.registry.genesis_period)

    def meter_energy(self, malo_id: str, period: int) -> tuple[int, int]:
        """(import Wh, export Wh) of an ordinary (non-boundary) meter point in a period."""
        reg = self.registry
        mp = reg.meter_points[malo_id]
        t = self.instant(period)
        key = f"{self.seed}/{malo_id}"
        if mp.source == "battery":
            imp_w, exp_w = battery_power(mp.max_power_w, t, key)
        else:
            kind = "commerce" if mp.kind == "consumer" and mp.max_power_w >= COMMERCE_W else mp.kind
            imp_w, exp_w = meter_power(kind, mp.source, mp.max_power_w, t, key)
        cap = reg.max_wh(malo_id)
        return to_wh(imp_w, reg.period_seconds, cap), to_wh(exp_w, reg.period_seconds, cap)

    def energies(self, period: int) -> dict[str, tuple[int, int]]:
        """Every meter point's (import Wh, export Wh) in `period`, boundary meters included."""
        cached = self._energies.get(period)
        if cached is not None:
            return cached
        reg = self.registry
        out = {m: self.meter_energy(m, period) for m in reg.malo_order if m not in reg.boundary}
        settled = out
        if period == reg.genesis_period:
            # A meter's first register reading only sets its baseline: the cascade settles 0 Wh for it, so
            # the tie lines balance the area without that energy (else the area shows a negative loss).
            settled = {**out, **{m: (0, 0) for m in self.register_meters}}
        out.update(self.boundary_flows(period, settled))
        if len(self._energies) >= _CACHE:
            self._energies.pop(min(self._energies))
        self._energies[period] = out
        return out

    def boundary_flows(self, period: int, energies: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        """The boundary meters' (import, export) Wh: each area should import what its meters withdraw plus a
        loss of 2-5 %, less what they inject. Ties between two areas move half of the difference of their
        remaining needs; an area's first tie to the outside grid closes what is left."""
        reg = self.registry
        inj = dict.fromkeys(reg.grid_areas, 0)
        wd = dict.fromkeys(reg.grid_areas, 0)
        for m, (imp, exp) in energies.items():
            area = reg.meter_points[m].grid_area
            wd[area] += imp
            inj[area] += exp
        need = {}  # what each area still has to import (negative: export)
        for a in reg.grid_areas:
            lo, hi = LOSS_RANGE
            share = lo + (hi - lo) * _unit("loss", self.seed, a, period)
            need[a] = round(wd[a] * (1 + share)) - inj[a]
        flows: dict[str, tuple[int, int]] = {}
        ties = [m for m in reg.boundary if reg.meter_points[m].area_out and reg.meter_points[m].area_in]
        outside = [m for m in reg.boundary if m not in ties]
        for m in ties:  # flow x -> y (the meter's import direction)
            mp = reg.meter_points[m]
            x, y = mp.area_out, mp.area_in
            x_out = any(reg.meter_points[o].area_out == x or reg.meter_points[o].area_in == x for o in outside)
            y_out = any(reg.meter_points[o].area_out == y or reg.meter_points[o].area_in == y for o in outside)
            if not x_out:
                f = -need[x]  # x has no other way out: the tie carries all of x's need
            elif not y_out:
                f = need[y]
            else:
                f = (need[y] - need[x]) // 2
            f = self._capped(m, f)
            need[x] += f
            need[y] -= f
            flows[m] = (max(f, 0), max(-f, 0))
        closed: set[str] = set()
        for m in outside:
            mp = reg.meter_points[m]
            area = mp.area_out or mp.area_in
            into = 0 if area in closed else self._capped(m, need[area])  # energy flowing into the area
            closed.add(area)
            need[area] -= into
            # import direction = area_out -> area_in
            f = -into if mp.area_out == area else into
            flows[m] = (max(f, 0), max(-f, 0))
        return flows

    def _capped(self, malo_id: str, wh: int) -> int:
        cap = self.registry.max_wh(malo_id)
        return max(-cap, min(cap, wh))

    # -- readings -----------------------------------------------------------------------------------------

    def register_values(self, malo_id: str, period: int) -> tuple[int, int]:
        """Cumulative registers (1.8.0 import, 2.8.0 export) at the end of `period`."""
        start = self.registry.genesis_period
        got = self._registers.get(malo_id)
        if got is None or got[0] > period:
            base = int(1_000_000 + 9_000_000 * _unit("register", self.seed, malo_id))
            got = (start - 1, base, base // 7)
        t, imp, exp = got
        for p in range(t + 1, period + 1):
            i, e = self.meter_energy(malo_id, p)
            imp += i
            exp += e
        self._registers[malo_id] = (period, imp, exp)
        return imp, exp

    def values(self, malo_id: str, period: int) -> tuple[bool, int, int]:
        """(register, import, export) as the meter reports them for `period`."""
        if malo_id in self.register_meters:
            return (True, *self.register_values(malo_id, period))
        return (False, *self.energies(period)[malo_id])

    def key(self, malo_id: str) -> SigningKey:
        k = self._keys.get(malo_id)
        if k is None:
            k = self._keys[malo_id] = self._meter_key(malo_id)
        return k

    def readings(self, period: int, malo_ids: Iterable[str]) -> list[Reading]:
        """The signed readings of these meter points for `period`, in the given order."""
        chain = self.registry.chain_id
        out = []
        for m in malo_ids:
            register, imp, exp = self.values(m, period)
            out.append(sign_reading(self.key(m), chain, m, period, imp, exp, register=register))
        return out


# -- the inbox ---------------------------------------------------------------------------------------------


class InboxError(ValueError):
    pass


def read_batch_file(path: str | Path, key: SigningKey, chain_id: str) -> Batch:
    """A canonical Batch file for this chain; one whose signature is all zeros is signed with `key` (the
    submitter's) first. Raises InboxError with the reason."""
    path = Path(path)
    try:
        batch = Batch.decode(path.read_bytes())
    except CodecError as e:
        raise InboxError(f"{path.name} is not a canonical Batch: {e}") from None
    if batch.chain_id != chain_id:
        raise InboxError(f"{path.name} is a batch for chain {batch.chain_id!r}, this is {chain_id!r}")
    if batch.sig == NO_SIG:
        batch = make_batch(key, chain_id, batch.readings, batch.schedules)
    return batch


class InboxFeed:
    """Canonical Batch files dropped by the operator into `directory`. A batch whose signature is all zeros
    is signed by the node (its submitter key is set to the node's); any other is sent as it is."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.sent_dir = self.directory / "sent"
        self.refused_dir = self.directory / "refused"
        for d in (self.directory, self.sent_dir, self.refused_dir):
            d.mkdir(parents=True, exist_ok=True)

    def pending(self) -> list[Path]:
        """Files waiting, oldest name first (hidden and partial `.tmp` files are skipped)."""
        return sorted(p for p in self.directory.iterdir()
                      if p.is_file() and not p.name.startswith(".") and not p.name.endswith((".tmp", ".reason")))

    def load(self, path: Path, key: SigningKey, chain_id: str) -> Batch:
        return read_batch_file(path, key, chain_id)

    def mark_sent(self, path: Path) -> Path:
        return self._move(path, self.sent_dir)

    def mark_refused(self, path: Path, reason: str) -> Path:
        """Move a file whose refusal is final to refused/, with its one-line reason beside it (NAME.reason)."""
        dest = self._move(path, self.refused_dir)
        dest.with_name(dest.name + ".reason").write_text(reason.rstrip("\n") + "\n")
        return dest

    @staticmethod
    def _move(path: Path, directory: Path) -> Path:
        dest = directory / path.name
        n = 1
        while dest.exists():
            dest = directory / f"{path.name}.{n}"
            n += 1
        os.replace(path, dest)
        return dest


# -- schedules ---------------------------------------------------------------------------------------------


class Trade(NamedTuple):
    from_group: str
    to_group: str
    period: int
    wh: int
    one_sided: bool  # only the from group's operator signs it (a deliberate unmatched schedule)


def supplier_groups(registry: Registry) -> list[str]:
    return [g for g in registry.balancing_groups if g not in registry.loss_groups]


def devnet_trades(registry: Registry, period: int, seed: int = 1) -> list[Trade]:
    """The trades between the supplier groups in `period`: for each pair, usually one trade in a direction
    and of an energy derived from the seed; every ONE_SIDED_EVERY-th period one more schedule in the other
    direction of one pair, which only its from side signs (the seal reports it as one-sided)."""
    groups = supplier_groups(registry)
    pairs = [(a, b) for i, a in enumerate(groups) for b in groups[i + 1:]]
    seconds = registry.period_seconds
    trades = []
    reverse = {}
    for a, b in pairs:
        if _unit("trade?", seed, period, a, b) < 0.15:
            reverse[(a, b)] = (a, b)
            continue  # no trade this period
        frm, to = (a, b) if _unit("dir", seed, period, a, b) < 0.5 else (b, a)
        lo, hi = TRADE_W
        power = lo + (hi - lo) * _unit("wh", seed, period, a, b)
        trades.append(Trade(frm, to, period, max(1, round(power * seconds / 3600)), False))
        reverse[(a, b)] = (to, frm)
    if pairs and period % ONE_SIDED_EVERY == 0:
        pair = pairs[int(_unit("one-sided", seed, period) * len(pairs))]
        frm, to = reverse[pair]
        trades.append(Trade(frm, to, period, max(1, round(TRADE_W[0] * seconds / 3600)), True))
    return trades


def own_schedules(trades: Iterable[Trade], groups: Iterable[str]) -> list[tuple[str, str, int, int]]:
    """(from, to, period, Wh) of the trades an operator holding `groups` signs: both sides of normal trades,
    the from side alone of one-sided ones."""
    mine = set(groups)
    out = []
    for t in trades:
        if t.from_group in mine or (t.to_group in mine and not t.one_sided):
            out.append((t.from_group, t.to_group, t.period, t.wh))
    return out


__all__ = [
    "DEVNET_START", "InboxError", "InboxFeed", "read_batch_file", "SimulatedFeed", "Trade", "battery_power", "devnet_trades",
    "own_schedules", "supplier_groups",
]
