"""Clocks, statistics and memory readings for the benchmarks.

Wall time is what a grid operator waits for; CPU time (of this process, all threads) shows how much of a
shared machine's cores the work took, which stays meaningful when other programs compete for the cores.
"""

from __future__ import annotations

import gc
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence


@dataclass
class Lap:
    wall: float = 0.0  # seconds
    cpu: float = 0.0  # seconds of CPU of this process (all threads)


@contextmanager
def stopwatch(gc_off: bool = True) -> Iterator[Lap]:
    """Time a block. The cyclic garbage collector is paused inside (as timeit does): its pauses depend on
    what earlier code left on the heap, not on the code being timed."""
    lap = Lap()
    was = gc.isenabled()
    if gc_off:
        gc.disable()
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        yield lap
    finally:
        lap.wall = time.perf_counter() - w0
        lap.cpu = time.process_time() - c0
        if was:
            gc.enable()


def best(laps: Sequence[Lap]) -> Lap:
    """The fastest of repeated runs: the one least disturbed by other work on the machine."""
    return min(laps, key=lambda lap: lap.wall)


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[Lap, object]:
    laps, out = [], None
    for _ in range(max(1, repeat)):
        with stopwatch() as lap:
            out = fn()
        laps.append(lap)
    return best(laps), out


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100) of `values`; None if empty."""
    xs = sorted(values)
    if not xs:
        return None
    k = (len(xs) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50)


# -- memory (Linux /proc) ---------------------------------------------------------------------------------


def proc_memory(pid: int | str = "self") -> dict[str, float]:
    """Resident set now (VmRSS) and its high-water mark (VmHWM) of a process, in MiB; {} if unreadable."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    out = {}
    for key in ("VmRSS", "VmHWM"):
        m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
        if m:
            out[key] = int(m.group(1)) / 1024
    return out


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0), so a later reading is the peak of what
    ran in between. False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def rss_mb() -> float | None:
    return proc_memory().get("VmRSS")


def peak_rss_mb() -> float | None:
    return proc_memory().get("VmHWM")


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")
