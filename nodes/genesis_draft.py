"""`stromledger genesis new`: a genesis written without hand arithmetic.

An operator writes a draft in the genesis format (docs/domain.md) and leaves out what is computed: EICs may
have 15 characters (the check character is added), MaLo-IDs 10 digits (the check digit is added), and the
[meter_point_file] sha256 may be empty or missing (it is the SHA-256 of the completed CSV). The draft's
layout and comments are kept: only those values change. The result is checked like `genesis check`.
"""

from __future__ import annotations

import csv
import io
import re
import tomllib
from pathlib import Path

from stromledger.crypto import sha256
from stromledger.ids import make_eic, make_malo_id

EIC15 = re.compile(r"[0-9A-Z][0-9A-Z-]{14}")
MALO10 = re.compile(r"[1-9][0-9]{9}")
EIC_COLUMNS = ("grid_area", "balancing_group", "area_out", "area_in")
# `key = "value"` lines whose value is an EIC or a MaLo-ID in the genesis format
ID_KEYS = ("eic", "grid_area", "loss_balancing_group", "balancing_group", "area_out", "area_in", "malo_id")
_ID_VALUE = re.compile(r'^(\s*(?:' + "|".join(ID_KEYS) + r')\s*=\s*)"([^"\n]*)"', re.MULTILINE)


class DraftError(ValueError):
    pass


def complete_id(text: str) -> str:
    """A 15-character EIC or 10-digit MaLo-ID with its check character added; anything else unchanged."""
    try:
        if MALO10.fullmatch(text):
            return make_malo_id(text)
        if EIC15.fullmatch(text):
            return make_eic(text)
    except ValueError as e:  # an EIC whose check character would be '-': the code must be chosen otherwise
        raise DraftError(str(e)) from None
    return text


def complete_csv(data: bytes) -> bytes:
    """The meter-point CSV with every short MaLo-ID and EIC completed (same columns, same order)."""
    try:
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DraftError(f"the meter-point file is not UTF-8 CSV: {e}") from None
    if not rows:
        raise DraftError("the meter-point file is empty (it needs at least its header line)")
    header = rows[0]
    columns = [i for i, name in enumerate(header) if name == "malo_id" or name in EIC_COLUMNS]
    out = io.StringIO(newline="")
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    for row in rows[1:]:
        w.writerow([complete_id(v) if i in columns else v for i, v in enumerate(row)])
    return out.getvalue().encode("utf-8")


def complete_toml(text: str, meter_sha256: str) -> str:
    """The draft's text with every quoted short EIC / MaLo-ID completed and the meter file's sha256 set."""
    text = _ID_VALUE.sub(lambda m: f'{m.group(1)}"{complete_id(m.group(2))}"', text)
    lines = text.split("\n")
    section, done, at = "", False, None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            if section == "meter_point_file" and not done and at is None:
                at = i
            section = stripped.strip("[] ")
            continue
        if section == "meter_point_file" and re.match(r"sha256\s*=", stripped):
            lines[i] = f'sha256 = "{meter_sha256}"'
            done = True
    if not done:
        if section == "meter_point_file" and at is None:
            at = len(lines)
            while at and not lines[at - 1].strip():
                at -= 1
        if at is None:
            raise DraftError("the draft has no [meter_point_file] table (path = the meter-point CSV)")
        lines.insert(at, f'sha256 = "{meter_sha256}"')
    return "\n".join(lines)


def write_from_draft(draft: str | Path, out_dir: str | Path, name: str = "genesis.toml") -> Path:
    """Complete the draft and its meter-point file into `out_dir`; the genesis path. DraftError if the draft
    cannot be read or completed (the genesis check reports everything else)."""
    draft = Path(draft)
    try:
        text = draft.read_text(encoding="utf-8")
        doc = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise DraftError(f"{draft}: {e}") from None
    spec = doc.get("meter_point_file")
    if not isinstance(spec, dict) or not isinstance(spec.get("path"), str):
        raise DraftError(f"{draft}: [meter_point_file] needs path = the meter-point CSV, next to the draft")
    rel = spec["path"]
    if Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise DraftError(f"{draft}: the meter-point path {rel!r} must be relative, inside the draft's directory")
    try:
        meters = complete_csv((draft.parent / rel).read_bytes())
    except OSError as e:
        raise DraftError(f"{draft}: cannot read the meter-point file: {e}") from None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / name
    if target.resolve() == draft.resolve() or (out_dir / rel).resolve() == (draft.parent / rel).resolve():
        raise DraftError("--out must be another directory than the draft's (the draft stays as written)")
    (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
    (out_dir / rel).write_bytes(meters)
    target.write_text(complete_toml(text, sha256(meters).hex()), encoding="utf-8")
    return target
