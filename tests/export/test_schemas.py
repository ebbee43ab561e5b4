"""The machine-readable schemas of the export files (docs/schemas/: JSON Schema for manifest.json and the
JSON Lines files, a Frictionless Table Schema for every CSV) hold for real exports and for the samples under
docs/samples/, which verify; exports/index.jsonl names the latest version of every period and is replaced
atomically."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import jsonschema

import export_chain as chain
from stromledger.export import read_export, read_index, verify_export, write_export
from stromledger.export.tables import (
    AREA_COLUMNS, CHANGE_COLUMNS, GROUP_COLUMNS, METER_POINT_COLUMNS, SCHEDULE_COLUMNS,
)
from stromledger.export.network import NETWORK_AREA_COLUMNS, NETWORK_AREAS_CSV, TIE_COLUMNS, TIES_CSV
from stromledger.registry import load_genesis

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMAS = DOCS / "schemas"
SAMPLES = DOCS / "samples"
CSV_COLUMNS = {"meter-points.csv": METER_POINT_COLUMNS, "balancing-groups.csv": GROUP_COLUMNS,
               "areas.csv": AREA_COLUMNS, "schedules.csv": SCHEDULE_COLUMNS, "changes.csv": CHANGE_COLUMNS,
               NETWORK_AREAS_CSV: NETWORK_AREA_COLUMNS, TIES_CSV: TIE_COLUMNS}
DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


def json_validator(name: str):
    s = schema(name)
    jsonschema.Draft202012Validator.check_schema(s)
    return jsonschema.Draft202012Validator(s)


def table_problems(name: str, data: bytes) -> list[str]:
    """Check a CSV against its Table Schema: the header, every cell's type and constraints, the primary key."""
    ts = schema(name)
    fields = ts["fields"]
    rows = list(csv.reader(io.StringIO(data.decode())))
    problems = []
    if rows[0] != [f["name"] for f in fields]:
        problems.append(f"header {rows[0]}")
    keys = ts["primaryKey"] if isinstance(ts["primaryKey"], list) else [ts["primaryKey"]]
    seen = set()
    for n, row in enumerate(rows[1:], start=2):
        for f, cell in zip(fields, row):
            c = f["constraints"]
            if cell == "" and not c.get("required", False):
                continue  # an empty cell is a missing value (Table Schema's default missingValues)
            if f["type"] == "integer":
                if not INTEGER.fullmatch(cell):
                    problems.append(f"line {n} {f['name']}: {cell!r} is no integer")
                    continue
                value = int(cell)
            elif f["type"] == "datetime":
                if not DATETIME.fullmatch(cell):
                    problems.append(f"line {n} {f['name']}: {cell!r} is no datetime")
                value = cell
            else:
                value = cell
            if "minimum" in c and value < c["minimum"]:
                problems.append(f"line {n} {f['name']}: {value} < {c['minimum']}")
            if "enum" in c and value not in c["enum"]:
                problems.append(f"line {n} {f['name']}: {value!r} not in {c['enum']}")
            if "pattern" in c and not re.fullmatch(c["pattern"], cell):
                problems.append(f"line {n} {f['name']}: {cell!r} does not match {c['pattern']}")
        key = tuple(row[[f["name"] for f in fields].index(k)] for k in keys)
        if key in seen:
            problems.append(f"line {n}: primary key {key} repeated")
        seen.add(key)
    return problems


def schema_problems(files: dict[str, bytes]) -> list[str]:
    problems = [f"manifest.json: {e.message}" for e in json_validator("manifest").iter_errors(
        json.loads(files["manifest.json"]))]
    lines = json_validator("meter-points.jsonl")
    for n, line in enumerate(files.get("meter-points.jsonl", b"").decode().splitlines(), start=1):
        problems += [f"meter-points.jsonl line {n}: {e.message}" for e in lines.iter_errors(json.loads(line))]
    changes = json_validator("registry-changes.jsonl")
    for n, line in enumerate(files.get("registry-changes.jsonl", b"").decode().splitlines(), start=1):
        problems += [f"registry-changes.jsonl line {n}: {e.message}" for e in changes.iter_errors(json.loads(line))]
    for name in CSV_COLUMNS:
        if name in files:
            problems += [f"{name}: {p}" for p in table_problems(f"{name}", files[name])]
    return problems


