"""`stromledger devnet`: a whole local network in one command; the logic lives in nodes.devnet."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from nodes.datagen.devnet_genesis import DEVNET_PERIOD_SECONDS

DESCRIPTION = """\
Run a complete local network on 127.0.0.1 and check that it settles: write a fresh genesis (a unique chain
id, the first period a few seconds from now, keys derived from labels: never use them elsewhere) and a
home per node into DIR, start every node as its own process (validators, one meter-point light node per
meter operator feeding the profiles of a German distribution area (BDEW load profiles, pvlib PV,
windpowerlib wind; each period is the next simulated quarter hour from --start), one balancing-group node per
supplier group scheduling its forecast at the power exchange), show each commit as it happens, and after the
last requested period
print per period: the seal hash, the totals per balancing group and per grid area, imbalances, the
generation mix, whether every validator committed the same seal, whether every light node verified its
readings with the commit certificate and a Merkle proof, and whether every balancing-group node rebuilt
every seal identically from its batches.

Every node is then stopped (SIGTERM; SIGKILL after 10 s, reported) and its home stays in DIR: look at a
node with `stromledger status --home DIR/validator-1`, its log in DIR/validator-1/node.log, the billing
exports in DIR/validator-1/data/exports/ (every period but the last: an export is written when the next
period commits).

Exit status: 0 when every period settled with the same seal on every validator and every light and
balancing-group node verified it; 1 when a node died (its log tail is shown), the deadline (the last
period's gate closure plus at least 45 s) passed, or anything disagreed;
2 for bad arguments; 130 on Ctrl-C. Free ports are picked at start, so two devnets can run side by side.
Example: stromledger devnet --dir /tmp/devnet1 --periods 5 --period-seconds 5"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devnet", help="run a local network of node processes and check it settles",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", required=True, type=Path, metavar="DIR",
                   help="a new (or empty) directory for the genesis and the node homes")
    p.add_argument("--validators", type=int, default=4, metavar="N", help="validators, two per grid area (default 4)")
    p.add_argument("--balancing-groups", type=int, default=3, metavar="N",
                   help="supplier balancing groups, each with its own node (default 3)")
    p.add_argument("--meters", type=int, default=200, metavar="N", help="meter points, tie lines included "
                                                                        "(default 200)")
    p.add_argument("--periods", type=int, default=3, metavar="N", help="periods to settle before stopping "
                                                                       "(default 3)")
    p.add_argument("--period-seconds", type=int, default=DEVNET_PERIOD_SECONDS, metavar="SECONDS",
                   help="settlement period length; each devnet period carries the energy of the next simulated "
                        f"quarter hour (default {DEVNET_PERIOD_SECONDS}, as `stromledger genesis devnet`)")
    p.add_argument("--areas", type=int, default=2, metavar="K",
                   help="grid areas, each settled by its own area chain; every validator process also runs the "
                        "network chain (default 2)")
    p.add_argument("--seed", type=int, default=1, help="seed of the generated network and profiles (default 1)")
    p.add_argument("--start", default="", metavar="UTC",
                   help="the simulated quarter hour of the first period, e.g. 2026-06-21T00:00 (UTC); periods "
                        "follow as consecutive quarter hours (default: the real time at genesis)")
    p.add_argument("--churn", action="store_true",
                   help="registry changes while it settles: supplier switches, a new and a retired meter point "
                        "and a key rotation, effective from the fourth period; checks in the exports that each "
                        "takes effect exactly then (docs/registry.md; needs --periods 5 or more)")
    p.set_defaults(func=_devnet)


def _devnet(args: argparse.Namespace) -> int:
    from rich.console import Console

    from nodes.devnet import DevnetOptions, create_devnet, run_devnet

    console = Console(highlight=False)
    console.width = max(console.width, 120)
    options = DevnetOptions(validators=args.validators, balancing_groups=args.balancing_groups, meters=args.meters,
                            periods=args.periods, period_seconds=args.period_seconds, seed=args.seed,
                            areas=args.areas, start=args.start, churn=args.churn)
    try:
        devnet = create_devnet(args.dir, options, now=int(time.time()))
    except (ValueError, FileExistsError) as e:
        console.print(f"cannot create the devnet: {e}", markup=False, style="red")
        return 2
    return run_devnet(devnet, console)
