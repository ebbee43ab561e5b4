"""Where a meter-point node's readings and a balancing-group node's schedules come from.

- `SimulatedFeed` (the devnet): realistic, deterministic readings for every meter point of the registry, from
  `nodes.datagen.profiles` (BDEW load profiles, pvlib, windpowerlib; the customer classes of
  nodes.datagen.grid_mix). The devnet is a time-lapse: devnet period k (= index - genesis period) stands for
  the simulated quarter hour `start + 15 min x k` and carries that quarter hour's energy (the devnet genesis
  scales the connection capacities to match). `start` defaults to the genesis time itself. Boundary meters
  (tie lines) carry the flows that leave each grid area a loss of 2-5 % of its withdrawal; the tie line to
  the grid outside the network balances the area. Every 10th meter point of each meter operator sends
  cumulative registers. Meters sign with their devnet keys (`devnet_key(meter_label(malo_id))`): devnet
  only, never production.
- `InboxFeed`: an operator drops signed readings as canonical Batch files into `data/inbox/`; the node
  submits each once its periods have ended and moves it to `data/inbox/sent/` when a validator took it, or
  to `data/inbox/refused/` (its reason in NAME.reason) when the refusal is final.
- `devnet_trades`: the schedules of the devnet's supplier groups: each buys its forecast of its portfolio
  (the truth x (1 + e), e an autocorrelated error of a few percent) at the external power exchange, or sells
  it there when its portfolio feeds in; every 7th period one schedule between two suppliers that only one side
  signs (the seal reports it). Derived from the registry and seed, so every node computes the same.

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

from nodes.datagen.grid_mix import meter_specs
from nodes.datagen.profiles import QUARTER_S, Profiles, unit as _unit

REGISTER_EVERY = 10  # every 10th (non-boundary) meter point sends cumulative registers
LOSS_RANGE = (0.02, 0.05)  # an area's grid loss as a share of its withdrawal
FORECAST_ERROR = 0.03  # standard deviation of a supplier's relative forecast error
FORECAST_CORRELATION = 0.97  # per quarter hour: errors persist for hours, as weather forecast errors do
ONE_SIDED_WH = 10_000  # the one-sided schedule's energy
ONE_SIDED_EVERY = 7  # every 7th period one schedule is signed by one side only (shows up as an issue)
_CACHE = 8

log = logging.getLogger("stromledger.feed")


def default_start(registry: Registry) -> dt.datetime:
    """The simulated quarter hour of the genesis period: the real time of day when the devnet starts."""
    t = registry.genesis_period * registry.period_seconds
    return dt.datetime.fromtimestamp(t - t % QUARTER_S, dt.timezone.utc)


def parse_start(text: str) -> dt.datetime:
    """A simulated start such as 2026-06-21T00:00 (UTC unless it names an offset), floored to its quarter
    hour. Raises ValueError."""
    try:
        t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"start {text!r} is not a time like 2026-06-21T00:00") from None
    t = t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)
    return t.replace(minute=t.minute - t.minute % 15, second=0, microsecond=0)


class SimulatedFeed:
    """Deterministic devnet readings. Any node computes every meter point's value for any period from
    (registry, seed) alone: that is how the boundary meters know the area totals."""

    def __init__(self, registry: Registry, seed: int = 1, *, start: dt.datetime | None = None,
                 energies: str | Path | None = None,
                 register_every: int = REGISTER_EVERY,
                 meter_key: Callable[[str], SigningKey] | None = None):
        self.registry = registry
        self.seed = seed
        self.start = start or default_start(registry)
        malos, specs = meter_specs(registry, seed)
        self._order = malos
        self.profiles = Profiles(specs, seed, self.start)
        self._computed: dict[int, dict[str, tuple[int, int]]] = self._load_energies(energies) if energies else {}
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

    @classmethod
    def from_config(cls, registry: Registry, cfg: dict, **options) -> SimulatedFeed:
        """The feed a node's [meter_point] or [balancing_group] table describes: seed, start, energies."""
        start = parse_start(str(cfg["start"])) if cfg.get("start") else None
        return cls(registry, int(cfg.get("seed", 1)), start=start, energies=cfg.get("energies") or None, **options)

    # -- the energies computed once per devnet ---------------------------------------------------------------

    def _cache_key(self) -> bytes:
        """What the energies depend on: the meter points (not the genesis time), the seed and the start."""
        points = repr([self.registry.meter_points[m] for m in self._order])
        return hashlib.sha256(f"{points}/{self.seed}/{self.start.isoformat()}".encode()).digest()

    def save_energies(self, path: str | Path, steps: range) -> Path:
        """Write the ordinary meter points' energies of the periods `steps` after genesis to `path` (.npz), for
        feeds of the same meter points, seed and start to load instead of computing the profiles again."""
        import numpy as np

        g = self.registry.genesis_period
        rows = [self._meter_energies(g + k) for k in steps]
        imp = np.array([[r[m][0] for m in self._order] for r in rows], dtype=np.int64).reshape(len(rows), -1)
        exp = np.array([[r[m][1] for m in self._order] for r in rows], dtype=np.int64).reshape(len(rows), -1)
        path = Path(path)
        with open(path, "wb") as f:
            np.savez(f, key=np.frombuffer(self._cache_key(), dtype=np.uint8), first=np.int64(steps.start),
                     imp=imp, exp=exp)
        return path

    def _load_energies(self, path: str | Path) -> dict[int, dict[str, tuple[int, int]]]:
        """Energies saved by save_energies for these meter points, seed and start; {} (compute them) otherwise."""
        import numpy as np

        try:
            with np.load(path) as data:
                if data["key"].tobytes() != self._cache_key():
                    log.warning("simulated energies %s are for other meter points, seed or start: computing them", path)
                    return {}
                first, imp, exp = int(data["first"]), data["imp"].tolist(), data["exp"].tolist()
        except (OSError, ValueError, KeyError) as e:
            log.warning("cannot read the simulated energies %s (%s): computing them", path, e)
            return {}
        g = self.registry.genesis_period
        return {g + first + k: dict(zip(self._order, zip(i, x))) for k, (i, x) in enumerate(zip(imp, exp))}

    def _meter_energies(self, period: int) -> dict[str, tuple[int, int]]:
        """(import Wh, export Wh) of every ordinary (non-boundary) meter point in `period`, capped at what its
        connection allows."""
        got = self._computed.get(period)
        if got is not None:
            return got
        reg = self.registry
        imp, exp = self.profiles.energy_wh(period - reg.genesis_period)
        caps = [reg.max_wh(m) for m in self._order]
        return {m: (min(i, cap), min(e, cap)) for m, i, e, cap in zip(self._order, imp.tolist(), exp.tolist(), caps)}

    def instant(self, period: int) -> dt.datetime:
        """The simulated quarter hour that `period` stands for."""
        return self.profiles.instant(period - self.registry.genesis_period)

    def meter_energy(self, malo_id: str, period: int) -> tuple[int, int]:
        """(import Wh, export Wh) of an ordinary (non-boundary) meter point in a period."""
        return self.energies(period)[malo_id]

    def energies(self, period: int) -> dict[str, tuple[int, int]]:
        """Every meter point's (import Wh, export Wh) in `period`, boundary meters included."""
        cached = self._energies.get(period)
        if cached is not None:
            return cached
        reg = self.registry
        out = dict(self._meter_energies(period))
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


