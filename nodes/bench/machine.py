"""What machine a benchmark ran on: printed with every result, because a number without it means nothing."""

from __future__ import annotations

import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _libsodium() -> str:
    """PyNaCl bundles libsodium and does not expose its version at run time: the wheel's changelog names the
    version it bundles (a PyNaCl built against the system's libsodium would say so in its build flags)."""
    try:
        text = metadata.metadata("pynacl").get_payload() or ""
        m = re.search(r"Updated ``libsodium`` to ([0-9][\w.\-]*)", text)
        if m:
            return f"{m.group(1)} (bundled with PyNaCl, from its changelog)"
    except Exception:  # metadata layouts differ between installers
        pass
    return "bundled with PyNaCl (version not exposed)"


def describe_machine() -> dict:
    """CPU model, cores, RAM, load, OS, Python, PyNaCl and libsodium versions."""
    try:
        pynacl = metadata.version("pynacl")
    except metadata.PackageNotFoundError:
        pynacl = "?"
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "ram_gib": _ram_gib(),
        "load_avg": _load(),  # other work on a shared machine shows here
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "pynacl": pynacl,
        "libsodium": _libsodium(),
    }


def _spin(loops: int) -> None:
    x = 0
    for i in range(loops):
        x += i


def parallel_capacity(loops: int = 3_000_000) -> float | None:
    """How many cores this process really gets right now: the same CPU-bound loop in one forked process,
    then in two at once; 2.0 = two full cores, 1.0 = the two share one (other load, or a host that gives
    its virtual CPUs less than a core each). None where fork is unavailable."""
    import time

    if not hasattr(os, "fork"):
        return None

    def run(n: int) -> float:
        t = time.perf_counter()
        pids = []
        for _ in range(n):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                try:
                    _spin(loops)
                finally:
                    os._exit(0)
            pids.append(pid)
        for pid in pids:
            os.waitpid(pid, 0)
        return time.perf_counter() - t

    one = min(run(1) for _ in range(2))
    two = min(run(2) for _ in range(2))
    return round(2 * one / two, 2)


def machine_line(m: dict) -> str:
    return (f"{m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), {m['ram_gib']} GiB RAM, "
            f"load {m['load_avg']}, {m['os']}, {m['python']}, PyNaCl {m['pynacl']}, libsodium {m['libsodium']}")
