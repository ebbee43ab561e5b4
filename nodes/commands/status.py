"""`stromledger status --home DIR`: is the node running, where is it, what did it last settle.

nodes.setup.home_status gathers the data (config, data/status.json, the ledger); this module prints it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

DESCRIPTION = """\
Show a node's state from its home directory; works whether the node runs or not, and changes nothing.

  node         running (its process is alive and wrote data/status.json within the last minute), stale
               (alive, but status.json is old: the node may hang), stopped, or never started
  consensus    validators: the height (= settlement period index) and round it works on, the last commit
               (period, seal hash, round, how long after gate closure), connected peers, batches, evidence
  last seal    from the ledger database: the seal's certificate (checked against the genesis), and its
               totals: per balancing group injection (INJ), withdrawal (WD), schedules in (FPI) and out
               (FPE) and imbalance (IMB = INJ + FPI - WD - FPE, positive = long); per grid area injection,
               withdrawal, exchange and loss; the network's net export; the generation mix
  evidence     conflicting readings and duplicate votes found, and refused input counted by reason
  role data    what a meter-point or balancing-group node reports (submissions, verified periods, ...)

  health       what is wrong, one line each: not running, stale, no quorum (a validator not connected to
               enough other validators: periods cannot settle), behind (2 or more periods whose gate has
               closed are not settled / verified / followed; "catching up" when it can), halted; before the
               genesis time, "genesis in N min" (validators connect to each other before it)

