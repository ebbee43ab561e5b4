"""A validator process's chains: one chain node (nodes/validator.py) per scope the genesis seats it on.

Each grid area's committee runs that area's chain; the network committee runs the network chain; one
operator's validator may sit on several (registry/scopes.py). `ValidatorChains` starts one `Validator` per
scope with the scope's registry view, its own store (`<data>/chains/<scope>.sqlite3`), its own consensus
machine, sign guard and WAL, and its own protocol ids (`/stromledger/consensus/1/<scope>`, ...), all on
the process's one network endpoint. No level has a copy of the shell: a chain is a chain.

A validator also follows the chain of its own grid area when it is not on that area's committee: a
non-voting full node (it receives proposals and votes, applies commits, never signs), so that a committee
change that adds it (registry/committee.py) finds it with the state at its first height, from which it
proposes and votes; a member a change removes stops signing there and keeps following.

When an area chain commits a height, its checkpoint (the AreaSeal, its certificate and the tie-line
proofs) goes to the network chain: straight in if this process runs it, and pushed to every network
committee member over `/stromledger/checkpoint/1` (receivers verify it with the genesis alone and keep
each area seal once, so duplicates from several area members cost one verification each).
"""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path
from typing import Any, Callable, Optional

import trio

from stromledger.cascade import Reason, Receipt, Rejection, check_batch
from stromledger.cascade.changes import approved_shape
from stromledger.cascade.checks import APPROVED_ITEM, CheckedBatch, signed_batch
from stromledger.cascade.ledger import CHANGE, READING, SCHEDULE, Admission
from stromledger.codec import CodecError
from stromledger.consensus.config import ConsensusConfig
from stromledger.crypto import sha256
from stromledger.net import LIGHT, SUBMIT, SYNC
from stromledger.registry import (
    METER_POINT_ADDED, NETWORK, MarketChange, MeterOperatorChange, Registry, RegistryChange, committee, scopes,
    scopes_of, view, with_changes,
)

from .gc_policy import settle_collector
from .protocol import ErrorReply, LightRequest
from .runtime import NodeContext, chaos_disk, node_clock, serve_until_signalled, write_status_every
from .validator import STATUS_EVERY, Validator

CHECKPOINT = "/stromledger/checkpoint/1"


def chain_store_path(data_dir: Path, scope: str) -> Path:
    return Path(data_dir) / "chains" / f"{scope}.sqlite3"


