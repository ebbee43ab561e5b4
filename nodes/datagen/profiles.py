"""Load and generation profiles of a German distribution area, from the libraries the industry uses.

- Load: the BDEW standard load profiles from demandlib (H0 with the BDEW dynamisation, G0-G6, L0-L2, with the
  German public holidays from `holidays`), looked up in local time (Europe/Berlin); industry (metered, RLM) with
  the continuous G3 shape. Heat pumps follow the heating degrees of a synthetic temperature, wallboxes charge in
  evening sessions, home batteries store the PV surplus and cover the evening.
- PV: pvlib's clear-sky irradiance (Ineichen) at the site on a 35 degree south-facing plane, times an
  autocorrelated clear-sky index (clouds), times a performance ratio.
- Wind: windpowerlib's power curves of real turbine types (Enercon E-82/2300 and E-53/800) at an
  autocorrelated, Weibull-distributed wind speed (Hellmann shear to the hub height).

Everything here is floats and numpy; what leaves the module (`Profiles.energy_wh`) is integer Wh per simulated
quarter hour. The profiles are computed per chunk of 96 consecutive quarter hours from the chosen start
(vectorised over all meter points, weather shared by the area), in order, and cached, so one devnet period is
one vector lookup. Every random draw comes from a numpy generator seeded with (seed, chunk, stream): the same
(registry, seed, start) gives the same numbers in every process.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

QUARTER_S = 900  # one simulated step is a quarter hour
STEPS = 96  # quarter hours per chunk (one day from the start)
TZ = "Europe/Berlin"  # the BDEW profiles are in local time


@dataclass(frozen=True)
class Site:
    name: str
    latitude: float
    longitude: float
    altitude_m: float


# A rural area with wind and a small town in the north German plain (Lueneburger Heide, Lower Saxony).
SITE = Site("Nordheide, Landkreis Harburg (Lower Saxony)", 53.33, 9.87, 60.0)

PV_TILT, PV_AZIMUTH = 35.0, 180.0  # a typical German roof: 35 degrees, facing south
PV_PERFORMANCE_RATIO = 0.84  # inverter, wiring, temperature and soiling losses of a modern system
WIND_REFERENCE_HEIGHT = 100.0  # m; the site's wind statistics are given at this height
WIND_WEIBULL_K = 2.0  # Rayleigh-like, as inland north German sites
WIND_MEAN_SPEED = 5.6  # m/s at 100 m: an effective mean (inland sites have 6-6.5 m/s, less wake and downtime)
WIND_STEP_CORRELATION = 0.993  # per quarter hour: a weather situation lasts about a day and a half
CLOUD_STEP_CORRELATION = 0.97  # per quarter hour: clouds change within hours
TEMP_STEP_CORRELATION = 0.995
HEATING_LIMIT_C = 15.0  # heating degrees below this outdoor temperature
HOT_WATER_SHARE = 0.15  # of a heat pump's energy, all year round

# Real turbine types from the windpowerlib (OpenEnergy database) with power curves: (type, hub height m).
# (Low-wind types such as the N117 reach 30-35 % and more; the area's fleet is of the common older types.)
TURBINES = {2_300_000: ("E-82/2300", 108.0), 800_000: ("E-53/800", 73.0)}

# The BDEW classes a demandlib ElecSlp year provides (h0_dyn: H0 with the dynamisation function).
SLP_CLASSES = ("h0_dyn", "g0", "g1", "g2", "g3", "g4", "g5", "g6", "l0", "l1", "l2")
LOAD_CLASSES = SLP_CLASSES + ("heat_pump", "wallbox")
# How much a single customer's quarter-hour load scatters around its class profile (log-normal sigma): a
# household switches kettles and ovens, a business runs machines; the sum over many is the smooth SLP.
LOAD_SCATTER = {"h0_dyn": 0.45, "l0": 0.3, "l1": 0.3, "l2": 0.3, "heat_pump": 0.2, "wallbox": 0.0}
DEFAULT_SCATTER = 0.15


def unit(*parts: object) -> float:
    """A deterministic number in [0, 1) for the given key (no shared generator state)."""
    h = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFF_FFFF, *stream])


# -- what stays the same all year: SLP years, turbine curves -------------------------------------------------


@lru_cache(maxsize=4)
def slp_year(year: int) -> pd.DataFrame:
    """demandlib's BDEW profiles for a local-time year, as W per kWh of annual energy (columns SLP_CLASSES)."""
    import holidays
    from demandlib import bdew

    # demandlib 0.2 turns every warning into an error while it builds a year (warnings.simplefilter("error"));
    # the context keeps that from leaking into the rest of the process.
    with warnings.catch_warnings():
        slp = bdew.ElecSlp(year, holidays=dict(holidays.Germany(years=year)))
    frame = slp.get_profiles(*SLP_CLASSES)
    return frame * 4000.0  # a share of the year's energy per quarter hour -> W per kWh/a


