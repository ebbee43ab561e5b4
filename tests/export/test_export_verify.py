"""Verification: every valid export passes; every tampering fails with a reason naming the file and place."""

from __future__ import annotations

import dataclasses
import json

import pytest

import export_chain as chain
from export_chain import G, G1, G3
from stromledger.export import verify_export
from stromledger.export.manifest import file_entry
from stromledger.export.text import json_document, parse_kwh
from stromledger.registry import Registry

CORRECTION_FILES = ["manifest.json", "meter-points.csv", "meter-points.jsonl", "balancing-groups.csv", "areas.csv",
                    "schedules.csv", "changes.csv", f"mscons-{chain.G1}.edi", f"mscons-{chain.G2}.edi",
                    f"mscons-{chain.G3}.edi"]
POSITIONS = [0, 1, 0.25, 0.5, 0.75, -2, -1]


def rehash(files: dict[str, bytes]) -> dict[str, bytes]:
    """What a forger who rewrites the manifest's file hashes and counts would produce."""
    m = json.loads(files["manifest.json"])
    m["files"] = {n: file_entry(n, d) for n, d in sorted(files.items()) if n != "manifest.json"}
    return {**files, "manifest.json": json_document(m)}


def reasons(report) -> list[str]:
    return [p.reason for p in report.problems]


def test_every_export_of_the_chain_verifies(exports, registry):
    for key, files in exports.items():
        report = verify_export(files, registry)
        assert report.ok, (key, str(report))
        assert (report.period, report.version) == key
        assert report.files == len(files) and report.meter_points == len(registry.meter_points)


def test_correction_has_every_kind_of_file(correction):
    assert sorted(correction) == sorted(CORRECTION_FILES)


@pytest.mark.parametrize("name", CORRECTION_FILES)
@pytest.mark.parametrize("position", POSITIONS)
def test_flipping_any_byte_fails(correction, registry, name, position):
    data = bytearray(correction[name])
    i = int(position * len(data)) if isinstance(position, float) else position % len(data)
    data[i] ^= 0x01
    report = verify_export({**correction, name: bytes(data)}, registry)
    assert not report.ok
    if name != "manifest.json":
        assert report.problems[0].file == name and report.problems[0].reason == "file_hash"
    assert all(str(p) for p in report.problems)


def _tamper_certificate(files: dict[str, bytes], signature: int) -> dict[str, bytes]:
    m = json.loads(files["manifest.json"])
    encoded = bytearray(bytes.fromhex(m["certificate"]["encoded"]))
    sig = bytes.fromhex(m["certificate"]["signatures"][signature]["sig"])
    at = bytes(encoded).index(sig) + 10
    encoded[at] ^= 0x40
    m["certificate"]["encoded"] = bytes(encoded).hex()
    return {**files, "manifest.json": json_document(m)}


def test_tampered_certificate_signature(correction, registry):
    report = verify_export(_tamper_certificate(correction, 1), registry)
    assert reasons(report) == ["certificate_bad_signature"]
    p = report.problems[0]
    assert p.file == "manifest.json" and p.where == "certificate, signature of validator 1 (validator-2)"


def test_readable_certificate_must_match(correction, registry):
    m = json.loads(correction["manifest.json"])
    m["certificate"]["signatures"][0]["name"] = "validator-9"
    report = verify_export({**correction, "manifest.json": json_document(m)}, registry)
    assert reasons(report) == ["manifest_mismatch"]
    assert report.problems[0].where == "certificate.signatures[0].name"


def test_too_few_signatures(registry, commits):
    from stromledger.cascade.messages import PeriodSeal
    from stromledger.export.build import export_files

    c = commits[0]
    weak = chain.certify(registry, G, c.seal_hash, (0, 3))
    seal = PeriodSeal.decode(c.seal_bytes)
    files = export_files(registry, seal, c.seal_bytes, weak, seal.result(G), c.rows[G], None)
    report = verify_export(files, registry)
    assert reasons(report) == ["certificate_insufficient_power"]


