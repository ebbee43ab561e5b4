"""What every node role shares: opening its home, its key, genesis and store, a hardened libp2p network,
the status file, counters of rejected input, and a clean shutdown on SIGINT/SIGTERM."""

from __future__ import annotations

import collections
import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import trio

from stromledger.crypto import SigningKey
from stromledger.keys import read_key_file
from stromledger.registry import Registry, load_genesis

from .home import NodeConfig, load_config

PASSPHRASE_ENV = "STROMLEDGER_PASSPHRASE"


@dataclass
class NodeContext:
    config: NodeConfig
    key: SigningKey
    registry: Registry
    log: logging.Logger
    rejections: collections.Counter = field(default_factory=collections.Counter)
    started_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def chain_id(self) -> str:
        return self.registry.chain_id

    def reject(self, reason: str, detail: str, peer: bytes | None = None) -> None:
        """Every refused input is counted and logged with its reason; the node goes on."""
        self.rejections[reason] += 1
        who = f" from {peer.hex()[:12]}" if peer else ""
        self.log.warning("rejected%s: %s: %s", who, reason, detail)

    def write_status(self, doc: dict[str, Any]) -> None:
        """Atomically replace data/status.json (what `stromledger status` and the devnet read)."""
        doc = {
            "role": self.config.role,
            "name": self.config.name,
            "public_key": self.key.public.hex(),
            "chain_id": self.chain_id,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "updated_at": int(time.time()),
            "rejections": dict(sorted(self.rejections.items())),
            **doc,
        }
        path = self.config.status_path
        path.parent.mkdir(parents=True, exist_ok=True)
        _replace(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
        labels = f'node="{_escape(self.config.name)}",role="{self.config.role}"'
        _replace(path.with_name("metrics.prom"), "".join(prometheus_lines(doc, labels)))


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


# Status fields whose keys are data (reasons, counters, EICs), not names: they become a `key` label.
LABELLED = {"rejections", "net", "consensus_drops", "groups", "by_reason", "rejected_by_reason", "results"}


def prometheus_lines(doc: dict[str, Any], labels: str, prefix: str = "stromledger") -> list[str]:
    """Every number in a status document as a Prometheus sample (text format 0.0.4), for node_exporter's
    textfile collector: `stromledger_last_commit_height{node="validator-1",role="validator"} 123`."""
    out = []
    for key, value in sorted(doc.items()):
        name = f"{prefix}_{''.join(c if c.isalnum() else '_' for c in str(key))}"
        if isinstance(value, bool) or isinstance(value, int):
            out.append(f"{name}{{{labels}}} {int(value)}\n")
        elif isinstance(value, dict) and key in LABELLED:
            for sub, v in sorted(value.items()):
                sub_labels = f'{labels},key="{_escape(str(sub))}"'
                if isinstance(v, (int, bool)):
                    out.append(f"{name}{{{sub_labels}}} {int(v)}\n")
                elif isinstance(v, dict):
                    out.extend(prometheus_lines(v, sub_labels, name))
        elif isinstance(value, dict):
            out.extend(prometheus_lines(value, labels, name))
    return out


class RoleNode:
    """What every role's node object holds: its context, registry, log, store, network and clock (the
    clock is injected so tests drive time explicitly)."""

    def __init__(self, ctx: NodeContext, store: Any, net: Any, clock: Callable[[], float] = time.time):
        self.ctx = ctx
        self.reg = ctx.registry
        self.log = ctx.log
        self.store = store
        self.net = net
        self.clock = clock


def open_context(home: str | Path) -> NodeContext:
    config = load_config(home)
    key = read_key_file(config.key_path, os.environ.get(PASSPHRASE_ENV))
    registry = load_genesis(config.genesis_path)
    log = logging.getLogger(f"stromledger.{config.role}")
    return NodeContext(config=config, key=key, registry=registry, log=log)


def make_network(ctx: NodeContext):
    from stromledger.net.p2p import P2PNetwork  # imports libp2p: only in a running node

    # Registered keys may connect from the start, before the role has set its protocol handlers.
    net = P2PNetwork(ctx.key.seed, listen=ctx.config.listen, admit=ctx.registry.submitter_keys.__contains__)
    for peer in ctx.config.peers:
        if peer.key != ctx.key.public:
            net.add_peer(peer.key, peer.address)
    return net


async def run_role(ctx: NodeContext, build: Callable[..., Any]) -> int:
    """Run a role until SIGINT/SIGTERM: open the store (bound to this chain), start the network, then
    `build(ctx, store, net)` gives the node object, whose `status()` is written at once and whose `run()`
    serves until cancelled. The network stops (peers disconnected) before the store closes."""
    from stromledger.store import Store

    ctx.config.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store.open_home(ctx.config.home)
    try:
        store.check_chain(ctx.chain_id, ctx.registry.hash)
        net = make_network(ctx)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(until_signalled, nursery.cancel_scope, ctx.log)
            async with net:
                ctx.log.info("listening on %s", net.listen_addr)
                node = build(ctx, store, net)
                ctx.write_status(node.status())
                await node.run()
    finally:
        store.close()
    ctx.log.info("stopped")
    return 0


async def until_signalled(cancel_scope: trio.CancelScope, log: logging.Logger) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s: shutting down cleanly", signal.Signals(signum).name)
            cancel_scope.cancel()
            return


def now() -> int:
    return int(time.time())


def wall_ms() -> int:
    return time.time_ns() // 1_000_000
