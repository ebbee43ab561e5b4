"""`stromledger chaos`: fault injection against real node processes; the logic lives in nodes.chaos."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

DESCRIPTION = """\
Run a devnet (4 validators, 2 grid areas, light and balancing-group nodes, every node its own process on
127.0.0.1) per scenario, inject faults into the validators at random and targeted moments while --periods
periods settle, stop every node and check: no unexpected exit, agreement (one seal per height per chain),
no gaps, valid certificates, no double-sign, every receipted reading settled as sent, exports complete,
byte-identical across validators and verifying with the genesis, no light-node failures, version 1
complete (never all substitutes while a later version has the readings) and, for disk, clean one-line
stops. Prints a table per scenario; docs/operations.md explains the scenarios and the table.

Scenarios: kill9 (kill -9 at random moments and right after a commit), pause (SIGSTOP/SIGCONT), beyond-f
(two validators down at once, then back), disk (a read-only, then a full store for one validator), wal (a
corrupted consensus WAL record), skew (one validator's clock 3 s ahead, one 3 s behind), all (each in turn).

Exit status: 0 when every check of every scenario passed, 1 otherwise, 2 for bad arguments.
Example: stromledger chaos --scenario kill9 --periods 6 --seed 3"""


def register(sub: argparse._SubParsersAction) -> None:
    from nodes.chaos import SCENARIOS

    p = sub.add_parser("chaos", help="inject faults into a devnet's node processes and check recovery",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", required=True, choices=(*SCENARIOS, "all"), help="which faults (all: each in turn)")
    p.add_argument("--periods", type=int, default=10, help="periods to settle per scenario (default 10, at least 4)")
    p.add_argument("--seed", type=int, default=1, help="seed of the fault schedule and the devnet (default 1)")
    p.add_argument("--period-seconds", type=int, default=5, help="period length (default 5, at least 4)")
    p.add_argument("--meters", type=int, default=40, help="meter points (default 40)")
    p.add_argument("--dir", type=Path, metavar="DIR",
                   help="a new (or empty) directory for the devnets, one per scenario (default: a new temporary "
                        "directory, kept and named at the end)")
    p.set_defaults(func=_chaos)


def _chaos(args: argparse.Namespace) -> int:
    from rich.console import Console

    from nodes.chaos import SCENARIOS, result_table, run_scenario, write_summary
    from nodes.devnet import DevnetOptions

    console = Console(highlight=False)
    console.width = max(console.width, 140)
    if args.periods < 4 or args.period_seconds < 4 or args.meters < 8:
        console.print("--periods and --period-seconds must be at least 4, --meters at least 8", style="red")
        return 2
    base = args.dir or Path(tempfile.mkdtemp(prefix="stromledger-chaos-"))
    if base.exists() and any(base.iterdir()):
        console.print(f"{base} is not empty: chaos runs write into a new directory", style="red", markup=False)
        return 2
    base.mkdir(parents=True, exist_ok=True)
    options = DevnetOptions(validators=4, balancing_groups=2, meters=args.meters, periods=args.periods,
                            period_seconds=args.period_seconds, seed=args.seed)
    results = []
    for scenario in SCENARIOS if args.scenario == "all" else (args.scenario,):
        result = run_scenario(scenario, base / scenario, options, lambda line: console.print(line, markup=False))
        console.print(result_table(result))
        results.append(result)
    if len(results) > 1:
        from rich.table import Table

        summary = Table(title=f"chaos --scenario all --periods {args.periods} --seed {args.seed}", title_justify="left")
        for col in ("scenario", "faults", "seconds", "result", "failed checks"):
            summary.add_column(col)
        for r in results:
            summary.add_row(r.scenario, str(len(r.faults)), f"{r.seconds:.0f}", "PASS" if r.ok else "FAIL",
                            ", ".join(c.name for c in r.checks if not c.ok) or "-")
        console.print(summary)
    console.print(f"details (faults, checks) in {write_summary(base, results)}", markup=False)
    return 0 if all(r.ok for r in results) else 1
