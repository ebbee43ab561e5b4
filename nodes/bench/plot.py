"""A tiny pure-Python plotter for the benchmark charts (PNG, standard library only: zlib for the encoding).

Line charts (linear or log axes, markers, reference lines, a legend) and grouped bar charts, with a 5x7
bitmap font. Enough for docs/bench/*.png; nothing here is needed to run a benchmark.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

_GLYPHS = {
    "A": ".###.#...##...#######...##...##...#", "B": "####.#...##...#####.#...##...#####.",
    "C": ".###.#...##....#....#....#...#.###.", "D": "####.#...##...##...##...##...#####.",
    "E": "######....#....####.#....#....#####", "F": "######....#....####.#....#....#....",
    "G": ".###.#...##....#.####...##...#.####", "H": "#...##...##...#######...##...##...#",
    "I": ".###...#....#....#....#....#...###.", "J": "..###...#....#....#....#.#..#..##..",
    "K": "#...##..#.#.#..##...#.#..#..#.#...#", "L": "#....#....#....#....#....#....#####",
    "M": "#...###.###.#.##.#.##...##...##...#", "N": "#...##...###..##.#.##..###...##...#",
    "O": ".###.#...##...##...##...##...#.###.", "P": "####.#...##...#####.#....#....#....",
    "Q": ".###.#...##...##...##.#.##..#..##.#", "R": "####.#...##...#####.#.#..#..#.#...#",
    "S": ".#####....#.....###.....#....#####.", "T": "#####..#....#....#....#....#....#..",
    "U": "#...##...##...##...##...##...#.###.", "V": "#...##...##...##...##...#.#.#...#..",
    "W": "#...##...##...##.#.##.#.##.#.#.#.#.", "X": "#...##...#.#.#...#...#.#.#...##...#",
    "Y": "#...##...#.#.#...#....#....#....#..", "Z": "#####....#...#...#...#...#....#####",
    "0": ".###.#...##..###.#.###..##...#.###.", "1": "..#...##....#....#....#....#...###.",
    "2": ".###.#...#....#...#...#...#...#####", "3": "#####...#...#.....#.....##...#.###.",
    "4": "...#...##..#.#.#..#.#####...#....#.", "5": "######....####.....#....##...#.###.",
    "6": "..##..#...#....####.#...##...#.###.", "7": "#####....#...#...#...#....#....#...",
    "8": ".###.#...##...#.###.#...##...#.###.", "9": ".###.#...##...#.####....#...#..##..",
    " ": "." * 35, ".": "." * 25 + ".##...##..", ",": "." * 20 + ".##....#...#...",
    "-": "." * 15 + "#####" + "." * 15, "/": ".........#...#...#...#...#.........",
    "%": "##...##..#...#...#...#...#..##...##", "(": "...#...#...#....#....#.....#.....#.",
    ")": ".#.....#.....#....#....#...#...#...", "+": ".......#....#..#####..#....#.......",
    ":": "......##...##........##...##.......", "=": "..........#####.....#####..........",
    "<": "...#...#...#...#.....#.....#.....#.", ">": ".#.....#.....#.....#...#...#...#...",
    "_": "." * 30 + "#####", "µ": ".....#...##...##...##..#####.##....",
    "'": "..#....#....#......................",
}
_W, _H = 5, 7

WHITE, BLACK, GREY, LIGHT = (255, 255, 255), (30, 30, 30), (120, 120, 120), (225, 225, 225)
COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75)]


class Canvas:
    def __init__(self, width: int, height: int, bg: tuple[int, int, int] = WHITE):
        self.w, self.h = width, height
        self.px = bytearray(bytes(bg) * (width * height))

    def dot(self, x: int, y: int, c: tuple[int, int, int]) -> None:
        if 0 <= x < self.w and 0 <= y < self.h:
            i = 3 * (y * self.w + x)
            self.px[i:i + 3] = bytes(c)

    def rect(self, x0: int, y0: int, x1: int, y1: int, c: tuple[int, int, int]) -> None:
        x0, x1 = sorted((max(0, x0), min(self.w - 1, x1)))
        y0, y1 = sorted((max(0, y0), min(self.h - 1, y1)))
        row = bytes(c) * (x1 - x0 + 1)
        for y in range(y0, y1 + 1):
            i = 3 * (y * self.w + x0)
            self.px[i:i + len(row)] = row

    def line(self, x0: float, y0: float, x1: float, y1: float, c, width: int = 1, dash: int = 0) -> None:
        steps = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        r = width // 2
        for s in range(steps + 1):
            if dash and (s // dash) % 2:
                continue
            t = s / steps
            x, y = round(x0 + (x1 - x0) * t), round(y0 + (y1 - y0) * t)
            if width == 1:
                self.dot(x, y, c)
            else:
                self.rect(x - r, y - r, x + r, y + r, c)

    def text(self, x: int, y: int, s: str, c=BLACK, scale: int = 2, anchor: str = "left") -> None:
        width = text_width(s, scale)
        if anchor == "center":
            x -= width // 2
        elif anchor == "right":
            x -= width
        for ch in s:
            g = _GLYPHS.get(ch) or _GLYPHS.get(ch.upper()) or _GLYPHS["-"]
            g = g.ljust(_W * _H, ".")
            for row in range(_H):
                for col in range(_W):
                    if g[row * _W + col] == "#":
                        self.rect(x + col * scale, y + row * scale, x + col * scale + scale - 1,
                                  y + row * scale + scale - 1, c)
            x += (_W + 1) * scale

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(self.px[3 * y * self.w:3 * (y + 1) * self.w]) for y in range(self.h))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def text_width(s: str, scale: int = 2) -> int:
    return len(s) * (_W + 1) * scale - scale


def fmt(v: float) -> str:
    """Compact axis labels: 10K, 1M, 0.5, 25."""
    a = abs(v)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if a >= div:
            x = v / div
            return f"{x:.0f}{suffix}" if x == int(x) else f"{x:.1f}{suffix}"
    if a == 0 or a >= 10:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.3f}".rstrip("0").rstrip(".")


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        return [10.0 ** k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]
    span = hi - lo or abs(hi) or 1.0
    raw = span / 6
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    return [start + i * step for i in range(int(math.ceil((hi - start) / step)) + 1)]


@dataclass
class Series:
    label: str
    points: list[tuple[float, float]]
    color: tuple[int, int, int] | None = None
    dashed: bool = False


@dataclass
class Chart:
    title: str
    x_label: str
    y_label: str
    series: list[Series] = field(default_factory=list)
    x_log: bool = False
    y_log: bool = False
    y_zero: bool = True
    refs: list[tuple[float, str]] = field(default_factory=list)  # horizontal reference lines (y, label)
    width: int = 960
    height: int = 560

    def render(self) -> bytes:
        cv = Canvas(self.width, self.height)
        left, right, top, bottom = 110, self.width - 30, 78, self.height - 70
        xs = [x for s in self.series for x, _ in s.points]
        ys = [y for s in self.series for _, y in s.points] + [y for y, _ in self.refs]
        x_lo, x_hi = min(xs), max(xs)
        y_lo, y_hi = min(ys), max(ys)
        if self.y_zero and not self.y_log:
            y_lo = min(0.0, y_lo)
        if self.x_log:
            x_lo, x_hi = 10 ** math.floor(math.log10(x_lo)), 10 ** math.ceil(math.log10(x_hi))
        if self.y_log:
            y_lo, y_hi = 10 ** math.floor(math.log10(y_lo)), 10 ** math.ceil(math.log10(y_hi))
        xt, yt = _ticks(x_lo, x_hi, self.x_log), _ticks(y_lo, y_hi * (1.0 if self.y_log else 1.08), self.y_log)
        if not self.x_log:
            x_lo, x_hi = min(x_lo, xt[0]), max(x_hi, xt[-1])
        y_lo, y_hi = min(y_lo, yt[0]), max(y_hi, yt[-1])

        def fx(v: float) -> float:
            a, b, t = (math.log10(x_lo), math.log10(x_hi), math.log10(v)) if self.x_log else (x_lo, x_hi, v)
            return left + (t - a) / ((b - a) or 1) * (right - left)

        def fy(v: float) -> float:
            a, b, t = (math.log10(y_lo), math.log10(y_hi), math.log10(v)) if self.y_log else (y_lo, y_hi, v)
            return bottom - (t - a) / ((b - a) or 1) * (bottom - top)

        cv.text(self.width // 2, 14, self.title, scale=2, anchor="center")
        cv.text(left, 46, self.y_label, GREY, scale=2)
        for t in yt:
            if y_lo <= t <= y_hi:
                y = round(fy(t))
                cv.line(left, y, right, y, LIGHT)
                cv.text(left - 10, y - 7, fmt(t), GREY, anchor="right")
        for t in xt:
            if x_lo <= t <= x_hi:
                x = round(fx(t))
                cv.line(x, top, x, bottom, LIGHT)
                cv.text(x, bottom + 10, fmt(t), GREY, anchor="center")
        cv.line(left, bottom, right, bottom, BLACK, 2)
        cv.line(left, top, left, bottom, BLACK, 2)
        cv.text((left + right) // 2, self.height - 30, self.x_label, GREY, anchor="center")
        for y, label in self.refs:
            py = round(fy(y))
            cv.line(left, py, right, py, (200, 30, 30), 2, dash=8)
            cv.text(right - 6, py - 20, label, (200, 30, 30), anchor="right")
        for i, s in enumerate(self.series):
            c = s.color or COLORS[i % len(COLORS)]
            pts = [(fx(x), fy(y)) for x, y in sorted(s.points)]
            for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
                cv.line(x0, y0, x1, y1, c, 3, dash=10 if s.dashed else 0)
            for x, y in pts:
                cv.rect(round(x) - 4, round(y) - 4, round(x) + 4, round(y) + 4, c)
        _legend(cv, [(s.label, s.color or COLORS[i % len(COLORS)]) for i, s in enumerate(self.series)],
                left + 14, top + 10)
        return cv.png()


def _legend(cv: Canvas, items: list[tuple[str, tuple]], x: int, y: int) -> None:
    if not items:
        return
    w = max(text_width(label) for label, _ in items) + 46
    cv.rect(x - 6, y - 6, x + w, y + 22 * len(items) - 2, (250, 250, 250))
    for i, (label, c) in enumerate(items):
        cv.rect(x, y + 22 * i + 3, x + 24, y + 22 * i + 9, c)
        cv.text(x + 34, y + 22 * i, label)


@dataclass
class Bars:
    title: str
    y_label: str
    groups: list[str]
    series: list[tuple[str, list[float]]]  # (label, one value per group)
    refs: list[tuple[float, str]] = field(default_factory=list)
    width: int = 960
    height: int = 560

    def render(self) -> bytes:
        cv = Canvas(self.width, self.height)
        left, right, top, bottom = 110, self.width - 30, 78, self.height - 70
        hi = max([v for _, vs in self.series for v in vs] + [y for y, _ in self.refs]) * 1.12
        yt = _ticks(0.0, hi, False)
        hi = max(hi, yt[-1])

        def fy(v: float) -> float:
            return bottom - v / hi * (bottom - top)

        cv.text(self.width // 2, 14, self.title, anchor="center")
        cv.text(left, 46, self.y_label, GREY)
        for t in yt:
            y = round(fy(t))
            cv.line(left, y, right, y, LIGHT)
            cv.text(left - 10, y - 7, fmt(t), GREY, anchor="right")
        n, k = len(self.groups), len(self.series)
        slot = (right - left) / n
        bar = slot * 0.8 / k
        for g, name in enumerate(self.groups):
            x0 = left + g * slot + slot * 0.1
            for i, (_, values) in enumerate(self.series):
                c = COLORS[i % len(COLORS)]
                cv.rect(round(x0 + i * bar), round(fy(values[g])), round(x0 + (i + 1) * bar) - 3, bottom, c)
                cv.text(round(x0 + (i + 0.5) * bar), round(fy(values[g])) - 18, fmt(values[g]), BLACK,
                        anchor="center")
            cv.text(round(left + (g + 0.5) * slot), bottom + 10, name, GREY, anchor="center")
        for y, label in self.refs:
            py = round(fy(y))
            cv.line(left, py, right, py, (200, 30, 30), 2, dash=8)
            cv.text(right - 6, py - 20, label, (200, 30, 30), anchor="right")
        cv.line(left, bottom, right, bottom, BLACK, 2)
        cv.line(left, top, left, bottom, BLACK, 2)
        _legend(cv, [(label, COLORS[i % len(COLORS)]) for i, (label, _) in enumerate(self.series)], left + 14,
                top + 10)
        return cv.png()


def write(path: str | Path, chart: Chart | Bars) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(chart.render())
    return path