Energy is in Wh, exact. --json prints the same as one JSON object (for monitoring; `problems` lists the
health lines).
Exit status: 0 the node is running and healthy, 1 it is not (stopped, never started, stale, no quorum,
behind, halted: the reasons are printed), 2 DIR is not a node home."""

VALIDATOR_KEYS = {"listen", "height", "period", "round", "step", "last_commit", "commits", "last_height", "peers",
                  "peer_keys", "evidence", "batches", "consensus_drops", "net"}
COMMON_KEYS = {"role", "name", "public_key", "chain_id", "pid", "started_at", "updated_at", "rejections"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show a node's state: running?, height, last seal, evidence",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", required=True, metavar="DIR", help="the node's home directory")
    p.add_argument("--json", action="store_true", help="print everything as one JSON object")
    p.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    from nodes.home import ConfigError
    from nodes.setup import home_status

    try:
        doc = home_status(args.home, int(time.time()))
    except ConfigError as e:
        print(f"{args.home} is not a node home: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True, default=str))
    else:
        print_status(doc)
    return 1 if doc["problems"] else 0


def print_status(doc: dict[str, Any], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    from nodes.setup import describe_age, result_lines, result_tables

    console = console or Console(highlight=False)
    console.width = max(console.width, 120)
    status = doc.get("status") or {}
    node = doc["node"]

    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column()
    info.add_row("node", f"{doc['name']} ({doc['role']}) in {doc['home']}")
    info.add_row("chain", doc.get("chain_id") or f"[red]genesis unusable: {_compact(doc.get('genesis_error'))}")
    info.add_row("public key", doc.get("public_key") or "[red]key file unreadable")
    state = node["state"]
    colour = {"running": "green", "stale": "yellow"}.get(state, "red")
    line = f"[{colour}]{state}[/]"
    if node.get("pid") is not None:
        line += f", pid {node['pid']}, status.json written {describe_age(node.get('age_s'))}"
    if state == "stale":
        line += " (the process exists but does not update its status: is it stuck? see node.log)"
    info.add_row("state", line)
    problems = doc.get("problems") or []
    info.add_row("health", "[green]ok[/]" if not problems else "[red]" + _compact("; ".join(problems)) + "[/]")
    if doc.get("genesis_countdown"):
        info.add_row("genesis", doc["genesis_countdown"])
    info.add_row("listen", str(status.get("listen") or f"{doc['listen_configured']} (configured)"))
    if "unreadable" in status:
        info.add_row("status.json", f"[red]{_compact(status['unreadable'])}")

    if doc["role"] == "validator" and status:
        info.add_row("working on", f"height {status.get('height')} = period {status.get('period')}, round "
                                   f"{status.get('round')}, step {status.get('step')}")
        last = status.get("last_commit")
        if last:
            ms = last.get("ms_after_gate_closure")
            info.add_row("last commit", f"height {last['height']} ({last['period']}) seal {last['seal_hash'][:16]}..."
                                        f" round {last['round']}, " + (f"{ms} ms after gate closure" if ms is not None
                                                                        else "caught up from the other validators"))
        info.add_row("commits", f"{status.get('commits')} since start, ledger up to height {status.get('last_height')}")
        if node["running"]:
            peers = doc.get("peer_names") or []
            info.add_row("peers", f"{len(peers)} connected" + (f": {', '.join(peers)}" if peers else "")
                         + ("" if status.get("quorum", True) else " [red](no quorum)[/]"))
        else:
            info.add_row("peers", "none connected (the node is not running)")
        behind = status.get("behind_periods")
        if node["running"] and isinstance(behind, int) and behind > 0:
            info.add_row("settled up to", f"{behind} period(s) with closed gates not settled yet"
                         + (f", catching up: ledger at height {status.get('last_height')}"
                            if status.get("catching_up") else ""))
        b = status.get("batches") or {}
        info.add_row("batches", f"{b.get('received')} received since start, {b.get('pending')} waiting for a seal")
        info.add_row("evidence", str(status.get("evidence")))
        drops = status.get("consensus_drops")
        if drops:
            info.add_row("dropped msgs", ", ".join(f"{k}: {v}" for k, v in sorted(drops.items())))
    rejections = status.get("rejections")
    if status:
        info.add_row("rejected input", ", ".join(f"{k}: {v}" for k, v in rejections.items()) if rejections
                     else "none since start")
    for key in sorted(set(status) - VALIDATOR_KEYS - COMMON_KEYS - {"unreadable"}):
        info.add_row(key, _compact(status[key]))
    if doc["role"] == "validator" and status.get("net"):
        info.add_row("network", _compact(status["net"]))
    console.print(info)

    ledger = doc.get("ledger")
    if ledger is None:
        console.print("ledger: no database yet (data/ledger.sqlite3 appears when the node first runs)")
        return
    s = ledger["stats"]
    parts = [f"{s['commits']} commit(s) up to height {s['last_height']}" if s["commits"] else "no commits",
             f"{s['batches']} batch(es)", f"{s['evidence']} evidence record(s) ({s['pending_evidence']} not yet "
             "in a seal)"]
    if s.get("receipts") or s.get("outbox"):
        parts.append(f"{s.get('receipts', 0)} receipt(s), {s.get('outbox', 0)} submission(s) waiting for one")
    console.print(f"ledger: {', '.join(parts)}, {(s['db_bytes'] + s['wal_bytes']) / 1e6:.1f} MB; read via "
                  f"{ledger['access']}")
    commit = ledger.get("latest_commit")
    if commit:
        if "error" in commit:
            console.print(f"[red]last commit at height {commit['height']}: {_compact(commit['error'])}")
        else:
            cert = commit.get("certificate", "not checked")
            console.print(f"last seal: height {commit['height']} ({commit['period_iso']}), hash {commit['seal_hash']}, "
                          f"round {commit['round']}, certificate "
                          + ("[green]valid[/]" if cert == "valid" else f"[red]{_compact(cert)}[/]")
                          + f" ({commit.get('signatures')} signatures), {commit['batches']} batch(es) settled")
            extra = [f"{r['period_iso']} v{r['version']}" for r in commit["results"][:-1]]
            if extra:
                console.print(f"  corrections in this seal: {', '.join(extra)}")
            if commit["rejected"]:
                console.print("  items refused by the seal: "
                              + ", ".join(f"{k}: {v}" for k, v in commit["rejected"].items()))
            console.print(f"  evidence in this seal: {commit['reading_conflicts']} conflicting reading(s), "
                          f"{commit['vote_evidence']} duplicate vote(s)")
            if commit["results"]:
                for line in result_lines(commit["results"][-1]):
                    console.print("  " + line, markup=False)
                for table in result_tables(commit["results"][-1]):
                    console.print(table)
    if ledger["evidence"]:
        t = Table(title="evidence (newest first)", title_justify="left")
        for col in ("kind", "height", "first seen", "in seal at", "hash"):
            t.add_column(col)
        for e in ledger["evidence"]:
            t.add_row(str(e["kind"]), str(e["height"]), str(e["first_seen"]), str(e["included_height"] or "pending"),
                      e["hash"][:16])
        console.print(t)


def _compact(value: Any, limit: int = 400) -> str:
    """A status value as an operator reads it: `key value, key value`, nested in braces; markup escaped."""
    from rich.markup import escape

    text = _plain(value)
    return escape(text if len(text) <= limit else text[:limit] + " ...")


def _plain(value: Any, nested: bool = False) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        if not value:
            return "none"
        inner = ", ".join(f"{k} {_plain(v, True)}" for k, v in value.items())
        return f"{{{inner}}}" if nested else inner
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v, True) for v in value) if value else "none"
    return str(value)