class ValidatorChains:
    def __init__(self, ctx: NodeContext, net: Any, open_store: Callable[[str], Any], *,
                 clock: Callable[[], float] = time.time, config: Optional[ConsensusConfig] = None,
                 workers: Optional[int] = None, write_exports: bool = True):
        genesis = ctx.registry
        self.ctx, self.net, self.log = ctx, net, ctx.log
        self.scopes = chains_served(genesis, ctx.config.name)
        self.network_keys = [v.public_key for v in committee(genesis, NETWORK)]
        self.chains: dict[str, Validator] = {}
        for scope in self.scopes:
            self.chains[scope] = Validator(ctx, open_store(scope), net, clock=clock, config=config, workers=workers,
                                           write_exports=write_exports, registry=view(genesis, scope),
                                           checkpoint_sink=self._deliver)
        for chain in self.chains.values():
            chain.writes_status = False  # this process writes one status.json for all its chains
        self.checkpoints_pushed = 0
        self.routed = 0
        # batches submitted at the genesis level are checked here, their signatures spread over [ingest]
        # workers threads as a chain spreads its own (the chains then take the verdicts, verifying nothing)
        self._workers = max(1, workers or ctx.config.ingest_workers)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="route")
        if NETWORK in self.chains:
            validators = frozenset(genesis.validator_keys())  # any area's committee member may push
            net.set_handler(CHECKPOINT, self._on_checkpoint, allowed=validators.__contains__)
        # The plain protocol ids: clients that know the genesis, not its chains (meter operators, balancing
        # groups, light and group nodes) talk to the process, which routes to the right chain.
        registered = genesis.submitter_keys.__contains__
        net.set_handler(SUBMIT, self._on_submit, allowed=registered)
        net.set_handler(LIGHT, self._on_light, allowed=registered)
        if NETWORK in self.chains:
            net.set_handler(SYNC, self.chains[NETWORK]._on_sync, allowed=registered)

    @property
    def network(self) -> Optional[Validator]:
        return self.chains.get(NETWORK)

    async def _deliver(self, data: bytes) -> None:
        if self.network is not None:
            await self.network.add_checkpoint(data)
        # the genesis network committee, and (when this process runs the network chain) the committees its
        # committee changes install; a member this process does not know of fetches what a proposal lists
        keys = list(dict.fromkeys([*self.network_keys, *(self.network.validator_keys if self.network else ())]))
        await self.net.broadcast(keys, CHECKPOINT, data)  # our own key is skipped
        self.checkpoints_pushed += 1

    async def _on_checkpoint(self, peer: bytes, payload: bytes) -> None:
        await self.network.add_checkpoint(payload, peer)

    # -- routing the genesis-level protocols ------------------------------------------------------------------

    async def _on_submit(self, peer: bytes, payload: bytes) -> bytes:
        """A batch signed for the genesis chain: checked once against the genesis (its readings and schedules
        are signed under the genesis chain id), then its valid items go, re-batched and signed by this
        validator, to each chain that settles them: readings to their meter point's area (a tie line's to
        both areas), schedules to the network. The receipt (signed under the genesis chain id) gives each
        item's verdict from that check; the chains' seals are final, as ever."""
        genesis = self.ctx.registry
        history = self.registry_history()
        checked = await trio.to_thread.run_sync(lambda: check_batch(genesis, payload, map=self._pool.map,
                                                                    parts=self._workers, history=history))
        if isinstance(checked, Rejection):
            self.ctx.reject(f"batch_{checked.reason.name.lower()}", checked.message, peer)
            return Admission(sha256(payload), refused=checked).receipt(self.ctx.key, genesis.chain_id).encode()
        out = Admission(checked.digest)
        per_scope: dict[str, tuple[list, list, list, list]] = {}
        for i, (r, why) in enumerate(zip(checked.batch.readings, checked.reading_verdicts)):
            if why is not None:
                out.rejections.append((READING, i, why))
                continue
            out.accepted += 1
            for scope in chains_of_meter(genesis, r.malo_id, history):
                per_scope.setdefault(scope, ([], [], [], []))[0].append(r)
        for i, (sch, why) in enumerate(zip(checked.batch.schedules, checked.schedule_verdicts)):
            if why is not None:
                out.rejections.append((SCHEDULE, i, why))
                continue
            out.accepted += 1
            per_scope.setdefault(NETWORK, ([], [], [], []))[1].append(sch)
        for i, (c, why) in enumerate(zip(checked.batch.changes, checked.change_verdicts)):
            area = area_of_change(genesis, history, c)
            if why is not None or area is None:
                out.rejections.append((CHANGE, i, why or Rejection(Reason.UNKNOWN_METER_POINT,
                                                                    f"{c.malo_id} is not in the registry")))
                continue
            out.accepted += 1  # provisional: the area chain's acceptor and seal judge it against its history
            per_scope.setdefault(area, ([], [], [], []))[2].append(c)
        for i, c in enumerate(checked.approved):
            if c is None:  # did not decode: its verdict says why
                out.rejections.append((APPROVED_ITEM, i, checked.approved_verdicts[i]))
                continue
            targets = chains_of_approved(genesis, history, c)
            if not targets:
                out.rejections.append((APPROVED_ITEM, i, Rejection(Reason.UNKNOWN_METER_POINT,
                                                                   f"{c.describe()}: no such meter point")))
                continue
            out.accepted += 1  # provisional: each chain it concerns judges it (form, approvals, history)
            for scope in targets:
                per_scope.setdefault(scope, ([], [], [], []))[3].append(c)
        for scope, (readings, schedules, changes, approved) in sorted(per_scope.items()):
            chain = self.chains.get(scope)
            if chain is None:
                self.log.warning("batch %s: %d item(s) for chain %s, which this validator does not serve",
                                 checked.digest.hex()[:12], len(readings) + len(schedules), scope)
                continue
            sub, data = signed_batch(self.ctx.key, chain.chain_id, readings, schedules, changes, approved)
            # every item passed the genesis-level check, which is the view's (same keys, limits, signing id;
            # the chain's own changes are the only ones that bear on its meter points); an approved change's
            # form is judged by its chain's view
            verdicts = CheckedBatch.of(sha256(data), sub, (None,) * len(readings), (None,) * len(schedules),
                                       (None,) * len(changes), chain.ledger.acceptor.state.changes,
                                       (tuple(approved), tuple(approved_shape(chain.reg, c) for c in approved)))
            try:
                answer = Receipt.decode(await chain._on_submit(self.ctx.key.public, data, verdicts))
            except RuntimeError as e:  # the chain stopped under us (shutting down): the submitter retries
                self.log.warning("batch %s not passed to chain %s: %s", checked.digest.hex()[:12], scope, e)
                return ErrorReply("unavailable", "the validator is shutting down").encode()
            if answer.batch_reason:
                # A chain refused its part as a whole (e.g. a reading for a period that has not begun): so is
                # the batch, so that the submitter sends it again; parts other chains kept come back as
                # harmless duplicates.
                why = Reason(answer.batch_reason)
                out.refused = Rejection(why, f"chain {scope} refused its part: {why.label}")
        self.routed += 1
        return out.receipt(self.ctx.key, genesis.chain_id).encode()

    async def _on_light(self, peer: bytes, payload: bytes) -> bytes:
        """Inclusion proofs come from the area chain of the requested meter points (one area per request)."""
        try:
            req = LightRequest.decode(payload)
        except CodecError as e:
            return ErrorReply("malformed", str(e)[:500]).encode()
        chain = self._area_chain(req.malo_ids[0] if req.malo_ids else "")
        if chain is None:
            return ErrorReply("wrong_chain", "no area chain of this validator settles these meter points").encode()
        return await chain._on_light(peer, payload)

    async def light_reply(self, period: int, malo_ids):
        """What `_on_light` answers, for the HTTP API: proofs from the area chain of the first meter point
        (one area per request; the others come back without a proof, as over libp2p)."""
        chain = self._area_chain(malo_ids[0] if malo_ids else "")
        if chain is None:
            return ErrorReply("wrong_chain", "no area chain of this validator settles these meter points")
        return await chain.light_reply(period, malo_ids)

    def _area_chain(self, malo_id: str) -> Optional[Validator]:
        """The area chain of this process that settles a meter point (of the genesis or added since)."""
        areas = chains_of_meter(self.ctx.registry, malo_id, self.registry_history())
        return self.chains.get(areas[0]) if areas else None

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                if self.ctx.config.status_path:
                    nursery.start_soon(self._status_loop)
                for chain in self.chains.values():
                    await nursery.start(chain.serve)
                self.log.info("validator %s serves %d chain(s): %s", self.ctx.config.name, len(self.chains),
                              ", ".join(self.scopes) or "none (in no committee of the genesis)")
                task_status.started(self)
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def run(self) -> None:
        await self.serve()

    def status(self) -> dict[str, Any]:
        """The network chain's status at the top (the devnet and `stromledger status` read it), every chain's
        under `chains`."""
        chains = {scope: c.status() for scope, c in self.chains.items()}
        top = chains.get(NETWORK) or next(iter(chains.values()), {})
        # chain_id: the genesis chain id the process is bound to (every chain's own is under `chains`)
        return {**top, "chain_id": self.ctx.chain_id, "chains": chains, "checkpoints_pushed": self.checkpoints_pushed,
                "batches_routed": self.routed}

    async def _status_loop(self) -> None:
        await write_status_every(self.ctx, self.status, STATUS_EVERY)


    def registry_history(self) -> tuple[RegistryChange, ...]:
        """The registry changes committed by the area chains this process serves (each area's own meter
        points only) and the market changes of any chain it serves, in history order: the genesis plus these
        is what readings and schedules are checked against here."""
        own = (RegistryChange, MeterOperatorChange)  # of an area's own meter points
        served = [[c for c in chain.ledger.acceptor.state.changes if isinstance(c, own)]
                  for scope, chain in self.chains.items() if scope != NETWORK]
        # the groups open (for schedules and their BRPs' batches): the same market change is on every chain
        market = {c.digest(): c for chain in self.chains.values() for c in chain.ledger.acceptor.state.changes
                  if isinstance(c, MarketChange)}
        found = [*(c for h in served for c in h), *market.values()]
        return with_changes((), found) if found else ()


