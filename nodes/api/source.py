"""The narrow interface through which the API reads a running node, and nothing else: its status
document, its network's connected peers, and per chain the registry, the store, the exports
directory and (validators) light-client proofs.

A node serves one chain today; a validator serving several (per-area chains and a network chain) adds
ChainViews here and the routes stay as they are (`/chains/{chain}/...`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from stromledger.registry import Registry


@dataclass
class ChainView:
    chain_id: str
    registry: Registry
    store: Any  # stromledger.store.Store, read from the node's own trio thread
    exports_dir: Path
    light_reply: Optional[Callable[[int, tuple[str, ...]], Any]]  # async (period, malo_ids) -> LightReply | ErrorReply


class NodeSource:
    """What the API may ask of `node` (a RoleNode: ctx, reg, store, net, status())."""

    def __init__(self, node: Any):
        self._node = node
        ctx = node.ctx
        self.role = ctx.config.role
        self.name = ctx.config.name
        self.peer_name: Callable[[bytes], str] = ctx.peer_name
        self.public_key: bytes = ctx.key.public
        self._chains = {ctx.chain_id: ChainView(ctx.chain_id, node.reg, node.store, ctx.config.data_dir / "exports",
                                                getattr(node, "light_reply", None))}
        self.default_chain = ctx.chain_id

    def status(self) -> dict[str, Any]:
        return self._node.ctx.status_document(self._node.status())

    def connected_peers(self) -> set[bytes]:
        return set(self._node.net.connected_peers())

    def chains(self) -> list[ChainView]:
        return list(self._chains.values())

    def chain(self, chain_id: str) -> Optional[ChainView]:
        if chain_id == "default":
            chain_id = self.default_chain
        return self._chains.get(chain_id)
