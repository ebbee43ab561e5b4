"""Verifying an export offline, with nothing but its files and the genesis (registry).

The chain of trust, checked in this order:
1. manifest.json is canonical JSON of the expected shape;
2. every listed file is present with its SHA-256 and record count, and nothing else is there;
3. the seal in the manifest hashes to the seal hash, belongs to the genesis' chain and registry, and the
   commit certificate has more than 2/3 valid validator signatures over that hash at the seal's height;
4. everything else in the manifest is what the seal and certificate say;
5. the meter-point rows recompute the sealed period result exactly (counts, cells, areas, groups, mix,
   checks, Merkle root), agree with the registry and with the JSON Lines file;
6. the group, area and schedule tables, the MSCONS quantities and changes.csv are what the seal and the rows
   give, byte for byte.

Each problem names the file, the place (line, segment, signature) and a stable reason code.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Mapping

from stromledger.cascade.messages import MISSING, QUALITY_NAMES, PeriodResult, PeriodSeal
from stromledger.cascade.rows import MeterRow, check_invariants, recompute_result
from stromledger.codec import CodecError
from stromledger.consensus.certificate import CertificateError, verify_certificate
from stromledger.consensus.messages import CommitCertificate
from stromledger.crypto import sha256
from stromledger.registry import Registry, decode_change, registry_at, view, with_changes
from stromledger.registry.changes import trust_problem

from . import mscons, tables
from .build import export_files
from .compare import result_difference
from .manifest import FORMAT, FORMAT_VERSION, MANIFEST, count_records, manifest_dict
from .network import verify_network_export
from .report import Problem, Report
from .text import FormatError, csv_lines, json_document, json_line, parse_hex, parse_int, parse_json

MAX_PROBLEMS = 50
REQUIRED = (tables.METER_POINTS_CSV, tables.METER_POINTS_JSONL, tables.GROUPS_CSV, tables.AREAS_CSV,
            tables.SCHEDULES_CSV)


class _Stop(Exception):
    """Nothing further can be checked (for example the seal itself is not valid)."""


def verify_export(files: Mapping[str, bytes], registry: Registry,
                  previous: Mapping[str, bytes] | None = None) -> Report:
    """Check an export (`{file name: bytes}`, as `read_export` gives) against the registry of the genesis.
    `previous`: the export of version - 1 of the same period, to check changes.csv completely (without it,
    each listed change is checked against the current rows only). The report lists every problem found.
    A network chain's export (manifest `scope` "network") is checked by export/network.py."""
    if _scope(files) == "network":
        return verify_network_export(files, registry)
    v = _Verifier(files, registry, previous)
    try:
        v.run()
    except _Stop:
        pass
    return v.report


def _scope(files: Mapping[str, bytes]) -> str | None:
    try:
        m = parse_json(files[MANIFEST].decode("utf-8"))
    except (KeyError, UnicodeDecodeError, FormatError):
        return None
    return m.get("scope") if isinstance(m, dict) else None


def _where_line(line: int, malo: str = "", column: str = "") -> str:
    out = f"line {line}"
    if malo:
        out += f" (MaLo {malo})"
    if column:
        out += f", column {column}"
    return out