def chains_served(genesis: Registry, name: str) -> tuple[str, ...]:
    """The chains a validator runs: those whose genesis committee it sits on, and the chain of its own grid
    area, which it follows without a seat until a committee change gives it one."""
    scopes = scopes_of(genesis, name)
    own = next((v.grid_area for v in genesis.validators if v.name == name), "")
    return scopes + (own,) if own in genesis.grid_areas and own not in scopes else scopes


def chains_of_meter(genesis: Registry, malo_id: str, history: tuple[RegistryChange, ...] = ()) -> tuple[str, ...]:
    """The area chains that settle a meter point: its area, and for a tie line also the other side's."""
    mp = genesis.meter_points.get(malo_id)
    if mp is None:  # added by a registry change
        return tuple({c.grid_area: None for c in history
                      if isinstance(c, RegistryChange) and c.malo_id == malo_id and c.grid_area})
    return tuple(dict.fromkeys(a for a in (mp.grid_area, mp.area_out, mp.area_in) if a))


def chains_of_approved(genesis: Registry, history: tuple, c) -> tuple[str, ...]:
    """The chains that commit an approved change: a committee change its scope's; a market change every
    chain, each judging it (docs/registry.md); a meter operator change its meter point's area's."""
    if isinstance(c, MarketChange):
        return scopes(genesis)
    if isinstance(c, MeterOperatorChange):
        return chains_of_meter(genesis, c.malo_id, history)[:1]
    return (c.scope,)


