"""A validator process's chains: one chain node (nodes/validator.py) per scope the genesis seats it on.

Each grid area's committee runs that area's chain; the network committee runs the network chain; one
operator's validator may sit on several (registry/scopes.py). `ValidatorChains` starts one `Validator` per
scope with the scope's registry view, its own store (`<data>/chains/<scope>.sqlite3`), its own consensus
machine, sign guard and WAL, and its own protocol ids (`/stromledger/consensus/1/<scope>`, ...), all on
the process's one network endpoint. No level has a copy of the shell: a chain is a chain.

When an area chain commits a height, its checkpoint (the AreaSeal, its certificate and the tie-line
proofs) goes to the network chain: straight in if this process runs it, and pushed to every network
committee member over `/stromledger/checkpoint/1` (receivers verify it with the genesis alone and keep
each area seal once, so duplicates from several area members cost one verification each).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Optional

import trio

from stromledger.consensus.config import ConsensusConfig
from stromledger.registry import NETWORK, committee, scopes_of, view

from .runtime import NodeContext
from .validator import Validator

CHECKPOINT = "/stromledger/checkpoint/1"


def chain_store_path(data_dir: Path, scope: str) -> Path:
    return Path(data_dir) / "chains" / f"{scope}.sqlite3"


class ValidatorChains:
    def __init__(self, ctx: NodeContext, net: Any, open_store: Callable[[str], Any], *,
                 clock: Callable[[], float] = time.time, config: Optional[ConsensusConfig] = None,
                 workers: int = 2, write_exports: bool = True):
        genesis = ctx.registry
        self.ctx, self.net, self.log = ctx, net, ctx.log
        self.scopes = scopes_of(genesis, ctx.config.name)
        self.network_keys = [v.public_key for v in committee(genesis, NETWORK)]
        self.chains: dict[str, Validator] = {}
        for scope in self.scopes:
            self.chains[scope] = Validator(ctx, open_store(scope), net, clock=clock, config=config, workers=workers,
                                           write_exports=write_exports, registry=view(genesis, scope),
                                           checkpoint_sink=self._deliver)
        self.checkpoints_pushed = 0
        if NETWORK in self.chains:
            validators = frozenset(genesis.validator_keys())  # any area's committee member may push
            net.set_handler(CHECKPOINT, self._on_checkpoint, allowed=validators.__contains__)

    @property
    def network(self) -> Optional[Validator]:
        return self.chains.get(NETWORK)

    async def _deliver(self, data: bytes) -> None:
        if self.network is not None:
            await self.network.add_checkpoint(data)
        await self.net.broadcast(self.network_keys, CHECKPOINT, data)  # our own key is skipped
        self.checkpoints_pushed += 1

    async def _on_checkpoint(self, peer: bytes, payload: bytes) -> None:
        await self.network.add_checkpoint(payload, peer)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for chain in self.chains.values():
                await nursery.start(chain.serve)
            self.log.info("validator %s serves %d chain(s): %s", self.ctx.config.name, len(self.chains),
                          ", ".join(self.scopes) or "none (in no committee of the genesis)")
            task_status.started(self)

    async def run(self) -> None:
        await self.serve()

    def status(self) -> dict[str, Any]:
        chains = {scope: c.status() for scope, c in self.chains.items()}
        top = chains.get(NETWORK) or next(iter(chains.values()), {})
        return {**top, "chains": chains, "checkpoints_pushed": self.checkpoints_pushed}