def _first_difference(path: str, got: Any, want: Any) -> tuple[str, Any, Any] | None:
    if isinstance(want, dict) and isinstance(got, dict):
        for k in sorted(want.keys() | got.keys()):
            if k not in got:
                return f"{path}{k}", "(missing)", want[k]
            if k not in want:
                return f"{path}{k}", got[k], "(no such field)"
            d = _first_difference(f"{path}{k}.", got[k], want[k])
            if d:
                return d
        return None
    if isinstance(want, list) and isinstance(got, list):
        for i, (a, b) in enumerate(zip(got, want)):
            d = _first_difference(f"{path[:-1]}[{i}].", a, b)
            if d:
                return d
        if len(got) != len(want):
            return path[:-1], f"{len(got)} items", f"{len(want)} items"
        return None
    if got != want or type(got) is not type(want):
        return path[:-1], got, want
    return None


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Verifier:
    def __init__(self, files: Mapping[str, bytes], registry: Registry, previous: Mapping[str, bytes] | None):
        self.files = dict(files)
        self.reg = registry
        self.previous = previous
        self.report = Report()
        self.good: set[str] = set()  # files whose hash and record count match the manifest
        self.seal_hash = b""

    def fail(self, reason: str, file: str, where: str, message: str) -> None:
        self.report.problems.append(Problem(reason, file, where, message))
        if len(self.report.problems) >= MAX_PROBLEMS:
            raise _Stop

    # -- the whole run -------------------------------------------------------------------------------------

    def run(self) -> None:
        m = self.manifest()
        scope = m.get("scope")
        if not self.reg.scope and isinstance(scope, str) and scope in self.reg.grid_areas:
            self.reg = view(self.reg, scope)  # an area chain's export: checked against that area's view
        listed = self.listed_files(m)
        seal, seal_bytes, cert, result = self.proof(m)
        self.manifest_fields(m, seal, seal_bytes, cert, result)
        rows, records = self.meter_points(result)
        if rows is None:
            return
        self.report.meter_points = len(rows)
        expected = export_files(self.reg, seal, seal_bytes, cert, result, rows, None, self.committee)
        self.file_set(listed, expected, result)
        self.jsonl(records)
        for name in (tables.GROUPS_CSV, tables.AREAS_CSV, tables.SCHEDULES_CSV):
            self.same_csv(name, expected[name], "the seal gives")
        if tables.REGISTRY_CHANGES_JSONL in expected:
            self.same_bytes(tables.REGISTRY_CHANGES_JSONL, expected[tables.REGISTRY_CHANGES_JSONL])
        self.mscons(rows, expected)
        if result.version > 1:
            self.changes(result, records)
        self.same_bytes(tables.METER_POINTS_CSV, expected[tables.METER_POINTS_CSV])
        self.same_bytes(tables.METER_POINTS_JSONL, expected[tables.METER_POINTS_JSONL])

    # -- 1. the manifest -----------------------------------------------------------------------------------

    def manifest(self) -> dict:
        data = self.files.get(MANIFEST)
        if data is None:
            self.fail("missing_file", MANIFEST, "", "there is no manifest: this is not an export directory")
            raise _Stop
        try:
            m = parse_json(data.decode("utf-8"))
        except UnicodeDecodeError as e:
            self.fail("bad_manifest", MANIFEST, f"byte {e.start}", "not UTF-8")
            raise _Stop
        except FormatError as e:
            self.fail("bad_manifest", MANIFEST, "", str(e))
            raise _Stop
        if not isinstance(m, dict):
            self.fail("bad_manifest", MANIFEST, "", "not a JSON object")
            raise _Stop
        if m.get("format") != FORMAT or m.get("format_version") != FORMAT_VERSION:
            self.fail("bad_manifest", MANIFEST, "format", f"format {m.get('format')!r} version "
                      f"{m.get('format_version')!r}; this verifier reads {FORMAT!r} version {FORMAT_VERSION}")
            raise _Stop
        canonical = json_document(m)
        if canonical != data:
            a, b = data.split(b"\n"), canonical.split(b"\n")
            line = next((i + 1 for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            self.fail("bad_manifest", MANIFEST, f"line {line}", "not in canonical form (sorted keys, two-space "
                                                                "indent, no trailing spaces, final line feed)")
        self.report.files = 1
        return m

    def _get(self, m: Any, path: str, kind: type) -> Any:
        value = m
        for key in path.split("."):
            if not isinstance(value, dict) or key not in value:
                self.fail("bad_manifest", MANIFEST, path, "missing")
                raise _Stop
            value = value[key]
        if type(value) is not kind:
            self.fail("bad_manifest", MANIFEST, path, f"expected {kind.__name__}, got {type(value).__name__}")
            raise _Stop
        return value

    # -- 2. files, hashes, record counts -------------------------------------------------------------------

    def listed_files(self, m: dict) -> dict[str, dict]:
        listed = self._get(m, "files", dict)
        for name, entry in sorted(listed.items()):
            ok_name = name and "/" not in name and "\\" not in name and not name.startswith(".") and name != MANIFEST
            if not ok_name or not isinstance(entry, dict) or set(entry) != {"sha256", "records"} or \
                    type(entry["sha256"]) is not str or type(entry["records"]) is not int:
                self.fail("bad_manifest", MANIFEST, f"files.{name}", "a file entry is a plain file name with "
                                                                     "sha256 (hex) and records (integer)")
                continue
            data = self.files.get(name)
            if data is None:
                self.fail("missing_file", name, "", "listed in the manifest but not in the export")
                continue
            actual = sha256(data).hex()
            if actual != entry["sha256"]:
                self.fail("file_hash", name, "", f"SHA-256 is {actual}, the manifest lists {_short(entry['sha256'])}")
                continue
            try:
                count = count_records(name, data)
            except ValueError:
                self.fail("bad_manifest", MANIFEST, f"files.{name}", "not a file an export contains")
                continue
            if count != entry["records"]:
                self.fail("record_count", name, "", f"{count} records, the manifest lists {entry['records']}")
                continue
            self.good.add(name)
        for name in sorted(self.files):
            if name != MANIFEST and name not in listed:
                self.fail("unlisted_file", name, "", "in the export directory but not listed in the manifest")
        for name in REQUIRED:
            if name not in listed and name in self.files:
                continue  # reported as unlisted
            if name not in listed:
                self.fail("missing_file", name, "", "every export has this file; the manifest does not list it")
        self.report.files += len(self.good)
        return listed

    # -- 3. the seal and its certificate -------------------------------------------------------------------

    def proof(self, m: dict) -> tuple[PeriodSeal, bytes, CommitCertificate, PeriodResult]:
        text = self._get(m, "seal", str)
        seal_hash_hex = self._get(m, "seal_hash", str)
        try:
            seal_bytes = base64.b64decode(text, validate=True)
            if base64.b64encode(seal_bytes).decode() != text:
                raise ValueError("not canonical")
        except (binascii.Error, ValueError):
            self.fail("bad_seal", MANIFEST, "seal", "not canonical base64")
            raise _Stop
        actual = sha256(seal_bytes).hex()
        if actual != seal_hash_hex:
            self.fail("seal_hash", MANIFEST, "seal", f"the seal bytes hash to {actual}, the manifest's seal_hash is "
                                                     f"{_short(seal_hash_hex)}")
            raise _Stop
        self.seal_hash = sha256(seal_bytes)
        try:
            seal = PeriodSeal.decode(seal_bytes)
        except CodecError as e:
            self.fail("bad_seal", MANIFEST, "seal", f"not a PeriodSeal: {e}")
            raise _Stop
        self.report.chain_id, self.report.height, self.report.seal_hash = seal.chain_id, seal.height, actual
        if seal.chain_id != self.reg.chain_id:
            self.fail("wrong_chain", MANIFEST, "seal", f"the seal is of chain {seal.chain_id!r}, the genesis file "
                                                       f"is of chain {self.reg.chain_id!r}")
            raise _Stop
        if seal.registry_hash != self.reg.hash:
            self.fail("wrong_genesis", MANIFEST, "seal", f"the seal was made with registry "
                      f"{seal.registry_hash.hex()}, the genesis file gives registry {self.reg.hash.hex()}")
            raise _Stop
        cert_hex = self._get(m, "certificate.encoded", str)
        try:
            cert = CommitCertificate.decode(parse_hex(cert_hex, "certificate.encoded"))
        except (FormatError, CodecError) as e:
            self.fail("bad_certificate", MANIFEST, "certificate.encoded", str(e))
            raise _Stop
        # the committee of the seal's height: the genesis view's, or the one the carried changes installed
        committee = self.committee = registry_at(self.reg, seal.height, self.carried_changes())
        try:
            verify_certificate(cert, self.seal_hash, committee.validator_keys(), self.reg.chain_id, height=seal.height)
        except CertificateError as e:
            where = "certificate"
            if e.index is not None:
                name = committee.validators[e.index].name if e.index < len(committee.validators) else "unknown"
                where = f"certificate, signature of validator {e.index} ({name})"
            self.fail(f"certificate_{e.reason}", MANIFEST, where, str(e))
            raise _Stop
        period = self._get(m, "period.index", int)
        version = self._get(m, "version", int)
        self.report.period, self.report.version = period, version
        result = seal.result(period)
        if result is None or result.version != version:
            self.fail("bad_manifest", MANIFEST, "period", f"the seal at height {seal.height} has no result for "
                                                          f"period {period} version {version}")
            raise _Stop
        self.reg = self.registry_version(result)
        broken = check_invariants(self.reg, result)
        if broken is not None:
            self.fail("invariant", MANIFEST, "seal", str(broken))
            raise _Stop
        return seal, seal_bytes, cert, result

    def carried_changes(self) -> tuple:
        """The registry changes the export carries (registry-changes.jsonl), in history order; every approved
        change (a committee change, ...) approved by the committee in office before it (the chain of trust
        from the genesis committee)."""
        name = tables.REGISTRY_CHANGES_JSONL
        if name not in self.files:
            return ()
        if name not in self.good:
            raise _Stop  # its hash or record count is already reported
        changes = []
        for line, raw in enumerate(self.files[name].split(b"\n")[:-1], 1):
            try:
                rec = parse_json(raw.decode("utf-8"))
                changes.append(decode_change(parse_hex(rec["encoded"], "encoded")))
            except (FormatError, CodecError, KeyError, TypeError, UnicodeDecodeError) as e:
                self.fail("bad_registry_change", name, f"line {line}", f"not a registry change: {e}")
                raise _Stop
        history = with_changes((), changes)
        problem = trust_problem(self.reg, history)
        if problem is not None:
            self.fail("bad_registry_change", name, "", problem)
            raise _Stop
        return history

    def registry_version(self, result: PeriodResult) -> Registry:
        """The registry version the result names, rebuilt from the genesis and the registry changes the export
        carries (registry-changes.jsonl); the certified seal pins the version, the version pins the changes."""
        changes = self.carried_changes()
        reg = registry_at(self.reg, result.period, changes)
        if reg.version != result.registry_version:
            self.fail("registry_version", tables.REGISTRY_CHANGES_JSONL if changes else MANIFEST, "",
                      f"the genesis and the {len(changes)} registry change(s) carried give registry version "
                      f"{reg.version.hex()}, the seal settled period {result.period} under "
                      f"{result.registry_version.hex()}")
            raise _Stop
        return reg

    # -- 4. the rest of the manifest -----------------------------------------------------------------------

    def manifest_fields(self, m: dict, seal: PeriodSeal, seal_bytes: bytes, cert: CommitCertificate,
                        result: PeriodResult) -> None:
        want = manifest_dict(registry=self.reg, seal=seal, seal_bytes=seal_bytes, certificate=cert, result=result,
                             committee=self.committee,
                             files={})
        got = {k: v for k, v in m.items() if k != "files"}
        want.pop("files")
        d = _first_difference("", got, want)
        if d is not None:
            path, a, b = d
            at = ""
            if isinstance(a, str) and isinstance(b, str):
                i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
                at = f" (they differ from character {i + 1})"
            self.fail("manifest_mismatch", MANIFEST, path, f"has {_short(a)}, the seal and certificate give "
                                                           f"{_short(b)}{at}")

    # -- 5. the meter-point rows ---------------------------------------------------------------------------

    def meter_points(self, result: PeriodResult) -> tuple[list[MeterRow] | None, list[dict]]:
        name = tables.METER_POINTS_CSV
        if name not in self.good:
            return None, []
        try:
            lines = csv_lines(self.files[name], tables.METER_POINT_COLUMNS)
        except FormatError as e:
            self.fail("bad_row", name, "", str(e))
            return None, []
        reg = self.reg
        p = reg.period(result.period)
        start, end = tables.interval(p)
        seal_hex = self.seal_hash.hex()
        records: list[dict] = []
        rows: list[MeterRow] = []
        problems = len(self.report.problems)
        seen: set[str] = set()
        previous = ""
        for line, cells in lines:
            rec = dict(zip(tables.METER_POINT_COLUMNS, cells))
            malo = rec["malo_id"]
            mp = reg.meter_points.get(malo)
            if mp is None:
                self.fail("unknown_meter_point", name, _where_line(line, malo), "not a meter point of the genesis")
                continue
            if malo in seen:
                self.fail("duplicate_row", name, _where_line(line, malo), "a second row for this meter point")
                continue
            if malo < previous:
                self.fail("row_order", name, _where_line(line, malo), f"after {previous}: rows are in MaLo-ID order")
            seen.add(malo)
            previous = max(previous, malo)
            want = {"period_start": start, "period_end": end, "seal_hash": seal_hex, "grid_area": mp.grid_area,
                    "balancing_group": reg.group_of(malo, result.period), "kind": mp.kind, "source": mp.source}
            bad = False
            for column, value in want.items():
                if rec[column] != value:
                    self.fail("registry_mismatch" if column not in ("period_start", "period_end", "seal_hash")
                              else "row_mismatch", name, _where_line(line, malo, column),
                              f"has {_short(rec[column])}, expected {value}")
                    bad = True
            try:
                if rec["quality"] not in tables.QUALITY_BY_NAME:
                    raise FormatError(f"column quality: {rec['quality']!r} is not one of "
                                      f"{', '.join(QUALITY_NAMES.values())}")
                _parse_ints(rec)
                sig = parse_hex(rec["reading_sig"], "column reading_sig")
                if len(sig) not in (0, 64):
                    raise FormatError("column reading_sig: a signature is 64 bytes (or empty without a reading)")
            except FormatError as e:
                self.fail("bad_row", name, _where_line(line, malo), str(e))
                continue
            if not bad:
                records.append(rec)
                rows.append(tables.row_of_record(rec))
        missing = [m for m in reg.malo_order if m not in seen]
        if missing:
            self.fail("missing_meter_point", name, "", f"{len(missing)} meter point(s) of the genesis have no row, "
                                                       f"first {missing[0]}")
        if len(self.report.problems) > problems:
            return None, []
        diff = result_difference(result, recompute_result(reg, rows, result))
        if diff is not None:
            self.fail("result_mismatch", name, "", f"the rows do not recompute the sealed result: {diff}")
            return None, []
        return rows, records

    def jsonl(self, records: list[dict]) -> None:
        name = tables.METER_POINTS_JSONL
        if name not in self.good:
            return
        try:
            text = self.files[name].decode("utf-8")
        except UnicodeDecodeError as e:
            self.fail("bad_row", name, f"byte {e.start}", "not UTF-8")
            return
        lines = text.split("\n")
        if lines[-1] != "":
            self.fail("bad_row", name, f"line {len(lines)}", "the last line does not end in LF")
            return
        lines.pop()
        if len(lines) != len(records):
            self.fail("csv_jsonl_mismatch", name, "", f"{len(lines)} lines, meter-points.csv has {len(records)} rows")
            return
        columns = set(tables.METER_POINT_COLUMNS)
        for i, (text, rec) in enumerate(zip(lines, records), 1):
            where = _where_line(i, rec["malo_id"])
            try:
                obj = parse_json(text)
            except FormatError as e:
                self.fail("bad_row", name, where, str(e))
                continue
            if not isinstance(obj, dict) or set(obj) != columns:
                self.fail("bad_row", name, where, "an object with exactly the meter-points.csv columns as keys")
                continue
            for column in tables.METER_POINT_COLUMNS:
                if obj[column] != rec[column] or type(obj[column]) is not type(rec[column]):
                    self.fail("csv_jsonl_mismatch", name, f"{where}, field {column}",
                              f"has {_short(obj[column])}, meter-points.csv line {i + 1} has {_short(rec[column])}")
                    break
            else:
                if json_line(obj) != text:
                    self.fail("bad_row", name, where, "not canonical JSON (sorted keys, no spaces)")

    # -- 6. the derived files ------------------------------------------------------------------------------

    def file_set(self, listed: dict, expected: dict[str, bytes], result: PeriodResult) -> None:
        names = set(expected) - {MANIFEST}
        if result.version > 1:
            names.add(tables.CHANGES_CSV)
        for name in sorted(names - set(listed)):
            if name not in REQUIRED:
                self.fail("missing_file", name, "", "the rows and the seal call for this file; the manifest does "
                                                    "not list it")
        for name in sorted(set(listed) - names):
            self.fail("unexpected_file", name, "", "listed in the manifest, but the seal and rows call for no such "
                                                   "file")

    def same_csv(self, name: str, want: bytes, source: str) -> None:
        if name not in self.good:
            return
        got = self.files[name]
        if got == want:
            return
        a, b = got.decode("utf-8", "replace").split("\n"), want.decode().split("\n")
        header = b[0].split(",")
        for i, (x, y) in enumerate(zip(a, b), 1):
            if x != y:
                xs, ys = x.split(","), y.split(",")
                col = next((j for j, (u, w) in enumerate(zip(xs, ys)) if u != w), min(len(xs), len(ys)))
                column = header[col] if col < len(header) else f"#{col + 1}"
                self.fail("content_mismatch", name, f"line {i}, column {column}",
                          f"has {_short(xs[col] if col < len(xs) else '(none)')}, {source} "
                          f"{_short(ys[col] if col < len(ys) else '(none)')}")
                return
        self.fail("content_mismatch", name, "", f"{len(a) - 1} lines, {source} {len(b) - 1}")

    def same_bytes(self, name: str, want: bytes) -> None:
        if name in self.good and self.files[name] != want and not any(p.file == name for p in self.report.problems):
            a, b = self.files[name].split(b"\n"), want.split(b"\n")
            line = next((i + 1 for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            self.fail("not_canonical", name, f"line {line}", "same values, but not written in the export's exact "
                                                             "form (quoting, spacing)")

    def mscons(self, rows: list[MeterRow], expected: dict[str, bytes]) -> None:
        by_group: dict[str, list[MeterRow]] = {}
        for r in rows:
            by_group.setdefault(r.balancing_group, []).append(r)
        p = self.reg.period(self.report.period)
        start, end = mscons.dtm("163", p.start)[1:], mscons.dtm("164", p.end)[1:]
        for name in sorted(n for n in self.good if n.endswith(".edi")):
            want = expected.get(name)
            if want is None:
                continue  # reported by file_set
            group = name[len("mscons-"):-len(".edi")]
            try:
                segments = mscons.parse_segments(self.files[name])
                quantities = mscons.read_quantities(segments)
            except FormatError as e:
                self.fail("bad_mscons", name, "", str(e))
                continue
            expect = [(r.malo_id, obis, mscons.QUALIFIERS[r.quality], wh, start, end)
                      for r in by_group.get(group, []) if r.quality != MISSING  # missing is not 0: no QTY
                      for obis, wh in ((mscons.OBIS_IMPORT, r.import_wh), (mscons.OBIS_EXPORT, r.export_wh))]
            bad = False
            for q, e in zip(quantities, expect):
                got = (q.malo_id, q.obis, q.qualifier, q.wh, q.start, q.end)
                if got != e:
                    labels = ("location", "OBIS code", "qualifier", "quantity (Wh)", "start", "end")
                    k = next(i for i in range(6) if got[i] != e[i])
                    self.fail("mscons_mismatch", name, f"segment {q.segment} (QTY of {q.malo_id} {q.obis})",
                              f"{labels[k]} {got[k]}, meter-points.csv gives {e[k]}")
                    bad = True
                    break
            if not bad and len(quantities) != len(expect):
                self.fail("mscons_mismatch", name, "", f"{len(quantities)} quantities, meter-points.csv gives "
                                                       f"{len(expect)} for group {group}")
                bad = True
            if not bad and self.files[name] != want:
                ours = mscons.parse_segments(want)
                for s, t in zip(segments, ours):
                    if s != t:
                        self.fail("mscons_mismatch", name, f"segment {s.number} ({s.tag})",
                                  f"differs from what the seal gives: expected {_short(_segment_text(t))}")
                        break
                else:
                    self.fail("mscons_mismatch", name, "", f"{len(segments)} segments, expected {len(ours)}")

    def changes(self, result: PeriodResult, records: list[dict]) -> None:
        name = tables.CHANGES_CSV
        if name not in self.good:
            return
        if self.previous is not None:
            want = self._changes_from_previous(result, records)
            if want is not None:
                self.same_csv(name, want, "the previous export gives")
            return
        try:
            lines = csv_lines(self.files[name], tables.CHANGE_COLUMNS)
        except FormatError as e:
            self.fail("bad_row", name, "", str(e))
            return
        current = {r["malo_id"]: r for r in records}
        for line, (malo, column, _old, new) in lines:
            rec = current.get(malo)
            if rec is None or column not in tables.CHANGE_FIELDS:
                self.fail("changes_mismatch", name, _where_line(line, malo), f"no meter point {malo} or no field "
                                                                             f"{column!r}")
            elif str(rec[column]) != new:
                self.fail("changes_mismatch", name, _where_line(line, malo, "new"),
                          f"has {_short(new)}, meter-points.csv has {column} = {_short(rec[column])}")

    def _changes_from_previous(self, result: PeriodResult, records: list[dict]) -> bytes | None:
        prev = verify_export(self.previous, self.reg)
        if not prev.ok:
            self.fail("previous_invalid", tables.CHANGES_CSV, "", f"the previous export does not verify: "
                                                                  f"{prev.problems[0]}")
            return None
        if (prev.period, prev.version) != (result.period, result.version - 1):
            self.fail("previous_invalid", tables.CHANGES_CSV, "", f"the previous export is period {prev.period} "
                      f"version {prev.version}, not period {result.period} version {result.version - 1}")
            return None
        old = [tables.row_of_record(r) for r in _records(self.previous[tables.METER_POINTS_CSV])]
        p = self.reg.period(result.period)
        before = [tables.meter_record(p, b"", r) for r in old]
        return tables.changes_csv(tables.changes(before, records))


def _records(data: bytes) -> list[dict]:
    """Typed records of a meter-points.csv that has been verified."""
    out = []
    for _, cells in csv_lines(data, tables.METER_POINT_COLUMNS):
        rec = dict(zip(tables.METER_POINT_COLUMNS, cells))
        _parse_ints(rec)
        out.append(rec)
    return out


def _parse_ints(rec: dict) -> None:
    """The integer columns of a meter-points.csv record, in place. A `missing` value is empty (None), never 0;
    any other quality has one."""
    missing = rec["quality"] == QUALITY_NAMES[MISSING]
    for column in tables.INT_COLUMNS:
        if column in tables.ENERGY_COLUMNS and missing:
            if rec[column] != "":
                raise FormatError(f"column {column}: a missing value is empty, not {rec[column]!r}")
            rec[column] = None
            continue
        hi = 1 if column == "reading_register" else 2**64 - 1
        rec[column] = parse_int(rec[column], f"column {column}", 0, hi)


def _segment_text(s: mscons.Segment) -> str:
    return "+".join([s.tag, *(":".join(mscons.escape(c) for c in e) for e in s.elements)]) + "'"