def test_missing_file(correction, registry):
    files = dict(correction)
    del files[f"mscons-{G3}.edi"]
    report = verify_export(files, registry)
    assert [(p.reason, p.file) for p in report.problems] == [("missing_file", f"mscons-{G3}.edi")]
    del files["manifest.json"]
    assert reasons(verify_export(files, registry)) == ["missing_file"]


def test_unlisted_and_unexpected_files(correction, registry):
    report = verify_export({**correction, "notes.txt": b"hello\n"}, registry)
    assert [(p.reason, p.file) for p in report.problems] == [("unlisted_file", "notes.txt")]
    files = dict(correction)
    del files[f"mscons-{G3}.edi"]
    files = rehash(files)
    report = verify_export(files, registry)
    assert [(p.reason, p.file) for p in report.problems] == [("missing_file", f"mscons-{G3}.edi")]


def _csv_lines(files, name) -> list[bytes]:
    return files[name].split(b"\n")


def test_extra_row(correction, registry):
    lines = _csv_lines(correction, "meter-points.csv")
    extra = b"\n".join(lines[:3] + [lines[2]] + lines[3:])
    report = verify_export({**correction, "meter-points.csv": extra}, registry)
    assert [(p.reason, p.file) for p in report.problems] == [("file_hash", "meter-points.csv")]
    report = verify_export(rehash({**correction, "meter-points.csv": extra}), registry)
    assert reasons(report) == ["duplicate_row"]
    assert report.problems[0].where.startswith("line 4 (MaLo ")


def test_changed_quantity_with_rewritten_manifest(correction, registry):
    lines = _csv_lines(correction, "meter-points.csv")
    cells = lines[1].split(b",")
    cells[5] = str(int(cells[5]) + 1).encode()
    lines[1] = b",".join(cells)
    report = verify_export(rehash({**correction, "meter-points.csv": b"\n".join(lines)}), registry)
    assert reasons(report) == ["result_mismatch"]
    assert "cell" in report.problems[0].message and "merkle_root" in report.problems[0].message


def test_row_that_contradicts_the_registry(correction, registry):
    lines = _csv_lines(correction, "meter-points.csv")
    lines[1] = lines[1].replace(b",grid,", b",pv,")
    report = verify_export(rehash({**correction, "meter-points.csv": b"\n".join(lines)}), registry)
    assert reasons(report) == ["registry_mismatch"]
    assert report.problems[0].where.endswith("column source")


def test_csv_and_jsonl_must_agree(correction, registry):
    lines = correction["meter-points.jsonl"].decode().split("\n")
    obj = json.loads(lines[4])
    obj["export_wh"] += 1
    lines[4] = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    report = verify_export(rehash({**correction, "meter-points.jsonl": "\n".join(lines).encode()}), registry)
    assert reasons(report) == ["csv_jsonl_mismatch"]
    assert report.problems[0].where.startswith("line 5 (MaLo ") and report.problems[0].where.endswith("export_wh")


def test_mscons_quantity_must_match(correction, registry):
    name = f"mscons-{G1}.edi"
    lines = correction[name].decode().split("\n")
    i = next(i for i, line in enumerate(lines) if line.startswith("QTY+") and ":0.000:" not in line)
    qualifier, value, unit = lines[i][4:-1].split(":")
    whole, frac = divmod(parse_kwh(value) + 1, 1000)
    lines[i] = f"QTY+{qualifier}:{whole}.{frac:03d}:{unit}'"
    report = verify_export(rehash({**correction, name: "\n".join(lines).encode()}), registry)
    assert reasons(report) == ["mscons_mismatch"]
    p = report.problems[0]
    assert p.file == name and p.where.startswith(f"segment {i + 1} (QTY of ") and "quantity (Wh)" in p.message


def test_aggregate_tables_must_match_the_seal(correction, registry):
    lines = _csv_lines(correction, "balancing-groups.csv")
    cells = lines[2].split(b",")
    cells[9] = b"1"
    lines[2] = b",".join(cells)
    report = verify_export(rehash({**correction, "balancing-groups.csv": b"\n".join(lines)}), registry)
    assert reasons(report) == ["content_mismatch"]
    assert report.problems[0].where == "line 3, column imbalance_wh"


