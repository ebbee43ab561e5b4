"""The operator surface without a devnet: the [api] and [log] config sections, log formats and levels, and
the API of one in-process validator (bearer token, read-only, JSON reasons, /openapi.json = docs/)."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from nodes.api.openapi import openapi_document
from nodes.api.server import start_api
from nodes.datagen.devnet_genesis import devnet_key, devnet_registry
from nodes.home import ConfigError, NodeConfig, load_config
from nodes.logs import JsonFormatter, configure_logging
from nodes.runtime import NodeContext
from nodes.validator import Validator
from stromledger.net.p2p import P2PNetwork
from stromledger.store import Store

DOCS = Path(__file__).resolve().parents[2] / "docs"


def context(home: Path, chain_id: str, role: str = "validator", name: str = "validator-1",
            api: dict | None = None) -> NodeContext:
    """A node context on a small devnet registry whose genesis period began two minutes ago."""
    registry = devnet_registry(validators=4, balancing_groups=1, meters=8, period_seconds=60,
                               genesis_start=int(time.time()) - 120, chain_id=chain_id)
    label = name if role == "validator" else "bg-operator-1"
    config = NodeConfig(home=home, role=role, name=name, api=api or {"listen": "127.0.0.1:0", "token": ""})
    return NodeContext(config=config, key=devnet_key(label), registry=registry,
                       log=logging.getLogger(f"test.{chain_id}"))


def write_config(home: Path, extra: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text('role = "validator"\nname = "v"\n' + extra)
    return home


def test_api_and_log_sections_have_defaults_and_refuse_typos(tmp_path):
    config = load_config(write_config(tmp_path / "a", ""))
    assert (config.api_listen, config.api_token) == ("127.0.0.1:0", "")
    assert (config.log_format, config.log_levels) == ("text", {})
    config = load_config(write_config(tmp_path / "b", '[api]\nlisten = "0.0.0.0:8080"\ntoken = "s3cret"\n'
                                                      '[log]\nformat = "json"\n[log.levels]\nlibp2p = "debug"\n'))
    assert (config.api_listen, config.api_token) == ("0.0.0.0:8080", "s3cret")
    assert (config.log_format, config.log_levels) == ("json", {"libp2p": "DEBUG"})
    config.save()  # and back from what `init` writes (inline table for the levels)
    again = load_config(config.home)
    assert (again.api, again.log) == (config.api, config.log)
    for extra, reason in (('[api]\nlisten = "8080"\n', "[api]: listen must be HOST:PORT"),
                          ('[api]\nport = 8080\n', "[api]: unknown key 'port'; allowed: listen, token"),
                          ('[api]\ntoken = 5\n', "[api]: token must be a string"),
                          ('[log]\nformat = "xml"\n', "[log]: format must be one of text, json"),
                          ('[log.levels]\n"stromledger" = "LOUD"\n',
                           "[log]: levels must be a table of logger = level")):
        with pytest.raises(ConfigError) as e:
            load_config(write_config(tmp_path / "bad", extra))
        assert reason in str(e.value) and "\n" not in str(e.value)


def test_logs_as_json_lines_and_libp2p_held_at_warning():
    record = logging.LogRecord("stromledger.validator", logging.INFO, __file__, 1, "committed %d", (7,), None)
    doc = json.loads(JsonFormatter().format(record))
    assert doc["logger"] == "stromledger.validator" and doc["level"] == "INFO" and doc["msg"] == "committed 7"
    assert doc["ts"].endswith("Z")
    try:
        configure_logging("json", "DEBUG", {"stromledger.api": "error"})
        assert logging.getLogger("libp2p").level == logging.WARNING
        assert logging.getLogger("multiaddr").level == logging.WARNING
        assert logging.getLogger("stromledger.api").level == logging.ERROR
        configure_logging("text", "INFO", {"libp2p": "DEBUG"})
        assert logging.getLogger("libp2p").level == logging.DEBUG
    finally:
        for name in ("libp2p", "multiaddr", "stromledger.api"):
            logging.getLogger(name).setLevel(logging.NOTSET)
        configure_logging("text", "WARNING")


def test_served_openapi_document_is_the_one_in_docs():
    assert openapi_document() == json.loads((DOCS / "openapi.json").read_text())


def fetch(url: str, token: str | None = None, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.mark.trio
async def test_api_of_a_validator_with_a_token(tmp_path):
    ctx = context(tmp_path, "test-api", api={"listen": "127.0.0.1:0", "token": "s3cret"})
    registry = ctx.registry
    store = Store(tmp_path / "ledger.sqlite3")
    net = P2PNetwork(ctx.key.seed)

    async def get(path: str, token: str | None = "s3cret", method: str = "GET") -> tuple[int, bytes]:
        return await trio.to_thread.run_sync(fetch, url + path, token, method)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(net.run)
            validator = Validator(ctx, store, net, write_exports=False)
            url = await start_api(nursery, validator)

            assert (await get("/status", token=None))[0] == 401
            assert json.loads((await get("/status", token="wrong"))[1])["error"] == "unauthorized"
            code, body = await get("/status")
            status = json.loads(body)
            assert code == 200 and status["name"] == "validator-1" and status["chain_id"] == "test-api"
            assert status["quorum"] is False and status["peers"] == 0  # alone: no quorum
            code, body = await get("/metrics")
            fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
            assert fams["stromledger_quorum"].samples[0].value == 0
            assert all(f.type != "unknown" and f.documentation for f in fams.values())
            assert (await get("/status", method="POST"))[0] == 405  # read-only
            code, body = await get("/no/such/thing")
            assert code == 404 and json.loads(body)["error"] == "not_found"
            code, body = await get("/chains/default/seals")
            assert code == 200 and json.loads(body)["seals"] == []
            code, body = await get(f"/chains/default/proofs/5?malo={sorted(registry.meter_points)[0]}")
            assert code == 404 and json.loads(body)["error"] == "not_committed"
            code, body = await get("/")
            assert code == 200 and b'id="last-seal-hash"' in body
            assert (await get("/static/dashboard.js"))[0] == 200
            nursery.cancel_scope.cancel()
    store.close()


@pytest.mark.trio
async def test_an_api_address_in_use_is_one_log_line_and_the_node_goes_on(tmp_path, caplog):
    with trio.socket.socket() as taken:
        await taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ctx = context(tmp_path, "test-api-busy", api={"listen": f"127.0.0.1:{port}", "token": ""})
        store = Store(tmp_path / "ledger.sqlite3")
        net = P2PNetwork(ctx.key.seed)
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(net.run)
                validator = Validator(ctx, store, net, write_exports=False)
                assert await start_api(nursery, validator) is None
                nursery.cancel_scope.cancel()
        store.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "test.test-api-busy"]
    assert len(lines) == 1 and f"cannot serve the operator API on 127.0.0.1:{port}" in lines[0]


def test_metrics_textfile_is_typed_and_labelled_like_the_endpoint(tmp_path):
    ctx = context(tmp_path, "test-textfile", role="balancing-group", name="bg-1")
    ctx.rejections["commit_wrong_chain"] += 2
    ctx.write_status({"next_height": 12, "halted": "height 11: cannot recompute the seal", "pending": 0,
                      "verified": {"heights": 3, "last_height": 11, "discrepancies": 1},
                      "schedules": {"rejected_by_reason": {"unknown_group": 4}}})
    text = (tmp_path / "data" / "metrics.prom").read_text()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert all(f.type != "unknown" and f.documentation for f in fams.values())
    labels = {"node": "bg-1", "role": "balancing-group", "chain": "test-textfile"}

    def value(name: str, **extra) -> float:
        return next(s.value for s in fams[name].samples if s.labels == {**labels, **extra})

    assert value("stromledger_halted") == 1 and value("stromledger_discrepancies") == 1
    assert value("stromledger_rejections", reason="commit_wrong_chain") == 2
    assert value("stromledger_refused_by_validators", reason="unknown_group") == 4
    assert "stromledger_commit_latency_seconds" not in fams and "stromledger_quorum" not in fams  # not its role
