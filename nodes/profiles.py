"""Realistic, deterministic 15-minute load and generation profiles for the devnet.

Shapes follow the BDEW standard load profiles (H0 households, G0 commerce) and clear-sky PV at 51 N, with
seeded noise, so a devnet area looks like a real one: evening household peaks, midday PV export, a flat
CHP, a gusty wind park. Nothing here needs pandas or a network download.

Power is computed in W for a simulated instant; energy per settlement period is power x period length,
rounded to whole Wh. The devnet runs in time-lapse: each short devnet period stands for the next
simulated quarter-hour, so a few minutes of devnet show the shape of a day. Floats stay in here: what
leaves is an integer number of Wh, which is what meters sign.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math

LATITUDE = 51.0  # central Germany

# Hourly shape factors (relative to the annual mean power), winter workday, after BDEW H0 and G0.
_H0 = [0.55, 0.45, 0.40, 0.38, 0.38, 0.45, 0.75, 1.05, 1.05, 0.98, 0.95, 1.00,
       1.10, 1.05, 0.95, 0.90, 0.98, 1.20, 1.55, 1.65, 1.50, 1.30, 1.05, 0.75]
_G0 = [0.35, 0.33, 0.33, 0.33, 0.35, 0.45, 0.75, 1.25, 1.60, 1.70, 1.70, 1.65,
       1.55, 1.60, 1.60, 1.50, 1.30, 1.00, 0.70, 0.55, 0.45, 0.40, 0.38, 0.36]


def _noise(*parts: object) -> float:
    """A deterministic pseudo-random number in [0, 1) for the given key (no shared PRNG state)."""
    h = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _hour(t: dt.datetime) -> float:
    return t.hour + t.minute / 60


def _interp(shape: list[float], hour: float) -> float:
    i = int(hour) % 24
    frac = hour - int(hour)
    return shape[i] * (1 - frac) + shape[(i + 1) % 24] * frac


def _season(t: dt.datetime) -> float:
    """Households use about 20% more in winter than on average, 20% less in summer."""
    doy = t.timetuple().tm_yday
    return 1.0 + 0.2 * math.cos(2 * math.pi * (doy - 15) / 365)


def household_w(mean_w: float, t: dt.datetime, key: str) -> float:
    return mean_w * _interp(_H0, _hour(t)) * _season(t) * (0.7 + 0.6 * _noise("hh", key, t.isoformat()))


def commerce_w(mean_w: float, t: dt.datetime, key: str) -> float:
    weekend = t.weekday() >= 5
    shape = _interp(_G0, _hour(t)) * (0.45 if weekend else 1.0)
    return mean_w * shape * (0.85 + 0.3 * _noise("g0", key, t.isoformat()))


def solar_elevation_sin(t: dt.datetime, latitude: float = LATITUDE) -> float:
    doy = t.timetuple().tm_yday
    decl = math.radians(23.44) * math.sin(2 * math.pi * (doy - 81) / 365)
    solar_hour = _hour(t) + 10 / 60  # UTC to local solar time at about 10 E
    hour_angle = math.radians(15 * (solar_hour - 12))
    lat = math.radians(latitude)
    return math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour_angle)


def pv_w(peak_w: float, t: dt.datetime, key: str) -> float:
    s = solar_elevation_sin(t)
    if s <= 0:
        return 0.0
    clouds = 0.55 + 0.45 * _noise("cloud", t.strftime("%Y%m%d%H"))  # one sky for the whole area per hour
    return peak_w * (s ** 1.15) * clouds * (0.95 + 0.05 * _noise("pv", key))


def wind_w(rated_w: float, t: dt.datetime, key: str) -> float:
    # Wind speed varies slowly: interpolate between hourly seeded values, then the cubic power curve.
    hour = t.replace(minute=0, second=0, microsecond=0)
    a = _noise("wind", key, hour.isoformat())
    b = _noise("wind", key, (hour + dt.timedelta(hours=1)).isoformat())
    speed = 3 + 10 * (a + (b - a) * t.minute / 60)  # m/s
    return rated_w * min(1.0, max(0.0, (speed - 3) / 9) ** 3)


def chp_w(rated_w: float, t: dt.datetime, key: str) -> float:
    return rated_w * (0.8 + 0.15 * _noise("chp", key, t.strftime("%Y%m%d%H")))


def meter_power(kind: str, source: str, max_power_w: int, t: dt.datetime, key: str) -> tuple[float, float]:
    """(import W, export W) at the meter for a meter point of this kind and energy source."""
    if kind == "producer":
        gen = {"pv": pv_w, "wind": wind_w}.get(source, chp_w)(max_power_w * 0.95, t, key)
        aux = 0.01 * max_power_w  # own consumption of the plant when it stands still
        return (aux, 0.0) if gen < aux else (0.0, gen - aux)
    if kind == "prosumer":
        load = household_w(max_power_w * 0.05, t, key)
        gen = pv_w(max_power_w * 0.9, t, key)
        return (max(load - gen, 0.0), max(gen - load, 0.0))
    if kind == "commerce" or source == "commerce":
        return (commerce_w(max_power_w * 0.35, t, key), 0.0)
    return (household_w(max_power_w * 0.06, t, key), 0.0)


def to_wh(power_w: float, seconds: int, cap_wh: int) -> int:
    """Energy in whole Wh for a period, never above what the meter point's max power allows."""
    return max(0, min(cap_wh, round(power_w * seconds / 3600)))


def simulated_instant(start: dt.datetime, step: int) -> dt.datetime:
    """The simulated quarter-hour that devnet period number `step` stands for."""
    return start + dt.timedelta(minutes=15 * step)
