"""The operator HTTP API: read-only JSON over a node's status, chain, proofs and exports, /metrics, the
OpenAPI document and the dashboard. docs/openapi.json describes every route (nodes/api/openapi.py).

Every handler is `async`, so it runs on the node's own trio thread (starlette would run a plain function in
a worker thread, next to a store and ledger that are not thread-safe). Bad input gets a 4xx with a one-line
JSON reason: {"error": "<code>", "message": "<what is wrong>"}.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from stromledger.chains import decode_seal
from stromledger.codec import CodecError
from stromledger.consensus.messages import CommitCertificate
from stromledger.registry import registry_at
from stromledger.ids import IdError, parse_malo_id

from ..metrics import NodeMetrics
from ..protocol import MAX_LIGHT_IDS, ErrorReply
from ..setup import commit_summary, seal_summary
from .openapi import openapi_document
from .source import ChainView, NodeSource

STATIC = Path(__file__).with_name("static")
MAX_SEALS = 100
MAX_HEIGHT = 2**63 - 1  # SQLite's integer range: anything larger is simply not a stored height
DAY_S = 86_400
MAX_SERIES = 500  # points of the imbalance chart (the last day of 15-minute periods is 96)
EXPORT_DIR = re.compile(r"^[0-9]{8}T[0-9]{6}Z$")
EXPORT_VERSION = re.compile(r"^v[0-9]{1,9}$")
EXPORT_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
DASHBOARD_ROLES = ("validator", "balancing-group")
log = logging.getLogger("stromledger.api")


def problem(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status)


class BearerToken:
    """Pure ASGI middleware: with a token configured, every request needs `Authorization: Bearer <token>`."""

    def __init__(self, app, token: str):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.token:
            headers = dict(scope.get("headers") or [])
            given = headers.get(b"authorization", b"").decode("latin-1")
            if not hashlib.sha256(given.encode()).digest() == hashlib.sha256(f"Bearer {self.token}".encode()).digest():
                response = problem(401, "unauthorized", "this API needs `Authorization: Bearer <token>` "
                                                        "(config.toml [api] token)")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(source: NodeSource, metrics: NodeMetrics, token: str = "") -> Starlette:
    api = _Api(source, metrics)
    routes = [
        Route("/", api.dashboard),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        Route("/status", api.status),
        Route("/metrics", api.metrics),
        Route("/openapi.json", api.openapi),
        Route("/chains", api.chains),
        Route("/chains/{chain}/seals", api.seals),
        Route("/chains/{chain}/seals/{height}", api.seal),
        Route("/chains/{chain}/certificates/{height}", api.certificate),
        Route("/chains/{chain}/periods/{period}/results/{version}", api.period_result),
        Route("/chains/{chain}/proofs/{period}", api.proof),
        Route("/chains/{chain}/imbalance", api.imbalance),
        Route("/chains/{chain}/validators", api.validators),
        Route("/chains/{chain}/evidence", api.evidence),
        Route("/chains/{chain}/exports", api.exports),
        Route("/chains/{chain}/exports/{period_dir}/{version}/{name}", api.export_file),
    ]
    return Starlette(routes=routes, middleware=[Middleware(BearerToken, token=token)],
                     exception_handlers={404: _not_found, 405: _not_allowed})


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return problem(404, "not_found", f"no such resource: {request.url.path}")


async def _not_allowed(request: Request, exc: Exception) -> JSONResponse:
    return problem(405, "method_not_allowed", "this API is read-only: GET only")


class _BadRequest(Exception):
    def __init__(self, status: int, error: str, message: str):
        self.response = problem(status, error, message)


def _int(text: str, what: str, lo: int = 0, hi: int = MAX_HEIGHT) -> int:
    if not text.isdigit() or len(text) > 19 or not lo <= int(text) <= hi:
        raise _BadRequest(400, f"bad_{what}", f"{what} must be an integer in {lo}..{hi}, got {text[:40]!r}")
    return int(text)


def _handler(method):
    """Turn _BadRequest into its response and any other failure into a 500 with one log line: every
    refusal is one JSON line, never a traceback, and the node keeps running."""

    async def wrapped(self, request: Request) -> Response:
        try:
            return await method(self, request)
        except _BadRequest as e:
            return e.response
        except Exception as e:
            log.error("API %s failed: %s: %s", request.url.path, type(e).__name__, e)
            return problem(500, "internal", f"{type(e).__name__}: {e}"[:500])

    wrapped.__name__ = method.__name__
    wrapped.__doc__ = method.__doc__
    return wrapped


class _Api:
    def __init__(self, source: NodeSource, metrics: NodeMetrics):
        self.source = source
        self._metrics = metrics
        self._hashes: dict[str, str] = {}

    def _chain(self, request: Request) -> ChainView:
        chain = self.source.chain(request.path_params["chain"])
        if chain is None:
            raise _BadRequest(404, "unknown_chain", f"this node serves no chain {request.path_params['chain'][:80]!r}")
        return chain

    def _commit(self, chain: ChainView, height_text: str):
        height = _int(height_text, "height")
        commit = chain.store.get_commit(height)
        if commit is None:
            raise _BadRequest(404, "not_committed", f"height {height} is not committed on this node")
        return commit

    @staticmethod
    def _committee(chain: ChainView, height: int) -> tuple:
        """The validators deciding `height`: the genesis view's, or those the committed committee changes
        installed by then (docs/registry.md)."""
        return registry_at(chain.registry, height, chain.registry_changes()).validators

    def _signers(self, chain: ChainView, certificate: CommitCertificate) -> list[dict[str, Any]]:
        validators = self._committee(chain, certificate.height)
        return [{"index": s.validator,
                 "name": validators[s.validator].name if s.validator < len(validators) else None,
                 "public_key": validators[s.validator].public_key.hex() if s.validator < len(validators) else None}
                for s in certificate.signatures]

    @_handler
    async def dashboard(self, request: Request) -> Response:
        if self.source.role not in DASHBOARD_ROLES:
            return problem(404, "no_dashboard", f"a {self.source.role} node has no dashboard (validators and "
                                                "balancing-group nodes do)")
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    @_handler
    async def status(self, request: Request) -> Response:
        return JSONResponse(self.source.status())

    @_handler
    async def metrics(self, request: Request) -> Response:
        return Response(self._metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @_handler
    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document())

    @_handler
    async def chains(self, request: Request) -> Response:
        out = []
        for c in self.source.chains():
            out.append({"chain_id": c.chain_id, "name": c.name, "scope": c.registry.scope or None,
                        "default": c.chain_id == self.source.default_chain,
                        "registry_hash": c.registry.hash.hex(), "period_seconds": c.registry.period_seconds,
                        "genesis_height": c.registry.genesis_period, "height": c.store.last_height()})
        return JSONResponse({"node": self.source.name, "role": self.source.role, "chains": out})

    @_handler
    async def seals(self, request: Request) -> Response:
        """The newest committed seals, newest first: height, hash, round, signers."""
        chain = self._chain(request)
        limit = _int(request.query_params.get("limit", "10"), "limit", 1, MAX_SEALS)
        last = chain.store.last_height()
        out = []
        if last is not None:
            for c in reversed(chain.store.commits_from(max(chain.registry.genesis_period, last - limit + 1), limit)):
                cert = CommitCertificate.decode(bytes(c.certificate))
                out.append({"height": c.height, "period": chain.registry.period(c.height).iso(),
                            "seal_hash": bytes(c.value_hash).hex(), "round": c.round,
                            "committed_at": c.committed_at, "signers": self._signers(chain, cert)})
        return JSONResponse({"chain_id": chain.chain_id, "seals": out})

    @_handler
    async def seal(self, request: Request) -> Response:
        chain = self._chain(request)
        commit = self._commit(chain, request.path_params["height"])
        doc = commit_summary(commit, chain.registry, chain.registry_changes())
        doc["period"] = chain.registry.period(commit.height).iso()
        doc["seal"] = bytes(commit.value).hex()
        return JSONResponse(doc)

    @_handler
    async def certificate(self, request: Request) -> Response:
        chain = self._chain(request)
        commit = self._commit(chain, request.path_params["height"])
        cert = CommitCertificate.decode(bytes(commit.certificate))
        return JSONResponse({"height": cert.height, "round": cert.round, "value_hash": cert.value_hash.hex(),
                             "signers": self._signers(chain, cert),
                             "certificate": bytes(commit.certificate).hex()})

    @_handler
    async def period_result(self, request: Request) -> Response:
        chain = self._chain(request)
        period = _int(request.path_params["period"], "period")
        version_text = request.path_params["version"]
        if version_text == "latest":
            version = chain.store.latest_version(period)
            if version is None:
                raise _BadRequest(404, "not_committed", f"period {period} is not settled on this node")
        else:
            version = _int(version_text, "version", 1, 2**32 - 1)
        stored = chain.store.get_period_result(period, version)
        if stored is None:
            raise _BadRequest(404, "not_committed", f"period {period} version {version} is not settled here")
        commit = chain.store.get_commit(stored.height)
        seal = decode_seal(commit.value)
        summary = seal_summary(seal, chain.registry)
        result = next(r for r in summary["results"] if r["period"] == period)
        return JSONResponse({"period": period, "period_iso": chain.registry.period(period).iso(),
                             "version": version, "latest_version": chain.store.latest_version(period),
                             "height": stored.height, "seal_hash": summary["seal_hash"], "result": result})

    @_handler
    async def proof(self, request: Request) -> Response:
        """Inclusion proofs for meter points in a period: the LightReply a light client verifies, as hex of its
        canonical bytes and decoded, so a client in any language needs only HTTP."""
        chain = self._chain(request)
        if chain.light_reply is None:
            raise _BadRequest(404, "no_proofs", f"a {self.source.role} node serves no proofs (validators do)")
        period = _int(request.path_params["period"], "period")
        malo_ids = request.query_params.getlist("malo")
        if not malo_ids or len(malo_ids) > MAX_LIGHT_IDS:
            raise _BadRequest(400, "bad_malo", f"give 1..{MAX_LIGHT_IDS} meter points as ?malo=<MaLo-ID>&malo=...")
        for m in malo_ids:
            try:
                parse_malo_id(m)
            except IdError as e:
                raise _BadRequest(400, "bad_malo", f"{m[:20]!r}: {e}") from None
        reply = await chain.light_reply(period, tuple(sorted(set(malo_ids))))
        if isinstance(reply, ErrorReply):
            raise _BadRequest(404 if reply.reason == "not_committed" else 400, reply.reason, reply.message)
        cert = reply.certificate
        return JSONResponse({
            "period": period, "height": reply.height, "version": reply.version, "size": reply.size,
            "seal_hash": hashlib.sha256(reply.seal).hexdigest(),
            "certificate": {"height": cert.height, "round": cert.round, "value_hash": cert.value_hash.hex(),
                            "signers": self._signers(chain, cert)},
            "proofs": [{"malo_id": p.malo_id, "index": p.index, "leaf": p.leaf.hex(),
                        "path": [h.hex() for h in p.path]} for p in reply.proofs],
            "missing": sorted(set(malo_ids) - {p.malo_id for p in reply.proofs}),
            "reply": reply.encode().hex(),
        })

    @_handler
    async def imbalance(self, request: Request) -> Response:
        """Imbalance per balancing group of each committed period in the last `hours` (own results only)."""
        chain = self._chain(request)
        hours = _int(request.query_params.get("hours", "24"), "hours", 1, 24 * 31)
        last = chain.store.last_height()
        points: list[dict[str, Any]] = []
        if last is not None:
            count = min(hours * 3600 // chain.registry.period_seconds, MAX_SERIES)
            first = max(chain.registry.genesis_period, last - count + 1)
            for c in chain.store.commits_from(first, last - first + 1):
                try:
                    seal = decode_seal(c.value)
                except CodecError:
                    continue
                own = next((r for r in seal_summary(seal, chain.registry)["results"] if r["period"] == c.height),
                           None)
                if own is not None:
                    points.append({"height": c.height, "period": own["period_iso"],
                                   "groups": {g["group"]: g["imb"] for g in own["groups"]}, "mix": own["mix"]})
        names = {eic: g.name for eic, g in chain.registry.balancing_groups.items()}
        return JSONResponse({"chain_id": chain.chain_id, "group_names": names, "points": points})

    @_handler
    async def validators(self, request: Request) -> Response:
        """The committee of the newest committed height (the genesis view's, or as committee changes made it):
        online (connected to this node, or this node), and whether each signed the newest certificate."""
        chain = self._chain(request)
        connected = self.source.connected_peers()
        signed: set[int] = set()
        last = chain.store.latest_commit()
        if last is not None:
            signed = {s.validator for s in CommitCertificate.decode(bytes(last.certificate)).signatures}
        out = [{"index": i, "name": v.name, "public_key": v.public_key.hex(), "grid_area": v.grid_area,
                "online": v.public_key == self.source.public_key or v.public_key in connected,
                "this_node": v.public_key == self.source.public_key, "signed_last": i in signed}
               for i, v in enumerate(self._committee(chain, last.height if last is not None
                                                     else chain.registry.genesis_period))]
        return JSONResponse({"chain_id": chain.chain_id, "last_height": None if last is None else last.height,
                             "validators": out})

    @_handler
    async def evidence(self, request: Request) -> Response:
        chain = self._chain(request)
        rows = chain.store.list_evidence(100)
        return JSONResponse({"chain_id": chain.chain_id, "evidence": [
            {"hash": bytes(e.hash).hex(), "kind": e.kind, "height": e.height, "first_seen": e.first_seen,
             "included_height": e.included_height} for e in rows]})

    @_handler
    async def exports(self, request: Request) -> Response:
        """The export index: per period the latest version written here, its files with sha256 and size."""
        chain = self._chain(request)
        # Hashing can read hundreds of MB at a million meter points: in a worker thread, off the node's loop
        # (it touches only files, never node state).
        index = await trio.to_thread.run_sync(self._export_index, chain)
        return JSONResponse({"chain_id": chain.chain_id, "exports": index})

    def _export_index(self, chain: ChainView) -> list[dict[str, Any]]:
        periods = []
        base = chain.exports_dir
        for d in sorted(base.iterdir()) if base.is_dir() else ():
            if not (EXPORT_DIR.match(d.name) and d.is_dir()):
                continue  # index.jsonl, temporary directories
            versions = sorted((int(v.name[1:]), v) for v in d.iterdir() if EXPORT_VERSION.match(v.name) and v.is_dir())
            if not versions:
                continue
            version, path = versions[-1]
            files = [{"name": f.name, "bytes": f.stat().st_size, "sha256": self._file_hash(f),
                      "url": f"/chains/{chain.name}/exports/{d.name}/v{version}/{f.name}"}
                     for f in sorted(path.iterdir()) if f.is_file() and EXPORT_FILE.match(f.name)]
            periods.append({"period_dir": d.name, "latest_version": version, "versions": [v for v, _ in versions],
                            "files": files})
        return periods

    @_handler
    async def export_file(self, request: Request) -> Response:
        chain = self._chain(request)
        p = request.path_params
        if not (EXPORT_DIR.match(p["period_dir"]) and EXPORT_VERSION.match(p["version"])
                and EXPORT_FILE.match(p["name"])):
            raise _BadRequest(400, "bad_export_path", "an export file is exports/<YYYYMMDDTHHMMSSZ>/v<N>/<file name>")
        path = chain.exports_dir / p["period_dir"] / p["version"] / p["name"]
        if not path.is_file():
            raise _BadRequest(404, "no_export", f"no export file {p['period_dir']}/{p['version']}/{p['name']}")
        return FileResponse(path)

    def _file_hash(self, path: Path) -> str:
        """sha256 of an export file; an export directory never changes once written, so each is read once."""
        key = str(path)
        if key not in self._hashes:
            self._hashes[key] = _sha256_file(path)
        return self._hashes[key]


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def route_paths(app: Starlette) -> list[str]:
    return [r.path for r in app.routes if isinstance(r, Route)]


__all__ = ["create_app", "route_paths", "problem"]
