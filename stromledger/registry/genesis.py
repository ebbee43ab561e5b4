"""Reading and checking a genesis file (TOML) and its meter-point file (CSV, pinned by SHA-256).

`check_genesis` reads everything it can and reports every defect with its place (file, table and row or
CSV line, field), so an operator fixes a file in one pass. `load_genesis` is the strict form for nodes.
The file layout is documented in docs/domain.md; `write_genesis` (registry/write.py) produces it.
"""

from __future__ import annotations

import csv
import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from stromledger.ids import IdError, parse_eic, parse_malo_id, parse_market_partner_id
from stromledger.periods import parse_utc

from .model import (
    DEFAULT_LOSS_PLAUSIBILITY_PERCENT, GENERATION_SOURCES, KINDS, SOURCES, Assignment, BalancingGroup, ChainParams, ExternalParty, GridArea,
    MeterOperator, MeterPoint, Registry, Supplier, Validator,
)

METER_POINT_FIELDS = ("malo_id", "kind", "source", "grid_area", "balancing_group", "meter_operator", "meter_key",
                      "max_power_w", "area_out", "area_in")
_OPTIONAL_MP_FIELDS = {"balancing_group", "area_out", "area_in"}
SUPPLIER_FIELD = "supplier"  # an optional column: the meter point's supplier (market-partner id)
_CHAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,41}")  # + "/area/<EIC>" fits the codec's 64
_HEX64 = re.compile(r"[0-9a-f]{64}")
MIN_VALIDATORS = 4  # n = 3f + 1 with f >= 1
MAX_CORRECTION_WINDOW = 9_999  # below the seal's bound on results (cascade.messages.MAX_SEAL_RESULTS)
# The correction window of a genesis that sets none: two months. Meter data corrections count until the
# transmission operators' balancing-group settlement of the month (MaBiS: the settlement runs about 42 working
# days after the month ends, i.e. about two months after its first quarter hour): 60 days of 96 quarter hours
# = 5,760 periods at 15 minutes.
DEFAULT_CORRECTION_DAYS = 60
# Bounds on every number in a genesis, so that no valid genesis can overflow the encoding: a seal's totals are
# U64/I64 sums over all meter points (and schedules, bounded in cascade.checks), kept below 2**61 here.
MAX_GRACE_SECONDS = 86_400
MAX_SCHEDULE_HORIZON = 1_000_000  # periods
MAX_POWER_W = 10**11  # 100 GW: more than any single connection (the largest power stations are about 8 GW)
MAX_TOTAL_WH = 2**61  # the whole registry's max energy in one period, one direction
# A period's result lists every grid area, balancing group and (area, group) cell: at most this many each
# (the bounds of cascade.messages.PeriodResult, which tests/test_registry.py keeps equal to these).
MAX_GRID_AREAS, MAX_BALANCING_GROUPS, MAX_CELLS = 10_000, 100_000, 1_000_000


@dataclass(frozen=True, slots=True)
class Defect:
    """One problem in a genesis: where it is (file, table/row or CSV line, field) and what is wrong."""

    file: str
    where: str
    field: str
    message: str
    severity: str = "error"  # "error" makes the genesis unusable; "warning" does not

    def __str__(self) -> str:
        field = f", {self.field}" if self.field else ""
        tag = "warning: " if self.severity == "warning" else ""
        return f"{self.file}: {self.where}{field}: {tag}{self.message}"


class GenesisError(ValueError):
    def __init__(self, defects: list[Defect]):
        errors = [d for d in defects if d.severity == "error"]
        super().__init__(f"{len(errors)} defect(s) in the genesis; first: {errors[0] if errors else '?'}")
        self.defects = defects


def load_genesis(path: str | Path) -> Registry:
    """The registry of a genesis file, or GenesisError listing every defect."""
    registry, defects = check_genesis(path)
    if registry is None:
        raise GenesisError(defects)
    return registry


def check_genesis(path: str | Path) -> tuple[Registry | None, list[Defect]]:
    """Read and check a genesis file. Returns the registry (None if any defect is an error) and every defect,
    errors and warnings, in file order."""
    return _GenesisReader(Path(path)).read()