def test_wrong_genesis(correction, registry):
    other = chain.make_registry()
    params = dataclasses.replace(other.params, correction_window=5)
    changed = Registry(params, other.validators, other.grid_areas.values(), other.balancing_groups.values(),
                       other.meter_operators.values(), other.meter_points.values(), other.assignments)
    assert reasons(verify_export(correction, changed)) == ["wrong_genesis"]
    params = dataclasses.replace(other.params, chain_id="another-chain")
    renamed = Registry(params, other.validators, other.grid_areas.values(), other.balancing_groups.values(),
                       other.meter_operators.values(), other.meter_points.values(), other.assignments)
    assert reasons(verify_export(correction, renamed)) == ["wrong_chain"]


def test_manifest_fields_must_match_the_seal(correction, registry):
    m = json.loads(correction["manifest.json"])
    m["period"]["start"] = "2026-11-21T10:15:00Z"
    report = verify_export({**correction, "manifest.json": json_document(m)}, registry)
    assert [(p.reason, p.where) for p in report.problems] == [("manifest_mismatch", "period.start")]
    m = json.loads(correction["manifest.json"])
    m["version"] = 3
    report = verify_export({**correction, "manifest.json": json_document(m)}, registry)
    assert reasons(report) == ["bad_manifest"] and "no result for period" in report.problems[0].message


def test_manifest_must_be_canonical(correction, registry):
    data = correction["manifest.json"].replace(b'"format": ', b'"format":  ', 1)
    report = verify_export({**correction, "manifest.json": data}, registry)
    assert reasons(report) == ["bad_manifest"] and "canonical" in report.problems[0].message


def test_changes_against_the_previous_export(exports, registry):
    v1, v2 = exports[G, 1], exports[G, 2]
    assert verify_export(v2, registry, previous=v1).ok
    lines = v2["changes.csv"].decode().split("\n")
    assert lines[0] == "malo_id,field,old,new"
    changed = {tuple(x.split(",")[:2]): tuple(x.split(",")[2:]) for x in lines[1:] if x}
    late = chain.MISSING_AT_G
    imp = str(chain.values(G)[late][0])
    assert changed[late, "quality"] == ("missing", "corrected")
    assert changed[late, "import_wh"] == ("", imp)  # missing was empty, not 0
    assert changed[late, "version"] == ("1", "2")
    assert {malo for malo, _ in changed} == {late}
    # a changes.csv that drops a line: caught line by line with the previous export, by the count without it
    forged = rehash({**v2, "changes.csv": "\n".join(lines[:2] + lines[3:]).encode()})
    report = verify_export(forged, registry, previous=v1)
    assert reasons(report) == ["content_mismatch"] and report.problems[0].file == "changes.csv"
    wrong_new = rehash({**v2, "changes.csv": v2["changes.csv"].replace(f",0,{imp}\n".encode(), b",0,1\n")})
    assert set(reasons(verify_export(wrong_new, registry))) == {"changes_mismatch"}  # import_wh, reading_import_wh
    # the previous export must be the version before, and valid
    assert reasons(verify_export(v2, registry, previous=exports[G + 1, 1])) == ["previous_invalid"]


def test_missing_is_not_zero(exports, registry):
    files = exports[G, 1]
    csv = files["meter-points.csv"].decode()
    line = next(x for x in csv.split("\n") if x.startswith(f"2026-11-21T10:00:00Z,2026-11-21T10:15:00Z,"
                                                          f"{chain.MISSING_AT_G},"))
    cells = line.split(",")
    assert cells[5:7] == ["", ""] and cells[8] == "missing"
    zero = ",".join(cells[:5] + ["0", "0"] + cells[7:])  # a 0 standing in for the missing value
    report = verify_export(rehash({**files, "meter-points.csv": csv.replace(line, zero).encode()}), registry)
    assert "bad_row" in reasons(report) and "a missing value is empty" in str(report)
    groups = {r.split(",")[3]: r.split(",")[-1] for r in files["balancing-groups.csv"].decode().split("\n")[1:] if r}
    group = registry.group_of(chain.MISSING_AT_G, G)
    assert int(groups[group]) >= 1  # the group's sums say they lack a value
