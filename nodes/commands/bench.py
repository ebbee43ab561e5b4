"""`stromledger bench <name>`: measure a part of the system next to its physical limit; the logic lives in
nodes.bench."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

DESCRIPTION = """\
Measure how fast this machine settles, next to the physical limit measured in the same run, and print a
table (or JSON with --json) that starts with the machine: CPU model, cores, RAM, load, Python, PyNaCl and
libsodium versions. Benchmarks report, they never fail on a slow number: the exit status is 0 when the
benchmark ran, 1 when it could not, 2 for bad arguments. docs/benchmarks.md shows results and how to read them.

  ingest     signed readings through a validator's real ingestion path (decode, verify, validate, store
             in SQLite) per second, next to raw Ed25519 verification of the same readings; 1 and 2 threads
  cascade    building, validating and committing the seal of 10k, 100k and 1M meter points (one core)
  merkle     the Merkle tree of 1M leaves, proof size and verification, next to raw SHA-256
  consensus  gate closure / proposal to commit latency of 4, 7 and 16 real validators in memory, and 4 and 7
             on real libp2p over loopback
  sim        simulated heights per second: a simulated day (96 heights) of 16 validators
  devnet     meter points settled per period by real node processes, and peak memory per node per 100k
             meter points
  country    gate closure to the national result: 10, 100 and 860 area checkpoints verified and sealed
             by a network committee of 16 (simulated consensus), and what one area validator carries
  attack     hostile input: every decoder fuzzed (crashes and non-canonical acceptances must be 0), header
             bombs (time and peak memory next to an honest batch of the same size), one reading in many
             batches (batches held and listed)
  history    the settled history on disk: a validator's resident memory at 100k meter points with correction
             windows of 4, 96, 960 and 5,760 periods (store filled synthetically), bytes on disk per settled
             reading, commit persistence and restart time
  show       print the tables of results saved with --save again
  plot       draw the charts (PNG) of results saved with --save