@lru_cache(maxsize=8)
def turbine_curve(capacity_w: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(wind speeds m/s, power W, hub height m) of the turbine type whose rating divides `capacity_w` (a park of
    several), else an E-82/2300 curve scaled to the capacity."""
    from windpowerlib import WindTurbine

    for rated, (kind, hub) in TURBINES.items():
        if capacity_w % rated == 0:
            break
    else:
        rated, (kind, hub) = 2_300_000, TURBINES[2_300_000]
    turbine = WindTurbine(hub_height=hub, turbine_type=kind)
    curve = turbine.power_curve
    scale = capacity_w / float(turbine.nominal_power)
    return curve["wind_speed"].to_numpy(float), curve["value"].to_numpy(float) * scale, hub


def wind_power(capacity_w: int, speed_at_reference: np.ndarray) -> np.ndarray:
    """W of a wind park of `capacity_w` at these 100 m wind speeds (windpowerlib's power curve at hub height,
    wind shear with the Hellmann exponent of open farmland)."""
    from windpowerlib import power_output

    speeds, power, hub = turbine_curve(capacity_w)
    at_hub = speed_at_reference * (hub / WIND_REFERENCE_HEIGHT) ** 0.2
    return np.asarray(power_output.power_curve(pd.Series(at_hub), speeds, power), dtype=float)


# -- the weather and the class profiles of one chunk ---------------------------------------------------------


def _ar1(innovations: np.ndarray, phi: float, start: float) -> np.ndarray:
    """A stationary unit-variance AR(1) path continuing from `start` (a plain loop: a chunk is 96 steps)."""
    scale = math.sqrt(1.0 - phi * phi)
    out = np.empty(len(innovations))
    x = start
    for i, shock in enumerate(innovations.tolist()):
        x = phi * x + scale * shock
        out[i] = x
    return out


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.array([math.erf(v / math.sqrt(2.0)) for v in z.tolist()]))


def _day_of_year(times: pd.DatetimeIndex) -> np.ndarray:
    return np.asarray(times.dayofyear, dtype=float) + np.asarray(times.hour * 60 + times.minute, dtype=float) / 1440


def temperature_c(times: pd.DatetimeIndex, anomaly: np.ndarray) -> np.ndarray:
    """Outdoor temperature: north German climate (January about 1 C, July about 18 C), a daily swing (coldest
    before sunrise) and a weather anomaly."""
    doy = _day_of_year(times)
    local_hour = np.asarray(times.hour, dtype=float) + np.asarray(times.minute, dtype=float) / 60 + 1
    seasonal = 9.5 - 8.5 * np.cos(2 * np.pi * (doy - 20) / 365.25)
    daily = -3.0 * np.cos(2 * np.pi * (local_hour - 3) / 24)
    return seasonal + daily + 3.0 * anomaly


@lru_cache(maxsize=4)
def heat_pump_norm(year: int) -> float:
    """Heating-degree quarter hours of an average year (no anomaly), so a heat pump's profile integrates to its
    annual energy."""
    times = pd.date_range(f"{year}-01-01", periods=35040, freq="15min", tz="UTC")
    return float(_heat_pump_shape(temperature_c(times, np.zeros(len(times)))).sum()) / 4.0


def _heat_pump_shape(temp: np.ndarray) -> np.ndarray:
    degrees = np.maximum(HEATING_LIMIT_C - temp, 0.0)
    return degrees + HOT_WATER_SHARE / (1 - HOT_WATER_SHARE) * 7.2  # 7.2 = the mean heating degree of a year


def pv_per_kwp(times: pd.DatetimeIndex, clear_sky_index: np.ndarray, site: Site = SITE) -> np.ndarray:
    """W per kWp of a south-facing PV system: pvlib clear-sky plane-of-array irradiance x clear-sky index x PR."""
    import pvlib

    location = pvlib.location.Location(site.latitude, site.longitude, "UTC", site.altitude_m)
    mid = times + pd.Timedelta(minutes=7.5)  # the middle of each quarter hour
    solar = location.get_solarposition(mid)
    clear = location.get_clearsky(mid, model="ineichen", solar_position=solar)
    poa = pvlib.irradiance.get_total_irradiance(PV_TILT, PV_AZIMUTH, solar["apparent_zenith"], solar["azimuth"],
                                                clear["dni"], clear["ghi"], clear["dhi"])["poa_global"]
    return np.nan_to_num(poa.to_numpy(float)) * clear_sky_index * PV_PERFORMANCE_RATIO


def mean_clear_sky_index(times: pd.DatetimeIndex) -> np.ndarray:
    """North German cloudiness: about 0.45 of the clear-sky irradiance reaches the ground in winter, 0.68 in
    summer (DWD climate normals: about 1,000-1,100 kWh/m2 a year against about 1,750 clear-sky)."""
    return 0.565 - 0.115 * np.cos(2 * np.pi * (_day_of_year(times) - 15) / 365.25)


@dataclass
class Weather:
    """One chunk's weather: the AR states carry into the next chunk."""

    clear_sky_index: np.ndarray
    wind_speed: np.ndarray  # m/s at 100 m
    temperature: np.ndarray  # C
    state: tuple[float, float, float]  # (cloud, wind, temperature) latent AR values at the chunk's end


def weather(times: pd.DatetimeIndex, seed: int, chunk: int, state: tuple[float, float, float]) -> Weather:
    rng = _rng(seed, chunk, 1)
    shocks = rng.standard_normal((3, len(times)))
    cloud = _ar1(shocks[0], CLOUD_STEP_CORRELATION, state[0])
    wind = _ar1(shocks[1], WIND_STEP_CORRELATION, state[1])
    temp = _ar1(shocks[2], TEMP_STEP_CORRELATION, state[2])
    csi = np.clip(mean_clear_sky_index(times) + 0.33 * cloud, 0.04, 1.0)
    # winter is windier: the Weibull scale swings +-18 % over the year around the annual mean
    season = 1.0 + 0.18 * np.cos(2 * np.pi * (_day_of_year(times) - 15) / 365.25)
    scale = WIND_MEAN_SPEED / 0.8862 * season  # mean of Weibull(k=2) = scale x Gamma(1.5)
    u = np.clip(_normal_cdf(wind), 1e-9, 1 - 1e-9)
    speed = scale * (-np.log1p(-u)) ** (1.0 / WIND_WEIBULL_K)
    return Weather(csi, speed, temperature_c(times, temp), (cloud[-1], wind[-1], temp[-1]))


def weather_days(seed: int, start: dt.datetime, days: int) -> tuple[pd.DatetimeIndex, Weather]:
    """The weather of `days` consecutive chunks from `start`, as Profiles sees it (for statistics)."""
    begin = pd.Timestamp(start).tz_convert("UTC").floor("15min")
    state = (0.0, 0.0, 0.0)
    parts = []
    for c in range(days):
        w = weather(pd.date_range(begin + pd.Timedelta(days=c), periods=STEPS, freq="15min"), seed, c, state)
        state = w.state
        parts.append(w)
    times = pd.date_range(begin, periods=STEPS * days, freq="15min")
    return times, Weather(*(np.concatenate([getattr(w, f) for w in parts]) for f in
                            ("clear_sky_index", "wind_speed", "temperature")), state)


def slp_power(times: pd.DatetimeIndex) -> np.ndarray:
    """(len(SLP_CLASSES), len(times)) W per kWh/a, looked up in local time (DST days included)."""
    local = times.tz_convert(TZ).tz_localize(None)
    out = np.empty((len(SLP_CLASSES), len(times)))
    years = np.asarray(local.year)
    for year in np.unique(years):
        frame = slp_year(int(year))
        pick = years == year
        out[:, pick] = frame.reindex(local[pick]).to_numpy(float).T
    return out


# -- meter points ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeterSpec:
    """What a meter point is behind the meter: a load of a class and annual energy, PV, a battery, a generator."""

    load_class: str = ""  # one of LOAD_CLASSES, "industry", or "" (none)
    annual_kwh: float = 0.0
    pv_kwp: float = 0.0
    battery_kwh: float = 0.0
    generator: str = ""  # wind, biomass, hydro, chp, ... (producers)
    rated_w: int = 0
    wallbox_w: int = 11_000


class Profiles:
    """Power and energy of many meter points, per simulated quarter hour `step` from `start` (step 0 = start).

    Chunks of 96 steps are computed in order (the weather and the batteries carry their state) and cached;
    `energy_wh(step)` is then a few vector operations over all meter points."""

    def __init__(self, specs: list[MeterSpec], seed: int, start: dt.datetime, *, cache_chunks: int = 3):
        if start.tzinfo is None:
            raise ValueError("the simulated start needs a time zone (UTC)")
        self.specs = specs
        self.seed = seed
        self.start = pd.Timestamp(start).tz_convert("UTC").floor("15min")
        self.cache_chunks = cache_chunks
        n = len(specs)
        classes = LOAD_CLASSES + ("industry",)
        self.class_index = np.array([classes.index(s.load_class) if s.load_class else -1 for s in specs])
        self.annual_kwh = np.array([s.annual_kwh for s in specs])
        self.scatter = np.array([0.0 if not s.load_class else LOAD_SCATTER.get(s.load_class, DEFAULT_SCATTER)
                                 for s in specs])
        self.pv_kwp = np.array([s.pv_kwp for s in specs])
        self.battery = np.flatnonzero([s.battery_kwh > 0 for s in specs])
        self.wallboxes = np.flatnonzero([s.load_class == "wallbox" for s in specs])
        plants: dict[tuple[str, int], list[int]] = {}  # plants of one source and rating share one profile
        for i, s in enumerate(specs):
            if s.generator and s.rated_w > 0:
                plants.setdefault((s.generator, s.rated_w), []).append(i)
        self.generators = {k: np.array(v) for k, v in plants.items()}
        self.aux = np.array([0.005 * s.rated_w if s.generator else 0.0 for s in specs])  # a plant's standstill need
        self._chunks: dict[int, dict[str, np.ndarray]] = {}
        self._states: dict[int, tuple] = {-1: ((0.0, 0.0, 0.0), np.array([0.3 * specs[i].battery_kwh * 1000
                                                                           for i in self.battery]))}
        self.n = n

    def instant(self, step: int) -> dt.datetime:
        return (self.start + pd.Timedelta(minutes=15 * step)).to_pydatetime()

    # -- chunks ------------------------------------------------------------------------------------------------

    def chunk(self, c: int) -> dict[str, np.ndarray]:
        got = self._chunks.get(c)
        if got is not None:
            return got
        if c < 0:
            raise ValueError("a step before the simulated start")
        done = max(k for k in self._states if k < c)
        for k in range(done + 1, c + 1):  # the weather and the batteries carry their state from chunk to chunk
            got = self._compute(k, *self._states[k - 1])
        if len(self._chunks) > self.cache_chunks:
            self._chunks.pop(min(self._chunks))
        return got  # type: ignore[return-value]

    def _compute(self, c: int, weather_state: tuple, soc: np.ndarray) -> dict[str, np.ndarray]:
        times = pd.date_range(self.start + pd.Timedelta(days=c), periods=STEPS, freq="15min")
        w = weather(times, self.seed, c, weather_state)
        slp = slp_power(times)
        shapes = np.vstack([slp,
                            _heat_pump_shape(w.temperature) * 1000.0 / heat_pump_norm(int(times[0].year)),
                            np.zeros(STEPS),  # wallboxes: sessions below
                            slp[SLP_CLASSES.index("g3")]])  # industry: continuous operation
        pv = pv_per_kwp(times, w.clear_sky_index)
        gen = {key: generator_power(key[0], key[1], times, w) for key in self.generators}
        wallbox = self._wallbox_sessions(c, times)
        chunk = {"shapes": shapes, "pv": pv, "gen": gen, "wallbox": wallbox,
                 "csi": w.clear_sky_index, "wind": w.wind_speed, "temp": w.temperature}
        if len(self.battery):
            chunk["battery"], soc = self._batteries(c, chunk, soc)
        self._states[c] = (w.state, soc)
        self._chunks[c] = chunk
        return chunk

    def _wallbox_sessions(self, c: int, times: pd.DatetimeIndex) -> np.ndarray:
        """(wallboxes, 96) W: on about half the days an evening session (arrival 17-21 h local) of 1-3 days' driving,
        at the wallbox's power until the car is full."""
        m = len(self.wallboxes)
        out = np.zeros((m, STEPS))
        if not m:
            return out
        rng = _rng(self.seed, c, 2)
        charges = rng.random(m) < 0.5
        energy_wh = self.annual_kwh[self.wallboxes] * 1000 / 365 * 2 * rng.uniform(0.6, 1.4, m)
        local_hour = np.asarray(times.tz_convert(TZ).hour, dtype=float)
        evening = np.flatnonzero(local_hour >= 17)
        first = evening[0] if len(evening) else STEPS
        arrival = first + rng.integers(0, 16, m)
        power = np.array([self.specs[i].wallbox_w for i in self.wallboxes], dtype=float)
        steps_needed = np.ceil(energy_wh / (power / 4)).astype(int)
        q = np.arange(STEPS)
        on = charges[:, None] & (q[None, :] >= arrival[:, None]) & (q[None, :] < (arrival + steps_needed)[:, None])
        out[on] = np.broadcast_to(power[:, None], out.shape)[on]
        return out

    def _batteries(self, c: int, chunk: dict, soc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(batteries, 96) W net at the meter (+ import, - export) of PV households with a home battery that
        charges from the PV surplus and discharges to cover the load (self-consumption), state carried over."""
        idx = self.battery
        scatter = _rng(self.seed, c, 3).standard_normal((len(idx), STEPS))
        load = self._load_of(idx, chunk["shapes"], scatter)
        pv = self.pv_kwp[idx, None] * chunk["pv"][None, :]
        cap = np.array([self.specs[i].battery_kwh * 1000 for i in idx])
        power = cap / 2  # a 10 kWh battery charges at 5 kW
        soc = soc.copy()
        net = np.empty((len(idx), STEPS))
        for q in range(STEPS):
            surplus = pv[:, q] - load[:, q]
            charge = np.minimum(np.minimum(np.maximum(surplus, 0), power), (cap - soc) * 4 / 0.95)
            discharge = np.minimum(np.minimum(np.maximum(-surplus, 0), power), soc * 4)
            soc += charge * 0.95 / 4 - discharge / 4
            net[:, q] = -surplus + charge - discharge
        return net, soc

    def _load_of(self, idx: np.ndarray, shapes: np.ndarray, scatter: np.ndarray) -> np.ndarray:
        """W of the loads of meter points `idx`: `shapes` is (classes,) W per kWh/a at one step, or (classes, 96)
        for a chunk; `scatter` standard normal draws of the same shape per meter point."""
        cls = self.class_index[idx]
        base = shapes[np.maximum(cls, 0)]
        has, sigma, annual = cls >= 0, self.scatter[idx], self.annual_kwh[idx]
        if base.ndim == 2:
            has, sigma, annual = has[:, None], sigma[:, None], annual[:, None]
        return np.where(has, annual * base * np.exp(sigma * scatter - sigma * sigma / 2), 0.0)

    # -- one step ----------------------------------------------------------------------------------------------

    def power_w(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(import W, export W) of every meter point, as the mean power of simulated quarter hour `step`."""
        c, q = divmod(step, STEPS)
        chunk = self.chunk(c)
        everyone = np.arange(self.n)
        scatter = _rng(self.seed, c, 4, q).standard_normal(self.n)
        net = self._load_of(everyone, chunk["shapes"][:, q], scatter)
        if len(self.wallboxes):
            net[self.wallboxes] = chunk["wallbox"][:, q]
        net -= self.pv_kwp * chunk["pv"][q]
        for key, idx in self.generators.items():
            net[idx] -= chunk["gen"][key][q]
        if len(self.battery):
            net[self.battery] = chunk["battery"][:, q]
        imp = np.maximum(net, 0.0)
        exp = np.maximum(-net, 0.0)
        gen_idle = (self.aux > 0) & (exp < self.aux)  # a plant standing still draws its own consumption
        imp = np.where(gen_idle, self.aux, imp)
        exp = np.where(gen_idle, 0.0, exp)
        return imp, exp

    def energy_wh(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(import Wh, export Wh) of every meter point in simulated quarter hour `step`, as int64."""
        imp, exp = self.power_w(step)
        return np.rint(imp * QUARTER_S / 3600).astype(np.int64), np.rint(exp * QUARTER_S / 3600).astype(np.int64)


def generator_power(kind: str, rated_w: int, times: pd.DatetimeIndex, w: Weather) -> np.ndarray:
    """W of a power plant of `rated_w` in this weather."""
    doy = _day_of_year(times)
    if kind == "wind":
        return wind_power(rated_w, w.wind_speed)
    if kind == "pv":
        return rated_w / 1000 * pv_per_kwp(times, w.clear_sky_index)
    if kind in ("biomass", "gas", "coal", "nuclear", "other"):  # base load: a biogas plant runs 7,500-8,000 h/a
        return np.full(len(times), 0.88 * rated_w)
    if kind == "hydro":  # run of river: high water in spring, low in late summer (about 4,500 h/a)
        return rated_w * (0.52 + 0.2 * np.cos(2 * np.pi * (doy - 80) / 365.25)) * np.ones(len(times))
    if kind == "chp":  # heat-led: runs with the heating demand (about 4,000-5,000 h/a)
        return rated_w * np.clip(0.25 + 0.05 * (HEATING_LIMIT_C - w.temperature), 0.2, 1.0)
    if kind == "battery":  # a grid battery: arbitrage would need prices; it stands by
        return np.zeros(len(times))
    raise ValueError(f"no profile for generation source {kind!r}")
