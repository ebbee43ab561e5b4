"""The OpenAPI 3.1 document of the operator API, served at /openapi.json and kept as docs/openapi.json
(a test checks they are equal). After changing a route: `python -m nodes.api.openapi > docs/openapi.json`."""

from __future__ import annotations

import json
from typing import Any

from stromledger import __version__

CHAIN = {"name": "chain", "in": "path", "required": True, "schema": {"type": "string"},
         "description": "a chain id from /chains, or `default` (the node's own chain)"}
HEIGHT = {"name": "height", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0},
          "description": "the height (= settlement period index: period start / period seconds)"}
PERIOD = {"name": "period", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0},
          "description": "the settlement period index"}
JSON = {"application/json": {"schema": {"type": "object"}}}
PROBLEM = {"description": "refused, with a one-line reason",
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}

# path -> (summary, parameters, what a 200 holds, media type)
ROUTES: dict[str, tuple[str, list[dict[str, Any]], str, str]] = {
    "/": ("The dashboard (validators and balancing-group nodes): a static page over this API.", [],
          "HTML", "text/html"),
    "/status": ("The node's live status document (the same as data/status.json): role, name, chain_id, "
                "api_url, height, period, round, peers, quorum, catching_up, behind_periods, halted, "
                "settlement_waiting, last_commit, rejections, ...", [], "the status document", "application/json"),
    "/metrics": ("Prometheus exposition format 0.0.4; every family has HELP and TYPE.", [],
                 "metrics", "text/plain"),
    "/openapi.json": ("This document.", [], "OpenAPI 3.1", "application/json"),
    "/chains": ("The chains this node serves, with their newest committed height.", [], "chains",
                "application/json"),
    "/chains/{chain}/seals": ("The newest committed seals, newest first: height, period, seal hash, round, "
                              "signers.", [CHAIN, {"name": "limit", "in": "query", "required": False,
                                                   "schema": {"type": "integer", "minimum": 1, "maximum": 100,
                                                              "default": 10}}], "seals", "application/json"),
    "/chains/{chain}/seals/{height}": ("A committed seal: its summary (results per balancing group and grid "
                                       "area, generation mix, evidence, refused items), its certificate "
                                       "checked against the genesis, and the canonical seal bytes (hex).",
                                       [CHAIN, HEIGHT], "the seal", "application/json"),
    "/chains/{chain}/certificates/{height}": ("The commit certificate of a height: round, value hash, signers, "
                                              "canonical bytes (hex).", [CHAIN, HEIGHT], "the certificate",
                                              "application/json"),
    "/chains/{chain}/periods/{period}/results/{version}": (
        "A period result by period and version (`latest` for the newest), with the height and seal that "
        "settled it.", [CHAIN, PERIOD, {"name": "version", "in": "path", "required": True,
                                        "schema": {"type": "string"}, "description": "1, 2, ... or latest"}],
        "the period result", "application/json"),
    "/chains/{chain}/proofs/{period}": (
        "Inclusion proofs (validators): the seal that settled the period at its latest version, its commit "
        "certificate and a Merkle proof per meter point. `reply` is the canonical LightReply (msgpack, hex) "
        "that a light client verifies exactly as over libp2p (nodes/light.py, docs/protocol.md).",
        [CHAIN, PERIOD, {"name": "malo", "in": "query", "required": True, "style": "form", "explode": True,
                         "schema": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                                    "maxItems": 2000}, "description": "MaLo-IDs (repeat the parameter)"}],
        "the proofs", "application/json"),
    "/chains/{chain}/imbalance": ("Imbalance (Wh) per balancing group and the generation mix of each committed "
                                  "period in the last `hours` (at most 500 periods).",
                                  [CHAIN, {"name": "hours", "in": "query", "required": False,
                                           "schema": {"type": "integer", "minimum": 1, "default": 24}}],
                                  "the series", "application/json"),
    "/chains/{chain}/validators": ("The genesis validators: online (connected to this node) and whether each "
                                   "signed the newest certificate.", [CHAIN], "validators", "application/json"),
    "/chains/{chain}/evidence": ("Evidence records (duplicate votes), newest first.", [CHAIN], "evidence",
                                 "application/json"),
    "/chains/{chain}/exports": ("The export index: per period the latest version written here and its files "
                                "with sha256 and size.", [CHAIN], "the index", "application/json"),
    "/chains/{chain}/exports/{period_dir}/{version}/{name}": (
        "One export file (manifest.json, MSCONS, CSV, ...) as written under data/exports/.",
        [CHAIN] + [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                   for n in ("period_dir", "version", "name")], "the file", "application/octet-stream"),
}


def openapi_document() -> dict[str, Any]:
    paths = {}
    for path, (summary, params, what, media) in ROUTES.items():
        content = JSON if media == "application/json" else {media: {"schema": {"type": "string"}}}
        responses = {"200": {"description": what, "content": content}}
        if path not in ("/", "/status", "/metrics", "/openapi.json", "/chains"):
            responses["400"] = PROBLEM
            responses["404"] = PROBLEM
        responses["401"] = PROBLEM
        op: dict[str, Any] = {"summary": summary, "responses": responses}
        if params:
            op["parameters"] = params
        paths[path] = {"get": op}
    return {
        "openapi": "3.1.0",
        "info": {"title": "stromledger node API", "version": __version__,
                 "description": "Read-only operator API of a stromledger node. Energy in Wh (integers), hashes "
                                "and canonical bytes in lowercase hex. With [api] token set, every request "
                                "needs `Authorization: Bearer <token>`."},
        "paths": paths,
        "components": {
            "schemas": {"Problem": {"type": "object", "required": ["error", "message"],
                                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}}}},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }


if __name__ == "__main__":
    print(json.dumps(openapi_document(), indent=2))
