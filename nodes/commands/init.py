"""`stromledger init`: create a node home for a validator, balancing-group or meter-point node.

The logic lives in nodes.setup.init_home; this module parses arguments and prints.
"""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Create the home directory of a node: config.toml, the node key (node.key, mode 0600), a copy of the
genesis (genesis.toml and the meter-point CSV file it pins) and data/. Then start the node with
`stromledger node run --home DIR` and watch it with `stromledger status --home DIR`.

The node key must be registered in the genesis for the role:
  validator        its public key is a [[validators]] public_key (run by a grid operator)
  balancing-group  its public key is the operator_key of the [[balancing_groups]] it serves (a BRP)
  meter-point      its public key is a [[meter_operators]] public_key (a meter operator's light node)
init refuses with a message otherwise. Without --key, a new key is generated: if the genesis does not list it
yet, init keeps it in DIR/node.key, prints its public key and stops; have the key added to the genesis, then
run the same init again with the updated --genesis.

Examples:
  stromledger keys gen --out /secure/validator.key         # prints the public key for the genesis
  stromledger init --role validator --home /srv/stromledger/val1 --genesis genesis.toml \\
      --key /secure/validator.key --listen /ip4/0.0.0.0/tcp/7411 \\
      --peer 130de3c4...@/ip4/10.0.0.2/tcp/7411 --peer e16c4939...@/dns4/val3.example.net/tcp/7411
  stromledger init --role meter-point --home mp --genesis genesis.toml --key mo.key --feed inbox \\
      --peer e3c78cc8...@/ip4/10.0.0.1/tcp/7411
  stromledger init --role balancing-group --home brp --genesis genesis.toml --key brp.key \\
      --groups 11YDEVBG1------N --peer e3c78cc8...@/ip4/10.0.0.1/tcp/7411

docs/operations.md describes every setting of config.toml, ports, logs, backups and upgrades."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="create a node home (config, key, genesis copy)", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--role", required=True, choices=("validator", "balancing-group", "meter-point"),
                   help="what this node is: validator (grid operators), balancing-group (balance responsible "
                        "parties), meter-point (meter operators' light nodes)")
    p.add_argument("--home", required=True, metavar="DIR", help="the node's home directory (created; must not "
                                                                "hold a config.toml yet)")
    p.add_argument("--genesis", required=True, metavar="FILE", help="the chain's genesis.toml; its meter-point "
                                                                    "CSV file is copied along")
    p.add_argument("--key", metavar="FILE", help="an existing key file (from `stromledger keys gen`), copied into "
                                                 "the home with mode 0600; default: DIR/node.key if it exists, "
                                                 "else a new key")
    p.add_argument("--name", help="the node's name in logs and status (default: its name in the genesis)")
    p.add_argument("--listen", metavar="MULTIADDR",
                   help="where the node accepts connections; validators: a fixed port the other validators can "
                        "reach (default /ip4/0.0.0.0/tcp/7411); other roles only dial out (default "
                        "/ip4/127.0.0.1/tcp/0, any free port)")
    p.add_argument("--peer", action="append", default=[], metavar="KEYHEX@MULTIADDR",
                   help="a validator to connect to: its public key (hex, as in the genesis) @ its address, e.g. "
                        "e3c7...2da4@/ip4/10.0.0.1/tcp/7411; repeat for each (a validator lists all the others)")
    p.add_argument("--groups", metavar="EIC,...", help="balancing-group: the EICs of the balancing groups this "
                                                       "node serves (default: every group its key operates)")
    p.add_argument("--feed", choices=("simulated", "inbox"),
                   help="meter-point: where readings come from: inbox = signed batches dropped into "
                        "DIR/data/inbox by the head-end system (default); simulated = made-up readings for a "
                        "devnet")
    p.add_argument("--schedules", choices=("none", "simulated"),
                   help="balancing-group: none = the node only follows and re-verifies the seals (default; send "
                        "schedules as signed batches); simulated = made-up trades between devnet groups")
    p.add_argument("--seed", type=int, help="with --feed simulated or --schedules simulated: the seed of the "
                                            "simulated data")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_init)


def _init(args: argparse.Namespace) -> int:
    import json

    from nodes.home import ConfigError, parse_peer
    from nodes.setup import InitError, init_home

    try:
        peers = [parse_peer(p) for p in args.peer]
    except ConfigError as e:
        print(f"--peer: {e}", file=sys.stderr)
        return 2
    groups = [g.strip() for g in args.groups.split(",") if g.strip()] if args.groups else None
    if groups and args.role != "balancing-group":
        print("--groups is a balancing-group option", file=sys.stderr)
        return 2
    try:
        result = init_home(args.home, args.role, args.genesis, key_file=args.key, name=args.name,
                           listen=args.listen, peers=peers, groups=groups, feed=args.feed, seed=args.seed, schedules=args.schedules)
    except InitError as e:
        print(f"init refused: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"init failed: {e}", file=sys.stderr)
        return 1
    c = result.config
    if args.json:
        print(json.dumps({"home": str(c.home), "role": c.role, "name": c.name, "public_key": result.public_key.hex(),
                          "key": result.key_origin, "chain_id": result.registry.chain_id, "listen": c.listen,
                          "peers": len(c.peers), "warnings": result.warnings}, indent=2))
        return 0
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"created {c.role} home {c.home} for chain {result.registry.chain_id}")
    print(f"  name        {c.name}")
    print(f"  key         {c.key_path} ({result.key_origin}), public key {result.public_key.hex()}")
    print(f"  genesis     {c.genesis_path} (registry hash {result.registry.hash.hex()})")
    print(f"  listen      {c.listen}")
    print(f"  peers       {len(c.peers)}")
    if c.balancing_group:
        print(f"  groups      {', '.join(c.balancing_group['groups'])}")
        print(f"  schedules   {c.balancing_group['schedules']}")
    if c.meter_point:
        print(f"  feed        {c.meter_point['feed']}")
    print(f"start it with: stromledger node run --home {c.home}")
    return 0