def forecast_error(registry: Registry, group: str, period: int, seed: int = 1) -> float:
    """The relative error of `group`'s forecast for `period`: an AR(1) path over each simulated day's quarter
    hours (a day-ahead forecast), standard deviation FORECAST_ERROR."""
    import numpy as np

    day, q = divmod(period - registry.genesis_period, 96)
    rng = np.random.default_rng([seed & 0xFFFF_FFFF, day & 0xFFFF_FFFF, 5, int(_unit("group", group) * 2**32)])
    shocks = rng.standard_normal(q + 1)
    e = shocks[0]
    scale = (1 - FORECAST_CORRELATION ** 2) ** 0.5
    for x in shocks[1:]:
        e = FORECAST_CORRELATION * e + scale * x
    return FORECAST_ERROR * float(e)


def portfolio_wh(registry: Registry, feed: SimulatedFeed, period: int) -> dict[str, int]:
    """Each supplier group's net withdrawal (WD - INJ, Wh) in `period`: what its customers take less what its
    plants feed in, as the feed produces it."""
    net = dict.fromkeys(supplier_groups(registry), 0)
    overrides = registry.group_overrides(period)
    # a register meter's first reading is its baseline: the cascade settles 0 Wh for it in the genesis period
    baseline = feed.register_meters if period == registry.genesis_period else frozenset()
    for m, (imp, exp) in feed.energies(period).items():
        if m in registry.boundary or m in baseline:
            continue
        g = overrides.get(m, registry.meter_points[m].balancing_group)
        if g in net:
            net[g] += imp - exp
    return net


def devnet_trades(registry: Registry, period: int, seed: int = 1, feed: SimulatedFeed | None = None) -> list[Trade]:
    """The devnet suppliers' schedules in `period`. With an external party in the registry and the feed: each
    supplier buys its forecast net withdrawal at the first external party (the exchange), or sells its forecast
    net injection there. Every ONE_SIDED_EVERY-th period one more schedule between two suppliers that only its
    from side signs (the seal reports it as one-sided and does not count it)."""
    groups = supplier_groups(registry)
    trades = []
    if feed is not None and registry.external_parties:
        exchange = next(iter(registry.external_parties))
        for g, truth in portfolio_wh(registry, feed, period).items():
            wh = round(truth * (1 + forecast_error(registry, g, period, seed)))
            if wh > 0:
                trades.append(Trade(exchange, g, period, wh, False))
            elif wh < 0:
                trades.append(Trade(g, exchange, period, -wh, False))
    if len(groups) > 1 and period % ONE_SIDED_EVERY == 0:
        i = int(_unit("one-sided", seed, period) * len(groups))
        trades.append(Trade(groups[i], groups[(i + 1) % len(groups)], period, ONE_SIDED_WH, True))
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
    "InboxError", "InboxFeed", "read_batch_file", "SimulatedFeed", "Trade", "default_start", "devnet_trades",
    "forecast_error", "own_schedules", "parse_start", "portfolio_wh", "supplier_groups",
]