class _GenesisReader:
    def __init__(self, path: Path):
        self.path = path
        self.file = path.name
        self.defects: list[Defect] = []
        self._valid_eics: set[tuple[str, str | None]] = set()

    # -- reporting ---------------------------------------------------------------------------------------

    def error(self, where: str, field: str, message: str, file: str | None = None) -> None:
        self.defects.append(Defect(file or self.file, where, field, message))

    def warn(self, where: str, field: str, message: str, file: str | None = None) -> None:
        self.defects.append(Defect(file or self.file, where, field, message, "warning"))

    # -- typed field access ------------------------------------------------------------------------------

    def _field(self, row: dict, key: str, where: str, kind: type, file: str | None = None,
               required: bool = True) -> Any:
        if key not in row or row[key] in (None, ""):
            if required:
                self.error(where, key, "missing", file)
            return None
        value = row[key]
        if kind is int and isinstance(value, str):  # CSV cells are text
            try:
                value = int(value)
            except ValueError:
                self.error(where, key, f"{value!r} is not an integer", file)
                return None
        if type(value) is not kind:
            self.error(where, key, f"expected {kind.__name__}, got {type(value).__name__} {value!r}", file)
            return None
        return value

    def _key(self, row: dict, key: str, where: str, file: str | None = None) -> bytes | None:
        text = self._field(row, key, where, str, file)
        if text is None:
            return None
        if not _HEX64.fullmatch(text):
            self.error(where, key, "an Ed25519 public key is 64 lowercase hex characters", file)
            return None
        return bytes.fromhex(text)

    def _eic(self, row: dict, key: str, where: str, object_type: str | None = "Y", file: str | None = None,
             required: bool = True) -> str | None:
        text = self._field(row, key, where, str, file, required)
        if text is None:
            return None
        if (text, object_type) in self._valid_eics:  # a million rows name the same few areas and groups
            return text
        try:
            parse_eic(text, object_type)
            self._valid_eics.add((text, object_type))
            return text
        except IdError as e:
            self.error(where, key, str(e), file)
            return None

    def _instant(self, row: dict, key: str, where: str, period_seconds: int | None) -> int | None:
        text = self._field(row, key, where, str)
        if text is None:
            return None
        try:
            t = parse_utc(text)
        except ValueError as e:
            self.error(where, key, str(e))
            return None
        secs = int(t.timestamp())
        if period_seconds and secs % period_seconds:
            self.error(where, key, f"{text} is not the start of a {period_seconds} s period")
            return None
        return secs

    def _unknown_fields(self, row: dict, allowed: set[str], where: str, file: str | None = None) -> None:
        for key in row:
            if key not in allowed:
                self.error(where, str(key), "unknown field (a typo?)", file)

    def _table_rows(self, doc: dict, name: str) -> list[tuple[str, dict]]:
        rows = doc.get(name, [])
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            self.error(f"[[{name}]]", "", "must be an array of tables ([[" + name + "]])")
            return []
        return [(f"[[{name}]] #{i}", r) for i, r in enumerate(rows, 1)]

    # -- the whole file ----------------------------------------------------------------------------------

    def read(self) -> tuple[Registry | None, list[Defect]]:
        try:
            text = self.path.read_bytes().decode("utf-8")
            doc = tomllib.loads(text)
        except OSError as e:
            self.error("file", "", f"cannot read: {e.strerror or e}")
            return None, self.defects
        except UnicodeDecodeError as e:
            self.error("file", "", f"not UTF-8: {e}")
            return None, self.defects
        except tomllib.TOMLDecodeError as e:
            self.error("file", "", f"not valid TOML: {e}")
            return None, self.defects
        except RecursionError:
            self.error("file", "", "not usable TOML: arrays or tables nested too deeply")
            return None, self.defects
        self._unknown_fields(doc, {"chain", "meter_point_file", "validators", "grid_areas", "balancing_groups",
                                   "meter_operators", "meter_points", "assignments", "external_parties",
                                   "suppliers", "network"},
                            "top level")
        params = self._chain(doc)
        groups = self._groups(doc)
        areas = self._areas(doc, groups)
        operators = self._operators(doc)
        validators = self._validators(doc, areas)
        suppliers = self._suppliers(doc, groups)
        meters = self._meter_points(doc, areas, groups, operators, suppliers)
        assignments = self._assignments(doc, meters, groups, params, suppliers)
        externals = self._external_parties(doc, areas, groups)
        self._areas_without_validator(areas, validators)
        self._total_energy(meters, params)
        self._counts(areas, groups, meters, assignments)
        network = self._network_committee(doc, validators)
        areas = {eic: self._committee_checked(a, validators) for eic, a in areas.items()}
        if params is None or any(d.severity == "error" for d in self.defects):
            return None, self.defects
        registry = Registry(params, validators, areas.values(), groups.values(), operators.values(),
                            meters.values(), assignments, externals.values(), suppliers.values(),
                            network_committee=network)
        return registry, self.defects

    def _chain(self, doc: dict) -> ChainParams | None:
        chain = doc.get("chain")
        where = "[chain]"
        if not isinstance(chain, dict):
            self.error(where, "", "missing: the [chain] table names the chain and its periods")
            return None
        self._unknown_fields(chain, {"id", "genesis", "period_seconds", "gate_closure_grace_seconds",
                                     "correction_window_periods", "schedule_horizon_periods",
                                     "loss_plausibility_percent"}, where)
        chain_id = self._field(chain, "id", where, str)
        if chain_id is not None and not _CHAIN_ID.fullmatch(chain_id):
            self.error(where, "id", "1-42 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit "
                                   "(area chains append /area/<EIC>)")
            chain_id = None
        length = self._field(chain, "period_seconds", where, int)
        if length is not None and not 1 <= length <= 86400:
            self.error(where, "period_seconds", f"{length} is outside 1..86400")
            length = None
        start = self._instant(chain, "genesis", where, length)
        grace = self._field(chain, "gate_closure_grace_seconds", where, int)
        if grace is not None and not 0 <= grace <= MAX_GRACE_SECONDS:
            self.error(where, "gate_closure_grace_seconds", f"{grace} is outside 0..{MAX_GRACE_SECONDS}")
            grace = None
        window = self._field(chain, "correction_window_periods", where, int, required=False)
        if window is None and length:
            window = default_correction_window(length)
        elif window is not None and not 0 <= window <= MAX_CORRECTION_WINDOW:
            self.error(where, "correction_window_periods", f"{window} is outside 0..{MAX_CORRECTION_WINDOW} "
                                                           "(a seal carries at most that many corrected periods)")
            window = None
        horizon = self._field(chain, "schedule_horizon_periods", where, int, required=False)
        if horizon is None and length:
            horizon = max(1, 2 * 86400 // length)  # two days ahead by default
        elif horizon is not None and not 0 <= horizon <= MAX_SCHEDULE_HORIZON:
            self.error(where, "schedule_horizon_periods", f"{horizon} is outside 0..{MAX_SCHEDULE_HORIZON}")
            horizon = None
        plausible = self._field(chain, "loss_plausibility_percent", where, int, required=False)
        if plausible is None:
            plausible = DEFAULT_LOSS_PLAUSIBILITY_PERCENT
        elif not 1 <= plausible <= 100:
            self.error(where, "loss_plausibility_percent", f"{plausible} is outside 1..100")
            plausible = None
        if None in (chain_id, length, start, grace, window, horizon, plausible):
            return None
        return ChainParams(chain_id, start // length, length, grace, window, horizon, plausible)

    def _groups(self, doc: dict) -> dict[str, BalancingGroup]:
        groups: dict[str, BalancingGroup] = {}
        first: dict[str, str] = {}
        for where, row in self._table_rows(doc, "balancing_groups"):
            self._unknown_fields(row, {"eic", "name", "operator_key", "market_partner_id"}, where)
            eic = self._eic(row, "eic", where)
            name = self._field(row, "name", where, str)
            key = self._key(row, "operator_key", where)
            partner = self._market_partner_id(row, where)
            if eic is not None and eic in first:
                self.error(where, "eic", f"duplicate balancing group {eic}, first in {first[eic]}")
            elif None not in (eic, name, key, partner):
                first[eic] = where
                groups[eic] = BalancingGroup(eic, name, key, partner)
        return groups

    def _external_parties(self, doc: dict, areas: dict, groups: dict) -> dict[str, ExternalParty]:
        """Market parties outside the network (exchange, other control areas) that schedules may name."""
        parties: dict[str, ExternalParty] = {}
        for where, row in self._table_rows(doc, "external_parties"):
            self._unknown_fields(row, {"eic", "name"}, where)
            eic = self._eic(row, "eic", where, object_type=None)
            name = self._field(row, "name", where, str)
            if eic is not None and (eic in areas or eic in groups):
                self.error(where, "eic", f"{eic} is already a grid area or balancing group of the network; "
                                         "an external party is outside it")
            elif eic is not None and eic in parties:
                self.error(where, "eic", f"duplicate external party {eic}")
            elif None not in (eic, name):
                parties[eic] = ExternalParty(eic, name)
        return parties

    def _market_partner_id(self, row: dict, where: str, field: str = "market_partner_id",
                           required: bool = False) -> str | None:
        """A 13-digit market-partner id ("" when optional and absent), or None after reporting the defect."""
        text = self._field(row, field, where, str, required=required)
        if text is None:
            return None if required else ""
        try:
            return parse_market_partner_id(text)
        except IdError as e:
            self.error(where, field, str(e))
            return None

    def _suppliers(self, doc: dict, groups: dict) -> dict[str, Supplier]:
        """Suppliers (LF), each in the balancing group of its balance-responsible party (BKV)."""
        suppliers: dict[str, Supplier] = {}
        for where, row in self._table_rows(doc, "suppliers"):
            self._unknown_fields(row, {"id", "name", "balancing_group"}, where)
            ident = self._market_partner_id(row, where, "id", required=True)
            name = self._field(row, "name", where, str)
            group = self._eic(row, "balancing_group", where)
            if group is not None and group not in groups:
                self.error(where, "balancing_group", f"unknown balancing group {group}")
                group = None
            if ident is not None and ident in suppliers:
                self.error(where, "id", f"duplicate supplier {ident}")
            elif None not in (ident, name, group):
                suppliers[ident] = Supplier(ident, name, group)
        return suppliers

    def _supplier_problem(self, suppliers: dict, supplier: str, group: str) -> str | None:
        if supplier not in suppliers:
            return f"unknown supplier {supplier!r} (not in [[suppliers]])"
        if suppliers[supplier].balancing_group != group:
            return (f"supplier {supplier} delivers in balancing group {suppliers[supplier].balancing_group}, "
                    f"not {group}")
        return None

    def _areas(self, doc: dict, groups: dict[str, BalancingGroup]) -> dict[str, GridArea]:
        areas: dict[str, GridArea] = {}
        first: dict[str, str] = {}
        loss_of: dict[str, str] = {}
        for where, row in self._table_rows(doc, "grid_areas"):
            self._unknown_fields(row, {"eic", "name", "operator", "loss_balancing_group", "market_partner_id",
                                       "committee"}, where)
            partner = self._market_partner_id(row, where)
            eic = self._eic(row, "eic", where)
            name = self._field(row, "name", where, str)
            operator = self._field(row, "operator", where, str)
            loss = self._eic(row, "loss_balancing_group", where)
            if eic is not None and eic in groups:
                self.error(where, "eic", f"{eic} is already a balancing group; an EIC names one object")
                eic = None
            if loss is not None and loss not in groups:
                self.error(where, "loss_balancing_group", f"unknown balancing group {loss}")
                loss = None
            elif loss is not None and loss in loss_of:
                self.warn(where, "loss_balancing_group", f"{loss} also books the loss of area {loss_of[loss]}")
            if loss is not None:
                loss_of.setdefault(loss, eic or "?")
            if eic is not None and eic in first:
                self.error(where, "eic", f"duplicate grid area {eic}, first in {first[eic]}")
            elif None not in (eic, name, operator, loss, partner):
                first[eic] = where
                areas[eic] = GridArea(eic, name, operator, loss, market_partner_id=partner,
                                      committee=self._names(row, "committee", where))
        if not doc.get("grid_areas"):
            self.error("[[grid_areas]]", "", "a genesis needs at least one grid area")
        return areas

    def _operators(self, doc: dict) -> dict[str, MeterOperator]:
        operators: dict[str, MeterOperator] = {}
        keys: dict[bytes, str] = {}
        for where, row in self._table_rows(doc, "meter_operators"):
            self._unknown_fields(row, {"name", "public_key"}, where)
            name = self._field(row, "name", where, str)
            key = self._key(row, "public_key", where)
            if name is not None and name in operators:
                self.error(where, "name", f"duplicate meter operator {name!r}")
            elif key is not None and key in keys:
                self.error(where, "public_key", f"key already used by meter operator {keys[key]!r}")
            elif None not in (name, key):
                operators[name] = MeterOperator(name, key)
                keys[key] = name
        return operators

    def _validators(self, doc: dict, areas: dict[str, GridArea]) -> list[Validator]:
        validators: list[Validator] = []
        names: dict[str, str] = {}
        keys: dict[bytes, str] = {}
        rows = self._table_rows(doc, "validators")
        for where, row in rows:
            self._unknown_fields(row, {"name", "public_key", "grid_area"}, where)
            name = self._field(row, "name", where, str)
            key = self._key(row, "public_key", where)
            area = self._eic(row, "grid_area", where)
            if area is not None and area not in areas:
                self.error(where, "grid_area", f"unknown grid area {area}")
                area = None
            if name is not None and name in names:
                self.error(where, "name", f"duplicate validator name {name!r}, first in {names[name]}")
            elif key is not None and key in keys:
                self.error(where, "public_key", f"duplicate validator key, first in {keys[key]}")
            elif None not in (name, key, area):
                names[name] = where
                keys[key] = where
                validators.append(Validator(name, key, area))
        if not rows:
            self.error("[[validators]]", "", "no validators: nothing could ever seal a period")
        elif len(rows) < MIN_VALIDATORS:
            self.warn("[[validators]]", "", f"{len(rows)} validator(s): fewer than {MIN_VALIDATORS} tolerate "
                                            "no faulty validator (n = 3f + 1)")
        return validators

    # -- meter points: inline rows and the pinned CSV file ------------------------------------------------

    def _meter_points(self, doc: dict, areas: dict, groups: dict, operators: dict,
                      suppliers: dict) -> dict[str, MeterPoint]:
        meters: dict[str, MeterPoint] = {}
        first: dict[str, str] = {}
        key_owner: dict[bytes, str] = {}
        check = self._meter_point_checker(areas, groups, operators, suppliers)

        def add(mp: MeterPoint | None, where: str, file: str | None) -> None:
            if mp is None:
                return
            if mp.malo_id in first:
                self.error(where, "malo_id", f"duplicate MaLo-ID {mp.malo_id}, first in {first[mp.malo_id]}", file)
                return
            first[mp.malo_id] = f"{file} {where}" if file else where
            owner = key_owner.setdefault(mp.meter_key, mp.malo_id)
            if owner != mp.malo_id:
                self.warn(where, "meter_key", f"meter key also used by {owner}", file)
            meters[mp.malo_id] = mp

        spec = doc.get("meter_point_file")
        if spec is not None:
            for where, row, file in self._csv_rows(spec):
                add(check(row, where, file), where, file)
        inline = self._table_rows(doc, "meter_points")
        for where, row in inline:
            self._unknown_fields(row, set(METER_POINT_FIELDS) | {SUPPLIER_FIELD}, where)
            add(check(row, where, None), where, None)
        if spec is None and not inline:
            self.warn("[[meter_points]]", "", "no meter points (neither [meter_point_file] nor [[meter_points]])")
        return meters

    def _csv_rows(self, spec: Any):
        where = "[meter_point_file]"
        if not isinstance(spec, dict):
            self.error(where, "", "must be a table with path and sha256")
            return
        self._unknown_fields(spec, {"path", "sha256"}, where)
        rel = self._field(spec, "path", where, str)
        pinned = self._field(spec, "sha256", where, str)
        if pinned is not None and not _HEX64.fullmatch(pinned):
            self.error(where, "sha256", "64 lowercase hex characters")
            pinned = None
        if rel is None:
            return
        path = self.path.parent / rel
        file = Path(rel).name
        try:
            f = path.open("rb")
        except OSError as e:
            self.error(where, "path", f"cannot read {path}: {e.strerror or e}")
            return
        digest = hashlib.sha256()

        def lines():  # streamed: a million-row file is hashed and parsed in one pass, never held whole
            for n, raw in enumerate(f, 1):
                digest.update(raw)
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    self.error(f"line {n}", "", f"not UTF-8: {e}", file)
                    yield ""

        with f:
            source = lines()
            yield from self._csv_records(csv.reader(source), file)
            for _ in source:  # the rest, if the header was wrong: the hash covers the whole file
                pass
        actual = digest.hexdigest()
        if pinned is not None and actual != pinned:
            self.error(where, "sha256", f"the file {rel} has SHA-256 {actual}, the genesis pins {pinned}")

    def _csv_records(self, reader, file: str):
        header = next(reader, None)
        if header is None:
            self.error("line 1", "", "empty file: expected a header row", file)
            return
        header = [h.strip() for h in header]
        missing = [f for f in METER_POINT_FIELDS if f not in header]
        unknown = [h for h in header if h not in METER_POINT_FIELDS and h != SUPPLIER_FIELD]
        if missing or unknown or len(set(header)) != len(header):
            self.error("line 1", "", f"header must be the columns {','.join(METER_POINT_FIELDS)} "
                                     f"(missing {missing}, unknown {unknown})", file)
            return
        for cells in reader:
            line = f"line {reader.line_num}"
            if not cells or cells == [""]:
                continue
            if len(cells) != len(header):
                self.error(line, "", f"{len(cells)} columns, the header has {len(header)}", file)
                continue
            yield line, dict(zip(header, (c.strip() for c in cells))), file

    def _meter_point_checker(self, areas: dict, groups: dict, operators: dict, suppliers: dict
                             ) -> Callable[[dict, str, str | None], MeterPoint | None]:
        interned: dict[str, str] = {}  # one str object per distinct EIC/source/kind across a million rows

        def check(row: dict, where: str, file: str | None) -> MeterPoint | None:
            ok = True
            malo = self._field(row, "malo_id", where, str, file)
            if malo is not None:
                try:
                    parse_malo_id(malo)
                except IdError as e:
                    self.error(where, "malo_id", str(e), file)
                    ok = False
            kind = self._field(row, "kind", where, str, file)
            if kind is not None and kind not in KINDS:
                self.error(where, "kind", f"{kind!r} is not one of {', '.join(KINDS)}", file)
                kind = None
            source = self._field(row, "source", where, str, file)
            if source is not None and source not in SOURCES:
                self.error(where, "source", f"{source!r} is not one of {', '.join(SOURCES)}", file)
                source = None
            if kind and source:
                if kind in ("consumer", "boundary") and source != "grid":
                    self.error(where, "source", f"a {kind} meter point has source 'grid', not {source!r}", file)
                    ok = False
                if kind in ("producer", "prosumer") and source not in GENERATION_SOURCES:
                    self.error(where, "source", f"a {kind} needs a generation source "
                                                f"({', '.join(GENERATION_SOURCES)})", file)
                    ok = False
            area = self._eic(row, "grid_area", where, "Y", file)
            if area is not None and area not in areas:
                self.error(where, "grid_area", f"unknown grid area {area}", file)
                area = None
            group = self._eic(row, "balancing_group", where, "Y", file, required=False) or ""
            if group and group not in groups:
                self.error(where, "balancing_group", f"unknown balancing group {group}", file)
                ok = False
            operator = self._field(row, "meter_operator", where, str, file)
            if operator is not None and operator not in operators:
                self.error(where, "meter_operator", f"unknown meter operator {operator!r}", file)
                operator = None
            key = self._key(row, "meter_key", where, file)
            power = self._field(row, "max_power_w", where, int, file)
            if power is not None and power <= 0:
                self.error(where, "max_power_w", "must be positive", file)
                power = None
            elif power is not None and power > MAX_POWER_W:
                self.error(where, "max_power_w", f"{power} W is above the bound of {MAX_POWER_W} W", file)
                power = None
            out = self._eic(row, "area_out", where, "Y", file, required=False) or ""
            into = self._eic(row, "area_in", where, "Y", file, required=False) or ""
            for field, value in (("area_out", out), ("area_in", into)):
                if value and value not in areas:
                    self.error(where, field, f"unknown grid area {value} (leave empty for outside the network)",
                               file)
                    ok = False
            if kind == "boundary":
                if group:
                    self.error(where, "balancing_group", "a boundary meter belongs to no balancing group", file)
                    ok = False
                if not out and not into:
                    self.error(where, "area_out", "a boundary meter needs area_out or area_in (or both)", file)
                    ok = False
                elif out == into:
                    self.error(where, "area_in", "area_out and area_in must differ", file)
                    ok = False
                elif area and area not in (out, into):
                    self.error(where, "grid_area", "a boundary meter's grid_area is its area_out or area_in", file)
                    ok = False
            elif kind is not None:
                if out or into:
                    self.error(where, "area_out", "only boundary meters have area_out/area_in", file)
                    ok = False
                if row.get("balancing_group") in ("", None):
                    self.error(where, "balancing_group", "assigned to no balancing group: every consumer, "
                                                         "producer and prosumer needs one from genesis on", file)
                    ok = False
            supplier = row.get(SUPPLIER_FIELD) or ""
            if supplier:
                problem = (f"a {kind} meter point has no supplier" if kind == "boundary"
                           else self._supplier_problem(suppliers, supplier, group))
                if problem:
                    self.error(where, SUPPLIER_FIELD, problem, file)
                    ok = False
            if not ok or None in (malo, kind, source, area, operator, key, power):
                return None
            i = interned.setdefault
            return MeterPoint(malo, i(kind, kind), i(source, source), i(area, area), i(group, group),
                              i(operator, operator), key, power, i(out, out), i(into, into), i(supplier, supplier))

        return check

    # -- supplier switches and completeness ---------------------------------------------------------------

    def _assignments(self, doc: dict, meters: dict, groups: dict, params: ChainParams | None,
                     suppliers: dict) -> list[Assignment]:
        out: list[Assignment] = []
        first: dict[tuple[str, int], str] = {}
        length = params.period_seconds if params else None
        for where, row in self._table_rows(doc, "assignments"):
            self._unknown_fields(row, {"malo_id", "balancing_group", "from", "supplier"}, where)
            malo = self._field(row, "malo_id", where, str)
            if malo is not None and malo not in meters:
                try:
                    parse_malo_id(malo)
                    self.error(where, "malo_id", f"unknown meter point {malo}")
                except IdError as e:
                    self.error(where, "malo_id", str(e))
                malo = None
            elif malo is not None and meters[malo].kind == "boundary":
                self.error(where, "malo_id", f"{malo} is a boundary meter: it belongs to no balancing group")
                malo = None
            group = self._eic(row, "balancing_group", where)
            if group is not None and group not in groups:
                self.error(where, "balancing_group", f"unknown balancing group {group}")
                group = None
            start = self._instant(row, "from", where, length)
            period = None
            if start is not None and params is not None:
                period = start // params.period_seconds
                if period <= params.genesis_period:
                    self.error(where, "from", "a switch starts after the genesis period (the meter-point file "
                                              "gives the group at genesis)")
                    period = None
            if malo is not None and period is not None:
                if (malo, period) in first:
                    self.error(where, "from", f"{malo} already switches at this period in {first[malo, period]}")
                    continue
                first[malo, period] = where
            supplier = self._field(row, "supplier", where, str, required=False) or ""
            if supplier and group is not None:
                problem = self._supplier_problem(suppliers, supplier, group)
                if problem:
                    self.error(where, "supplier", problem)
                    supplier = None
            if None not in (malo, group, period, supplier):
                out.append(Assignment(malo, period, group, supplier))
        return out

    def _total_energy(self, meters: dict[str, MeterPoint], params: ChainParams | None) -> None:
        """Every meter point at full power in one period must still fit the seal's totals."""
        if params is None:
            return
        total = sum(mp.max_power_w for mp in meters.values()) * params.period_seconds // 3600
        if total > MAX_TOTAL_WH:
            self.error("meter points", "max_power_w", f"together {total} Wh in one period, above the bound of "
                                                      f"{MAX_TOTAL_WH} Wh (2**61) that keeps every total encodable")

    def _counts(self, areas: dict, groups: dict, meters: dict[str, MeterPoint], assignments: list) -> None:
        """No more areas, groups and cells than a period's result can list."""
        cells = {(mp.grid_area, mp.balancing_group) for mp in meters.values() if mp.balancing_group}
        cells |= {(meters[a.malo_id].grid_area, a.group) for a in assignments}
        for what, n, bound in (("grid areas", len(areas), MAX_GRID_AREAS),
                               ("balancing groups", len(groups), MAX_BALANCING_GROUPS),
                               ("(grid area, balancing group) cells", len(cells), MAX_CELLS)):
            if n > bound:
                self.error("registry", "", f"{n} {what}, more than the {bound} a period's result can list")
    # -- committees: which validators run which chain (registry/scopes.py) -------------------------------

    def _names(self, row: dict, key: str, where: str) -> tuple[str, ...]:
        """An optional list of validator names; () when absent (= every validator)."""
        names = row.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            self.error(where, key, "a list of validator names")
            return ()
        seen = set()
        for n in names:
            if n in seen:
                self.error(where, key, f"validator {n!r} is listed twice")
            seen.add(n)
        return tuple(names)

    def _check_committee(self, names: tuple[str, ...], validators: list, where: str) -> bool:
        known = {v.name for v in validators}
        ok = True
        for n in names:
            if n not in known:
                self.error(where, "committee", f"unknown validator {n!r}")
                ok = False
        size = len(names) if names else len(validators)
        if size < MIN_VALIDATORS:
            self.warn(where, "committee", f"{size} validator(s): fewer than {MIN_VALIDATORS} tolerate no faulty "
                                          "validator (n = 3f + 1)")
        return ok

    def _committee_checked(self, area: GridArea, validators: list) -> GridArea:
        if area.committee or len(validators) >= MIN_VALIDATORS:  # the whole set was already warned about
            self._check_committee(area.committee, validators, f"[[grid_areas]] {area.eic}")
        return area

    def _network_committee(self, doc: dict, validators: list) -> tuple[str, ...]:
        network = doc.get("network", {})
        if not isinstance(network, dict):
            self.error("[network]", "", "must be a table")
            return ()
        self._unknown_fields(network, {"committee"}, "[network]")
        names = self._names(network, "committee", "[network]")
        if names:
            self._check_committee(names, validators, "[network]")
        return names

    def _areas_without_validator(self, areas: dict, validators: list) -> None:
        with_validator = {v.grid_area for v in validators}
        for eic in areas:
            if eic not in with_validator:
                self.warn(f"grid area {eic}", "", "no validator runs for this grid area")


def default_correction_window(period_seconds: int) -> int:
    """Two months of periods (DEFAULT_CORRECTION_DAYS), at most MAX_CORRECTION_WINDOW: 5,760 at 15 minutes."""
    return min(MAX_CORRECTION_WINDOW, DEFAULT_CORRECTION_DAYS * 86_400 // period_seconds)
