"""The narrow interface through which the API reads a running node, and nothing else: its status
document, its network's connected peers, and per chain the registry, the store, the exports
directory and (validators) light-client proofs.

A light or balancing-group node reads one chain (the genesis chain id); a validator process serves a chain
per scope the genesis seats it on (nodes/chains.py: its area chains and the network chain), each a ChainView
under its own chain id (`/chains/{chain}/...`), the network chain as the default."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from stromledger.export.committed import registry_history
from stromledger.registry import Registry


@dataclass
class ChainView:
    chain_id: str
    name: str  # its name in URLs (/chains/{name}/...): the scope ("network", an area EIC), else the chain id
    registry: Registry
    store: Any  # stromledger.store.Store, read from the node's own trio thread
    exports_dir: Path
    light_reply: Optional[Callable[[int, tuple[str, ...]], Any]]  # async (period, malo_ids) -> LightReply | ErrorReply
    # the committed registry changes as the node holds them in memory (a validator's settled state); without
    # it they are decoded from the store's latest state snapshot, which is large for a large area
    held_changes: Optional[Callable[[], tuple]] = None

    def registry_changes(self) -> tuple:
        """The chain's committed registry changes (committee changes among them)."""
        return self.held_changes() if self.held_changes is not None else registry_history(self.store)


class NodeSource:
    """What the API may ask of `node` (a RoleNode: ctx, reg, store, net, status())."""

    def __init__(self, node: Any):
        self._node = node
        ctx = node.ctx
        self.role = ctx.config.role
        self.name = ctx.config.name
        self.peer_name: Callable[[bytes], str] = ctx.peer_name
        self.public_key: bytes = ctx.key.public
        chains = getattr(node, "chains", None)  # a validator process: {scope: Validator} (nodes/chains.py)
        if chains:
            self._chains = {c.chain_id: ChainView(c.chain_id, c.scope or c.chain_id, c.reg, c.store,
                                                  c.export_root / "exports",
                                                  node.light_reply if c.is_network else c.light_reply,
                                                  lambda c=c: c.ledger.acceptor.state.changes)
                            for c in chains.values()}
            top = node.network or next(iter(chains.values()))
            self.default_chain = top.chain_id
        else:
            self._chains = {ctx.chain_id: ChainView(ctx.chain_id, ctx.chain_id, node.reg, node.store,
                                                    ctx.config.data_dir / "exports", getattr(node, "light_reply", None))}
            self.default_chain = ctx.chain_id

    def status(self) -> dict[str, Any]:
        return self._node.ctx.status_document(self._node.status())

    def connected_peers(self) -> set[bytes]:
        return set(self._node.net.connected_peers())

    def chains(self) -> list[ChainView]:
        return list(self._chains.values())

    def chain(self, name: str) -> Optional[ChainView]:
        """By "default", its URL name or its chain id."""
        if name == "default":
            name = self.default_chain
        got = self._chains.get(name)
        return got if got is not None else next((c for c in self._chains.values() if c.name == name), None)