def area_of_change(genesis: Registry, history: tuple[RegistryChange, ...], c: RegistryChange) -> str | None:
    """The area chain that settles a registry change: its meter point's area."""
    if c.kind == METER_POINT_ADDED:
        return c.grid_area if c.grid_area in genesis.grid_areas else None
    areas = chains_of_meter(genesis, c.malo_id, history)
    return areas[0] if areas else None


async def run(ctx: NodeContext) -> int:
    """The validator role: open one store per chain (the network chain's is the home's data/ledger.sqlite3,
    an area chain's data/chains/<EIC>.sqlite3, each bound to its chain id and view), start the network, serve
    every chain until SIGINT/SIGTERM."""
    from stromledger.store import DB_FILE, Store

    genesis = ctx.registry
    ctx.config.data_dir.mkdir(parents=True, exist_ok=True)
    stores: list[Store] = []

    def open_store(scope: str) -> Store:
        path = ctx.config.home / DB_FILE if scope == NETWORK else chain_store_path(ctx.config.data_dir, scope)
        store = Store(path)
        stores.append(store)
        chain = view(genesis, scope)
        store.check_chain(chain.chain_id, chain.hash)
        chaos_disk(store)
        return store

    try:
        # Every store before the port opens: a home in use by another process (or bound to another chain)
        # stops the node with its one-line reason before it is reachable.
        opened = {scope: open_store(scope) for scope in chains_served(genesis, ctx.config.name)}
        settle_collector()  # the registry is loaded: out of every collection from now on (nodes/gc_policy.py)
        await serve_until_signalled(ctx, lambda net: ValidatorChains(ctx, net, opened.__getitem__,
                                                                     clock=node_clock()))
    finally:
        for store in stores:
            store.close()
    ctx.log.info("stopped")
    return 0
