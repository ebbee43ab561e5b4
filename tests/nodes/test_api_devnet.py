"""The operator surface on a running devnet (real node processes on 127.0.0.1): /status, /metrics and a proof
endpoint on a validator answer correctly, prometheus_client's own parser reads /metrics with every family
typed, the alert rules and the Grafana dashboard name only metrics the nodes export, and the dashboard,
rendered by headless Chromium, shows the same seal hash as the API.

One devnet serves every test of this module; waits poll against a deadline (other OS processes)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from nodes.cli import main
from nodes.devnet import DevnetOptions, create_devnet, read_status, start_nodes, stop_nodes
from nodes.light import verify_light_reply
from nodes.protocol import LightReply
from stromledger import merkle
from stromledger.cascade import PeriodSeal, SettledReading

from test_devnet_run import last_height, wait_for

DOCS = Path(__file__).resolve().parents[2] / "docs"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    options = DevnetOptions(validators=4, balancing_groups=1, meters=20, periods=6, period_seconds=3, seed=5)
    net = create_devnet(tmp_path_factory.mktemp("api") / "devnet", options, int(time.time()))
    procs = start_nodes(net)
    g = net.registry.genesis_period
    try:
        wait_for("two commits on validator-1 and every API up",
                 lambda: last_height(net.validators[0]) >= g + 1
                 and all(read_status(n).get("api_url") for n in net.nodes), net.gate_closure(g) + 60, procs)
        yield net
    finally:
        stop_nodes(procs)


def get(url: str, accept_error: bool = False) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        if not accept_error:
            raise
        return e.code, e.read()


def get_json(url: str):
    return json.loads(get(url)[1])


def api_url(spec, capsys) -> str:
    """As an operator finds it: `stromledger status --home H --json`."""
    capsys.readouterr()
    main(["status", "--home", str(spec.home), "--json"])
    return json.loads(capsys.readouterr().out)["status"]["api_url"]


def families(url: str) -> dict:
    status, body = get(url + "/metrics")
    assert status == 200
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def test_status_metrics_and_proof_on_a_validator(devnet, capsys):
    v = devnet.validators[0]
    url = api_url(v, capsys)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)

    status = get_json(url + "/status")
    assert status["role"] == "validator" and status["name"] == v.name and status["api_url"] == url
    assert status["chain_id"] == devnet.registry.chain_id
    assert isinstance(status["height"], int) and isinstance(status["round"], int)
    assert status["quorum"] is True and status["halted"] is False
    # A loaded machine may leave it a period or two behind: the fields are there and consistent.
    assert status["catching_up"] == (status["behind_periods"] > 1) and "settlement_waiting" in status
    assert status["peers"] >= 2

    fams = families(url)
    untyped = sorted(name for name, f in fams.items() if f.type == "unknown" or not f.documentation)
    assert untyped == []
    assert fams["stromledger_quorum"].samples[0].value == 1
    assert fams["stromledger_commit_latency_seconds"].type == "histogram"
    for f in fams.values():
        for s in f.samples:
            assert {s.labels["node"], s.labels["role"], s.labels["chain"]} == {v.name, "validator",
                                                                               devnet.registry.chain_id}, s

    # A proof, checked by the light client's own rules: certificate by > 2/3 of the genesis validators, the
    # seal names this chain and holds the period's result, each leaf's Merkle path leads to its root.
    g = devnet.registry.genesis_period
    # one area's meter points (an area chain proves them; the default chain, the network's, routes there)
    area = next(iter(devnet.registry.grid_areas))
    malos = sorted(m for m, mp in devnet.registry.meter_points.items() if mp.grid_area == area)[:3]
    doc = get_json(url + f"/chains/default/proofs/{g}?" + "&".join(f"malo={m}" for m in malos))
    reply = LightReply.decode(bytes.fromhex(doc["reply"]))
    check = verify_light_reply(devnet.registry, reply, g, {})
    assert check.ok and reply.height == doc["height"] >= g
    result = next(r for r in PeriodSeal.decode(reply.seal).results if r.period == g)
    assert [p["malo_id"] for p in doc["proofs"]] == malos and doc["missing"] == []
    for p in doc["proofs"]:
        leaf = bytes.fromhex(p["leaf"])
        assert merkle.verify_inclusion(result.merkle_root, leaf, p["index"], doc["size"],
                                       [bytes.fromhex(h) for h in p["path"]])
        assert SettledReading.decode(leaf).malo_id == p["malo_id"]
    seal = get_json(url + f"/chains/{area}/seals/{doc['height']}")
    assert seal["seal_hash"] == doc["seal_hash"] and seal["certificate"] == "valid"

    # Hostile input: one-line JSON reasons, and the node keeps serving.
    for path, code, error in ((f"/chains/default/proofs/{g}?malo=nonsense", 400, "bad_malo"),
                              ("/chains/default/seals/99999999999999999999", 400, "bad_height"),
                              ("/chains/default/seals/1", 404, "not_committed"),
                              ("/chains/elsewhere/seals", 404, "unknown_chain"),
                              ("/chains/default/exports/..%2f..%2fetc/v1/passwd", 404, "not_found"),
                              ("/chains/default/exports/..%5c../v1/config.toml", 400, "bad_export_path")):
        status_code, body = get(url + path, accept_error=True)
        assert (status_code, json.loads(body)["error"]) == (code, error), path
    assert get_json(url + "/openapi.json") == json.loads((DOCS / "openapi.json").read_text())


def test_alerts_and_grafana_name_only_exported_metrics(devnet, capsys):
    exported: set[str] = set()
    for spec in (devnet.validators[0], devnet.group_nodes[0], devnet.light_nodes[0]):
        for f in families(api_url(spec, capsys)).values():
            # A counter with no sample yet (nothing refused so far) is still exported: its HELP and TYPE.
            exported |= {f.name} | {s.name for s in f.samples} | ({f.name + "_total"} if f.type == "counter"
                                                                 else set())
    named = set()
    for path in (DOCS / "alerts.yml", DOCS / "grafana-dashboard.json"):
        found = set(re.findall(r"\bstromledger_[a-z_]+\b", path.read_text()))
        assert found, path
        named |= found
    assert sorted(named - exported) == []


def test_dashboard_in_headless_chromium_shows_the_seal_hash_of_the_api(devnet, capsys, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not found: `apt-get install -y chromium` (.ci/run installs it)")
    url = api_url(devnet.validators[0], capsys)
    flags = CHROMIUM_FLAGS + [f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=8000"]

    def last_seal(page: str) -> tuple[int, str, str]:
        for _ in range(3):  # a browser starved of CPU may give up before the page's first refresh: try again
            dom = subprocess.run([chromium, *flags, "--dump-dom", page], capture_output=True, text=True,
                                 timeout=120).stdout
            shown = re.search(r'id="last-seal-hash" data-height="(\d+)">([0-9a-f]{64})<', dom)
            if shown:
                return int(shown.group(1)), shown.group(2), dom
        raise AssertionError(dom[-2000:])

    height, seal_hash, dom = last_seal(url + "/")
    assert get_json(url + f"/chains/default/seals/{height}")["seal_hash"] == seal_hash
    assert "validator-4" in dom and "<svg" in dom  # validators table and the imbalance chart drawn
    area = next(iter(devnet.registry.grid_areas))  # an area chain of this validator process, picked by link
    assert f'href="#chain={area}"' in dom
    height, seal_hash, dom = last_seal(url + f"/#chain={area}")
    assert get_json(url + f"/chains/{area}/seals/{height}")["seal_hash"] == seal_hash
    assert f'id="shown-chain">{devnet.registry.chain_id}/area/{area}<' in dom
    shot = os.environ.get("STROMLEDGER_DASHBOARD_PNG")  # how docs/dashboard.png is made (docs/operations.md)
    if shot:
        subprocess.run([chromium, *flags, "--window-size=1400,1450", "--hide-scrollbars", f"--screenshot={shot}",
                        url + "/"], capture_output=True, timeout=120)
        assert Path(shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_export_index_and_files_and_the_other_roles(devnet, capsys):
    url = api_url(devnet.validators[0], capsys)

    def index() -> list:
        return get_json(url + "/chains/default/exports")["exports"]

    wait_for("the first export", lambda: bool(index()), time.time() + 60)
    first = index()[0]
    names = {f["name"] for f in first["files"]}
    # Late readings may already have corrected the period (version 2, ...): the index names the latest.
    assert "manifest.json" in names and first["latest_version"] == max(first["versions"])
    assert all(f"/v{first['latest_version']}/" in f["url"] for f in first["files"])
    for f in first["files"]:
        status, body = get(url + f["url"])
        assert status == 200 and hashlib.sha256(body).hexdigest() == f["sha256"] and len(body) == f["bytes"]

    bg = api_url(devnet.group_nodes[0], capsys)
    assert get_json(bg + "/status")["role"] == "balancing-group"
    status, page = get(bg + "/")
    assert status == 200 and b'id="last-seal-hash"' in page
    seals = get_json(bg + "/chains/default/seals?limit=2")["seals"]
    assert seals and seals[0]["seal_hash"] == get_json(url + f"/chains/default/seals/{seals[0]['height']}")["seal_hash"]
    status, body = get(bg + f"/chains/default/proofs/{devnet.registry.genesis_period}?malo=x", accept_error=True)
    assert (status, json.loads(body)["error"]) == (404, "no_proofs")

    light = api_url(devnet.light_nodes[0], capsys)
    assert get_json(light + "/status")["role"] == "meter-point"
    status, body = get(light + "/", accept_error=True)
    assert (status, json.loads(body)["error"]) == (404, "no_dashboard")
