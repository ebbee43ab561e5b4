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
from typing import Any, Callable, Optional

import trio

from stromledger.crypto import SigningKey
from stromledger.keys import read_key_file
from stromledger.registry import Registry, load_genesis

from .disk import disk_problem
from .home import NodeConfig, load_config
from .metrics import NodeMetrics
from .setup import party_names

PASSPHRASE_ENV = "STROMLEDGER_PASSPHRASE"
# Fault injection for tests and `stromledger chaos` only (nodes/chaos.py); never set on a real node.
CHAOS_CLOCK_OFFSET_ENV = "STROMLEDGER_CHAOS_CLOCK_OFFSET_MS"  # milliseconds added to a validator's clock
CHAOS_DISK_ENV = "STROMLEDGER_CHAOS_DISK"  # "read-only" or "full": the stores refuse to grow once opened


@dataclass
class NodeContext:
    config: NodeConfig
    key: SigningKey
    registry: Registry
    log: logging.Logger
    rejections: collections.Counter = field(default_factory=collections.Counter)
    started_at: int = field(default_factory=lambda: int(time.time()))
    resume_signing_after_restore: bool = False  # the operator's logged override of the sign-guard check
    api_url: Optional[str] = None  # where the operator API listens, once it does
    metrics: Optional[NodeMetrics] = None
    _names: Optional[dict[str, str]] = field(default=None, init=False, repr=False)  # public key hex -> name

    def __post_init__(self) -> None:
        if self.metrics is None:
            self.metrics = NodeMetrics(self.config.name, self.config.role, self.registry.chain_id)

    @property
    def chain_id(self) -> str:
        return self.registry.chain_id

    def reject(self, reason: str, detail: str, peer: bytes | None = None) -> None:
        """Every refused input is counted and logged with its reason; the node goes on."""
        self.rejections[reason] += 1
        who = f" from {self.peer_name(peer)}" if peer else ""
        self.log.warning("rejected%s: %s: %s", who, reason, detail)

    def peer_name(self, key: bytes) -> str:
        """A peer as logs and the API name it: its registry name (validator-2, meter operator X, operator
        of EIC), else the first 12 hex digits of its key and "(unknown)"."""
        if self._names is None:
            self._names = party_names(self.registry)
        return self._names.get(key.hex()) or f"{key.hex()[:12]} (unknown)"

    def status_document(self, doc: dict[str, Any]) -> dict[str, Any]:
        """A role's status() with what every node reports: data/status.json and the API's /status."""
        return {
            "role": self.config.role,
            "name": self.config.name,
            "public_key": self.key.public.hex(),
            "chain_id": self.chain_id,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "updated_at": int(time.time()),
            "rejections": dict(sorted(self.rejections.items())),
            "api_url": self.api_url,
            **doc,
        }

    def write_status(self, doc: dict[str, Any]) -> None:
        """Atomically replace data/status.json (what `stromledger status` and the devnet read) and
        data/metrics.prom (the same numbers for node_exporter's textfile collector)."""
        doc = self.status_document(doc)
        path = self.config.status_path
        path.parent.mkdir(parents=True, exist_ok=True)
        _replace(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
        _replace(path.with_name("metrics.prom"), self.metrics.exposition(doc).decode())


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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
        # /metrics reads this node's live status and network counters at scrape time.
        ctx.metrics.bind(lambda: ctx.status_document(self.status()), lambda: dict(getattr(net, "stats", {})))


def open_context(home: str | Path) -> NodeContext:
    config = load_config(home)
    key = read_key_file(config.key_path, os.environ.get(PASSPHRASE_ENV))
    registry = load_genesis(config.genesis_path)
    log = logging.getLogger(f"stromledger.{config.role}")
    return NodeContext(config=config, key=key, registry=registry, log=log)


def make_network(ctx: NodeContext, listen: str | None = None):
    """The home's network endpoint; `listen` overrides config.toml's (a client beside the running node)."""
    from stromledger.net.p2p import P2PNetwork  # imports libp2p: only in a running node

    # Registered keys may connect from the start, before the role has set its protocol handlers.
    net = P2PNetwork(ctx.key.seed, listen=listen or ctx.config.listen, admit=ctx.registry.submitter_keys.__contains__)
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
        await serve_until_signalled(ctx, lambda net: build(ctx, store, net))
    finally:
        store.close()
    ctx.log.info("stopped")
    return 0


async def serve_until_signalled(ctx: NodeContext, build: Callable[[Any], Any]) -> None:
    """Start the network, `build(net)` the node, write its status once, run it until SIGINT/SIGTERM."""
    net = make_network(ctx)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(until_signalled, nursery.cancel_scope, ctx.log)
        async with net:
            ctx.log.info("listening on %s", net.listen_addr)
            node = build(net)
            if ctx.config.api_listen:
                from .api.server import start_api  # starlette and hypercorn: only in a running node

                ctx.api_url = await start_api(nursery, node)
            ctx.write_status(node.status())
            await node.run()


async def write_status_every(ctx: NodeContext, status: Callable[[], dict], seconds: float) -> None:
    """Keep status.json current (what `stromledger status` and the devnet read)."""
    while True:
        try:
            ctx.write_status(status())
        except OSError as e:
            if disk_problem(e) is not None:
                raise  # a full or read-only disk stops the node (nodes/disk.py)
            ctx.log.warning("cannot write status: %s", e)
        await trio.sleep(seconds)


async def until_signalled(cancel_scope: trio.CancelScope, log: logging.Logger) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s: shutting down cleanly", signal.Signals(signum).name)
            cancel_scope.cancel()
            return


def node_clock() -> Callable[[], float]:
    """A validator's clock: the wall clock, skewed by $STROMLEDGER_CHAOS_CLOCK_OFFSET_MS (chaos runs only)."""
    offset_ms = int(os.environ.get(CHAOS_CLOCK_OFFSET_ENV) or 0)
    if not offset_ms:
        return time.time
    logging.getLogger("stromledger.chaos").warning("CHAOS: this node's clock is offset by %+d ms", offset_ms)
    return lambda: time.time() + offset_ms / 1000


def chaos_disk(store) -> None:
    """$STROMLEDGER_CHAOS_DISK (chaos runs only): a store on a read-only or full disk from now on."""
    fault = os.environ.get(CHAOS_DISK_ENV)
    if fault not in ("read-only", "full"):
        return
    with store.db.read() as conn:
        if fault == "read-only":
            conn.execute("PRAGMA query_only = ON")  # every write: "attempt to write a readonly database"
        else:  # no page more: the next write that needs one gets "database or disk is full"
            conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")


def now() -> int:
    return int(time.time())


def wall_ms() -> int:
    return time.time_ns() // 1_000_000