def test_every_csv_has_a_table_schema_with_the_writers_columns():
    for name, columns in CSV_COLUMNS.items():
        assert [f["name"] for f in schema(name)["fields"]] == list(columns), name
    jsonl = schema("meter-points.jsonl")
    assert jsonl["required"] == list(METER_POINT_COLUMNS)


def test_real_exports_hold_to_their_schemas(exports):
    assert {v for _, v in exports} == {1, 2}
    for key, files in exports.items():
        assert schema_problems(files) == [], key


def test_a_network_export_holds_to_the_schemas():
    """The network chain's export: its manifest summary, network-areas.csv, ties.csv and balancing-groups.csv
    (missing_values empty: the counts are in the area exports)."""
    from stromledger.consensus.messages import CommitCertificate
    from stromledger.export.network import network_export_files
    from stromledger.registry import NETWORK
    from tests.cascade.tiny import G
    from tests.chains.hierarchy import certify, make_genesis
    from tests.chains.test_chains import both_areas_in

    genesis = make_genesis()
    _, _, net, outcome = both_areas_in(genesis)
    cert = CommitCertificate.decode(certify(genesis, NETWORK, outcome.seal_bytes, G))
    pool = {h: cp.data for h, cp in net.checkpoints.items()}
    files = network_export_files(genesis, outcome.seal_bytes, cert, G, pool)
    assert {NETWORK_AREAS_CSV, TIES_CSV, "balancing-groups.csv"} <= set(files)
    assert schema_problems(files) == []
    manifest = json.loads(files["manifest.json"])
    manifest["summary"]["absent"] = "none"
    assert schema_problems({**files, "manifest.json": json.dumps(manifest).encode()}) != []


def test_the_schemas_catch_a_wrong_file(correction):
    bad = dict(correction)
    bad["meter-points.csv"] = bad["meter-points.csv"].replace(b",measured,", b",measurd,", 1)
    manifest = json.loads(bad["manifest.json"])
    manifest["files"]["areas.csv"]["records"] = "2"
    bad["manifest.json"] = json.dumps(manifest).encode()
    problems = schema_problems(bad)
    assert any("measurd" in p for p in problems) and any("manifest.json" in p for p in problems)


def test_the_samples_verify_and_hold_to_the_schemas():
    registry = load_genesis(SAMPLES / "genesis" / "genesis.toml")
    dirs = sorted((SAMPLES / "exports").glob("*/v*"))
    assert {d.name for d in dirs} == {"v1", "v2"}
    for d in dirs:
        files = read_export(d)
        previous = read_export(d.with_name("v1")) if d.name == "v2" else None
        report = verify_export(files, registry, previous=previous)
        assert report.ok, (d, report.problems)
        assert schema_problems(files) == [], d
    index = json_validator("index.jsonl")
    entries = read_index(SAMPLES)
    assert all(not list(index.iter_errors(e)) for e in entries)
    assert {e["path"] for e in entries} == {f"{d.parent.name}/{d.name}" for d in dirs
                                            if not (d.parent / f"v{int(d.name[1:]) + 1}").exists()}


def test_the_samples_are_what_the_exporter_writes_today(tmp_path):
    """If the export format changed: python tests/export/export_chain.py docs/samples"""
    chain.write_samples(tmp_path)
    for path in sorted((tmp_path / "exports").rglob("*")):
        if path.is_file():
            sample = SAMPLES / path.relative_to(tmp_path)
            assert sample.exists() and sample.read_bytes() == path.read_bytes(), sample


def test_index_names_the_latest_version_and_is_replaced_atomically(tmp_path, exports):
    g = chain.G
    write_export(tmp_path, exports[g, 1])
    assert [(e["period_start"], e["version"]) for e in read_index(tmp_path)] == [("2026-11-21T10:00:00Z", 1)]
    write_export(tmp_path, exports[g + 1, 1])
    write_export(tmp_path, exports[g, 2])
    write_export(tmp_path, exports[g, 1])  # written again (idempotent): the index keeps v2
    assert [(e["path"]) for e in read_index(tmp_path)] == ["20261121T100000Z/v2", "20261121T101500Z/v1"]
    (tmp_path / "exports" / "index.jsonl").unlink()  # an older home without an index: rebuilt on the next export
    write_export(tmp_path, exports[g + 1, 2])
    assert [(e["path"]) for e in read_index(tmp_path)] == ["20261121T100000Z/v2", "20261121T101500Z/v2"]
    assert sorted(p.name for p in (tmp_path / "exports").iterdir() if p.is_file()) == [".index.lock", "index.jsonl"]