The machine is usually shared: close other work, or compare runs by their load average (printed).
Example: stromledger bench cascade --sizes 10000,100000,1000000 --save cascade.json"""


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x.replace("_", "")) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError("sizes must be positive")
    return values


def _positive(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return v


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of tables")
    p.add_argument("--save", type=Path, metavar="FILE", help="also write the JSON result to FILE (for `bench plot`)")


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="measure throughput and latency next to the physical limits",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="bench", metavar="NAME")

    s = sub.add_parser("ingest", help="readings per second through the ingestion path vs raw Ed25519 verify")
    s.add_argument("--readings", type=_positive, default=50_000, help="signed readings, one per meter point "
                                                                      "(default 50000)")
    s.add_argument("--batch-size", type=_positive, default=5_000, help="readings per batch (default 5000)")
    s.add_argument("--workers", type=_ints, default=tuple(range(1, (os.cpu_count() or 1) + 1)),
                   help="verify thread counts (default 1..N, N = the machine's cores)")
    s.add_argument("--in-flight", type=_positive, default=2, help="also measure with this many batches in flight, "
                                                                  "as from concurrent submitters (default 2; 1: "
                                                                  "only one batch at a time)")
    s.add_argument("--repeat", type=_positive, default=3, help="interleaved rounds; the best counts (default 3)")
    _common(s)

    s = sub.add_parser("cascade", help="build, validate and commit seals of N meter points")
    s.add_argument("--sizes", type=_ints, default=(10_000, 100_000, 1_000_000),
                   help="meter point counts (default 10000,100000,1000000: about 4 minutes and 2 GB for 1M)")
    s.add_argument("--batch-size", type=_positive, default=10_000, help="readings per batch (default 10000)")
    s.add_argument("--skip", type=float, default=0.01, help="share of meters without a reading, substituted "
                                                            "(default 0.01)")
    s.add_argument("--no-export", dest="export", action="store_false",
                   help="skip timing the billing export after the commit (about 10 s per height at 1M meter points)")
    _common(s)

    s = sub.add_parser("merkle", help="Merkle tree of N leaves and its proofs vs raw SHA-256")
    s.add_argument("--leaves", type=_positive, default=1_000_000, help="leaves (default 1000000)")
    s.add_argument("--leaf-bytes", type=_positive, default=133, help="bytes per leaf (default 133, a real leaf)")
    s.add_argument("--proofs", type=_positive, default=2_000, help="proofs extracted and verified (default 2000)")
    s.add_argument("--repeat", type=_positive, default=3, help="runs; the best counts (default 3)")
    _common(s)

    s = sub.add_parser("consensus", help="latency from gate closure and from proposal to commit")
    s.add_argument("--memory", type=_ints, default=(4, 7, 16), help="validator counts on the in-memory network "
                                                                     "(default 4,7,16; empty to skip)")
    s.add_argument("--p2p", type=_ints, default=(4, 7), help="validator counts on libp2p over loopback "
                                                             "(default 4,7; empty to skip)")
    s.add_argument("--heights", type=_positive, default=8, help="heights timed per run (default 8)")
    s.add_argument("--warmup", type=int, default=1, help="heights run first and not timed (default 1)")
    s.add_argument("--period-seconds", type=_positive, default=2, help="period length (default 2)")
    s.add_argument("--grace-seconds", type=_positive, default=1, help="gate closure after period end (default 1)")
    s.add_argument("--meters", type=_positive, default=200, help="meter points, all read each period (default 200)")
    _common(s)

    s = sub.add_parser("sim", help="simulated heights per second")
    s.add_argument("--validators", type=_positive, default=16, help="validators (default 16)")
    s.add_argument("--heights", type=_positive, default=96, help="heights per run (default 96, a day)")
    s.add_argument("--seeds", type=_positive, default=3, help="runs (default 3)")
    s.add_argument("--interval-ms", type=int, default=900_000, help="virtual time between heights (default "
                                                                     "900000, 15 minutes)")
    s.add_argument("--faults", default="none", help="none, drop, partition, crash or all (default none)")
    _common(s)

    s = sub.add_parser("devnet", help="meter points settled per period by node processes; memory per node")
    s.add_argument("--meters", type=_ints, default=(1_000, 10_000), help="devnet sizes in meter points (default "
                                                                         "1000,10000; empty to skip)")
    s.add_argument("--periods", type=_positive, default=3, help="periods per devnet (default 3)")
    s.add_argument("--period-seconds", type=_positive, default=10, help="devnet period length (default 10)")
    s.add_argument("--validators", type=_positive, default=4, help="validators (default 4)")
    s.add_argument("--inprocess", type=_ints, default=(100_000, 1_000_000),
                   help="sizes of the in-process memory measurement (default 100000,1000000; empty to skip)")
    s.add_argument("--window", type=_positive, default=4, help="correction window of the in-process "
                                                               "measurement, periods (default 4)")
    s.add_argument("--keep", action="store_true", help="keep the devnet directories (default: removed)")
    _common(s)

    s = sub.add_parser("country", help="area checkpoints into the network chain; one area validator's load")
    s.add_argument("--areas", type=_ints, default=(10, 100, 860), help="area counts (default 10,100,860)")
    s.add_argument("--groups", type=_positive, default=50, help="balancing groups with cells per area (default 50)")
    s.add_argument("--network-validators", type=_positive, default=16, help="network committee (default 16)")
    s.add_argument("--meters", type=_positive, default=20_000,
                   help="area size at which an AreaSeal rebuild is measured (default 20000)")
    s.add_argument("--area-sizes", type=_ints, default=(100_000, 1_000_000, 5_000_000),
                   help="area sizes to report one area validator's load for (default 100000,1000000,5000000)")
    s.add_argument("--heights", type=_positive, default=4, help="simulated network heights per seed (default 4)")
    s.add_argument("--seeds", type=_positive, default=2, help="simulated runs (default 2)")
    _common(s)

    s = sub.add_parser("attack", help="fuzz every decoder, header bombs, duplicate batches")
    s.add_argument("--inputs", type=_positive, default=200_000, help="mutated messages decoded (default 200000)")
    s.add_argument("--bomb-mib", type=_positive, default=4, help="size of each header bomb in MiB (default 4)")
    s.add_argument("--duplicates", type=_positive, default=300, help="distinct batches carrying one reading "
                                                                     "(default 300)")
    s.add_argument("--seed", type=int, default=1, help="seed of the generated inputs (default 1)")
    _common(s)

    s = sub.add_parser("history", help="memory, persistence and restart against the correction window")
    s.add_argument("--meters", type=_positive, default=100_000, help="meter points (default 100000)")
    s.add_argument("--windows", type=_ints, default=(4, 96, 960, 5760),
                   help="correction windows in periods (default 4,96,960,5760)")
    s.add_argument("--commits", type=_positive, default=3, help="heights settled after the restart (default 3)")
    s.add_argument("--skip", type=float, default=0.01, help="share of meter points without a reading, "
                                                           "substituted from the day before (default 0.01)")
    s.add_argument("--late", type=int, default=100, help="corrections per height for the oldest correctable "
                                                        "period (default 100)")
    s.add_argument("--directory", default=None, metavar="DIR", help="where the temporary stores go (default: the system's "
                                                     "temporary directory; about 1.6 GB at 100k meter points)")
    _common(s)

    s = sub.add_parser("show", help="print the tables of saved results again")
    s.add_argument("results", nargs="+", type=Path, metavar="FILE", help="JSON files written with --save")

    s = sub.add_parser("plot", help="draw the charts of saved results (PNG, no extra packages)")
    s.add_argument("results", nargs="+", type=Path, metavar="FILE", help="JSON files written with --save")
    s.add_argument("--out", type=Path, default=Path("docs/bench"), help="directory for the PNGs (default docs/bench)")
    p.set_defaults(func=_run, parser=p)


_OPTIONS = {
    "ingest": ("readings", "batch_size", "workers", "repeat", "in_flight"),
    "cascade": ("sizes", "batch_size", "skip", "export"),
    "merkle": ("leaves", "leaf_bytes", "proofs", "repeat"),
    "consensus": ("memory", "p2p", "heights", "warmup", "period_seconds", "grace_seconds", "meters"),
    "sim": ("validators", "heights", "seeds", "interval_ms", "faults"),
    "devnet": ("meters", "periods", "period_seconds", "validators", "inprocess", "window", "keep"),
    "country": ("areas", "groups", "network_validators", "meters", "area_sizes", "heights", "seeds"),
    "attack": ("inputs", "bomb_mib", "duplicates", "seed"),
    "history": ("meters", "windows", "commits", "skip", "late", "directory"),
}


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    if not args.bench:
        args.parser.print_help()
        return 2
    err = Console(stderr=True, highlight=False)
    if args.bench == "show":
        from nodes.bench.report import render

        console = Console(highlight=False)
        console.width = max(console.width, 140)
        for path in args.results:
            render(json.loads(path.read_text()), console)
        return 0
    if args.bench == "plot":
        from nodes.bench.charts import draw

        for path in args.results:
            for png in draw(json.loads(path.read_text()), args.out):
                err.print(f"wrote {png}")
        return 0

    from nodes.bench import run
    from nodes.bench.report import render

    options = {k: getattr(args, k) for k in _OPTIONS[args.bench]}
    if args.bench == "merkle":
        options["leaf_size"] = options.pop("leaf_bytes")
    if args.bench == "sim" and options["faults"] not in ("none", "drop", "partition", "crash", "all"):
        err.print(f"--faults must be none, drop, partition, crash or all, not {options['faults']!r}")
        return 2
    if args.bench in ("cascade", "history") and not (0 <= options["skip"] < 1):
        err.print("--skip is a share between 0 and 1")
        return 2
    from nodes.progress import progress_bar

    try:
        with progress_bar(f"bench {args.bench}", console=err) as bar:
            result = run(args.bench, progress=bar.step, **options)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a benchmark that cannot run says why
        err.print(f"[red]bench {args.bench} failed: {type(e).__name__}: {e}[/]")
        if args.log_level == "DEBUG":
            raise
        return 1
    text = json.dumps(result, indent=2)
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(text + "\n")
    if args.json:
        sys.stdout.write(text + "\n")
    else:
        console = Console(highlight=False)
        console.width = max(console.width, 140)
        render(result, console)
    return 0
