"""`stromledger sim`: run the consensus simulator over many seeds and check every run."""

from __future__ import annotations

import argparse
import time

from stromledger.sim import FAULT_KINDS, KINDS, SimConfig, Summary, run_seeds
from stromledger.sim.scenario import BYZANTINE_MODES, STRATEGIES

DESCRIPTION = """\
Run the real consensus code of N validators over a simulated network, once per seed, and check every run
for agreement (no two honest validators decide differently), validity (only accepted values are decided,
with valid commit certificates), liveness after the faults end, no double signing by honest validators,
and evidence for every equivocation seen. The same seed always replays the same run.

Faults, injected until a drawn moment when the network heals:
  none       a healthy network (5-60 ms delays, some reordering)
  drop       message loss (5-30%), duplication, slow application answers
  partition  one or two network partitions that heal
  crash      validators crash and restart from their sign guard and decided heights
  all        all of the above
--byzantine F makes F validators byzantine; --byzantine-strategy says how they attack:
  equivocate           each runs as two copies sharing one key that propose and vote different values
  selective-precommit  "decided here, locked there": one honest validator per height gets the precommits
                       and decides, the others stay locked; the byzantine validators then offer fresh
                       values (they keep no lock), and the locked validators crash and restart
  hidden-lock          one honest validator per height is locked on a value the others never saw a
                       polka for, the others lock on another one, then the byzantine validators fall
                       silent: only the locked one unlocking on the newer proof-of-lock decides it
  round-push           with every prevote a byzantine validator claims, in a nil prevote, a round 8 ahead
Consensus tolerates F < N/3; beyond that, the checker must find violations, which --allow-unsafe lets you
watch.

--areas K runs the hierarchy instead: K area committees (N validators each, F byzantine each) and a network
committee (--network-validators, F byzantine), each on its own chain id. Area decisions reach the network as
certified checkpoints; the last --stalled areas deliver theirs --stall-ms late, after the network's deadline,
so they are settled as absent and get a new version later. The checker adds the cross-level invariants:
every checkpoint the network uses is what that area's honest members decided, certified by its committee;
no checkpoint is used twice; with an honest network committee every checkpoint that came in time is used.

Exit status: 0 when no run had a violation, 1 otherwise, 2 for bad arguments.
Example: stromledger sim --validators 7 --byzantine 2 --seeds 500 --faults all
Replay one failing run exactly: the same arguments with --seed-base SEED --seeds 1.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("sim", help="simulate consensus under faults over many seeds and check it",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--validators", type=int, default=4, metavar="N", help="number of validators (default 4)")
    p.add_argument("--byzantine", type=int, default=0, metavar="F", help="equivocating validators (default 0)")
    p.add_argument("--seeds", type=int, default=100, metavar="K", help="runs, one per seed (default 100)")
    p.add_argument("--seed-base", type=int, default=0, metavar="S", help="first seed (default 0)")
    p.add_argument("--heights", type=int, default=6, metavar="H", help="heights (periods) per run (default 6)")
    p.add_argument("--faults", choices=FAULT_KINDS, default="none", help="fault kind (default none)")
    p.add_argument("--byzantine-mode", choices=BYZANTINE_MODES, default=None,
                   help="split: each copy of an equivocator talks to one half of the honest validators; "
                        "both: both copies talk to everyone (default: drawn per seed)")
    p.add_argument("--byzantine-strategy", choices=STRATEGIES, default="equivocate",
                   help="what the byzantine validators do (default equivocate; see above)")
    p.add_argument("--interval-ms", type=int, default=2000, metavar="MS",
                   help="virtual time between heights (default 2000; 900000 is a real 15-minute period)")
    p.add_argument("--value-bytes", type=int, default=256, metavar="B", help="size of proposed values (default 256)")
    p.add_argument("--areas", type=int, default=0, metavar="K",
                   help="simulate the hierarchy: K area committees and the network committee (default 0: one chain)")
    p.add_argument("--network-validators", type=int, default=None, metavar="N",
                   help="with --areas: validators of the network committee (default N)")
    p.add_argument("--stalled", type=int, default=1, metavar="S",
                   help="with --areas: areas whose checkpoints come after the network's deadline (default 1)")
    p.add_argument("--stall-ms", type=int, default=6000, metavar="MS",
                   help="with --areas: how late a stalled area's checkpoints come (default 6000)")
    p.add_argument("--picky", type=int, default=0, metavar="N",
                   help="N per mille of new proposals each honest validator refuses as incomplete or untimely "
                        "(time- and holding-dependent judgements, docs/consensus.md; default 0)")
    p.add_argument("--allow-unsafe", action="store_true",
                   help="allow F >= N/3, where the checker is expected to find violations")
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console

    from nodes.progress import progress_bar

    console = Console()
    n, f = args.validators, args.byzantine
    if n < 1 or f < 0 or f > n or args.seeds < 1 or args.heights < 1 or args.interval_ms < 0 \
            or args.value_bytes < 0:
        console.print("[red]Need --validators >= 1, 0 <= --byzantine <= N, --seeds >= 1, --heights >= 1.[/]")
        return 2
    if 3 * f >= n and not args.allow_unsafe:
        console.print(f"[red]Refusing --byzantine {f} with --validators {n}: BFT consensus tolerates fewer than "
                      f"N/3 faulty validators (at most {(n - 1) // 3} here). Pass --allow-unsafe to run beyond "
                      f"the bound and watch the checker find violations.[/]")
        return 2
    if args.areas:
        return run_hierarchy(args, console)
    base = SimConfig(seed=args.seed_base, validators=n, byzantine=f, byzantine_mode=args.byzantine_mode,
                     strategy=args.byzantine_strategy,
                     faults=args.faults, heights=args.heights, height_interval_ms=args.interval_ms,
                     value_bytes=args.value_bytes, picky_permille=max(0, min(1000, args.picky)))
    started = time.perf_counter()
    with progress_bar(f"{args.seeds} seeds", total=args.seeds) as bar:
        summary = run_seeds(base, range(args.seed_base, args.seed_base + args.seeds), progress=lambda _: bar.advance())
    console.print(summary_table(summary, args, time.perf_counter() - started))
    for seed, v in summary.examples:
        console.print(f"  seed {seed}: {v}")
    return 1 if summary.failing_seeds else 0


def summary_table(s: Summary, args, seconds: float):
    from rich.table import Table

    t = Table(title=f"stromledger sim: {args.validators} validators, {args.byzantine} byzantine "
                    f"({args.byzantine_strategy}), "
                    f"faults {args.faults}, seeds {args.seed_base}..{args.seed_base + args.seeds - 1}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("runs", str(s.runs))
    t.add_row("heights decided by all honest", f"{s.heights_decided} / {s.heights_expected}")
    t.add_row("rounds per height (mean / max)", f"{s.rounds_mean:.2f} / {s.rounds_max}")
    t.add_row("messages delivered (total / per run)", f"{s.messages} / {s.messages // max(1, s.runs)}")
    t.add_row("messages lost to faults", str(s.dropped))
    t.add_row("evidence held by honest nodes", str(s.evidence))
    _violation_rows(t, s.violations, s.failing_seeds, [k for k in KINDS if k != "cross_level"])
    t.add_row("wall time", f"{seconds:.1f} s")
    return t


def _violation_rows(t, violations, failing_seeds: list[int], kinds) -> None:
    for kind in kinds:
        count = violations.get(kind, 0)
        t.add_row(f"violations: {kind}", f"[red]{count}[/]" if count else "0")
    failing = ", ".join(map(str, failing_seeds[:10])) + (" ..." if len(failing_seeds) > 10 else "")
    t.add_row("seeds with violations", f"[red]{len(failing_seeds)}[/] ({failing})" if failing else "0")


def run_hierarchy(args, console) -> int:
    from rich.table import Table

    from stromledger.sim.hierarchy import HierarchyConfig, run_hierarchy_seeds

    m = args.network_validators or args.validators
    if args.areas < 1 or not 0 <= args.stalled <= args.areas or m < 1 or args.stall_ms < 0:
        console.print("[red]Need --areas >= 1, 0 <= --stalled <= K, --network-validators >= 1, --stall-ms >= 0.[/]")
        return 2
    if 3 * args.byzantine >= m and not args.allow_unsafe:
        console.print(f"[red]Refusing --byzantine {args.byzantine} with a network committee of {m}; pass "
                      "--allow-unsafe to run beyond the bound.[/]")
        return 2
    base = HierarchyConfig(seed=args.seed_base, areas=args.areas, validators=args.validators,
                           byzantine=args.byzantine, network_validators=m, faults=args.faults, heights=args.heights,
                           stalled=args.stalled, stall_ms=args.stall_ms, height_interval_ms=args.interval_ms,
                           byzantine_mode=args.byzantine_mode)
    started = time.perf_counter()
    s = run_hierarchy_seeds(base, range(args.seed_base, args.seed_base + args.seeds))
    t = Table(title=f"stromledger sim --areas {args.areas}: committees of {args.validators} (network {m}), "
                    f"{args.byzantine} byzantine in each, {args.stalled} stalled, faults {args.faults}, "
                    f"seeds {args.seed_base}..{args.seed_base + args.seeds - 1}")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("runs", str(s.runs))
    t.add_row("network heights decided", str(s.network_heights))
    t.add_row("areas settled as absent at their period's deadline", str(s.absent))
    t.add_row("late checkpoints used as a new version", str(s.late_versions))
    _violation_rows(t, s.violations, s.failing_seeds, KINDS)
    t.add_row("wall time", f"{time.perf_counter() - started:.1f} s")
    console.print(t)
    for seed, v in s.examples:
        console.print(f"  seed {seed}: {v}", markup=False)
    return 1 if s.failing_seeds else 0
