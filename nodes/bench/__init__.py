"""Benchmarks behind `stromledger bench <name>`: each measures one part of the system next to its physical
limit measured in the same run, and returns a JSON-ready dict (docs/benchmarks.md shows the numbers).

    from nodes.bench import run
    result = run("merkle", leaves=1000)      # {"bench", "machine", "options", "results", "targets", ...}

Benchmarks never assert timings; they report them. The shell-level ones (consensus, devnet) import the node
layer lazily: the bench is a tool that sits on top of the whole stack.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Callable

from .machine import describe_machine


def _ingest(**kw):
    from .ingest import run_ingest
    return run_ingest(**kw)


def _cascade(**kw):
    from .cascade import run_cascade
    return run_cascade(**kw)


def _merkle(**kw):
    from .merkle import run_merkle
    return run_merkle(**kw)


def _consensus(**kw):
    from .consensus import run_consensus
    return run_consensus(**kw)


def _sim(**kw):
    from .sim import run_sim
    return run_sim(**kw)


def _devnet(**kw):
    from .devnet import run_devnet
    return run_devnet(**kw)


def _country(**kw):
    from .country import run_country
    return run_country(**kw)


def _attack(**kw):
    from .attack import run_attack
    return run_attack(**kw)


def _history(**kw):
    from .history import run_history
    return run_history(**kw)


BENCHES: dict[str, Callable[..., dict]] = {
    "ingest": _ingest,
    "cascade": _cascade,
    "merkle": _merkle,
    "consensus": _consensus,
    "sim": _sim,
    "devnet": _devnet,
    "country": _country,
    "attack": _attack,
    "history": _history,
}


def run(name: str, progress: Callable[[str], None] = lambda s: None, **options: Any) -> dict:
    """Run one benchmark; the result carries the machine description and the options it ran with."""
    if name not in BENCHES:
        raise ValueError(f"unknown benchmark {name!r}; one of {', '.join(BENCHES)}")
    machine = describe_machine()
    started = time.time()
    wall0 = time.perf_counter()
    results = BENCHES[name](progress=progress, **options)
    targets = results.pop("targets", [])
    return {
        "bench": name,
        "started_at": dt.datetime.fromtimestamp(started, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wall_s": time.perf_counter() - wall0,
        "machine": machine,
        "load_avg_after": describe_machine()["load_avg"],
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
        "targets": targets,
        "results": results,
    }
