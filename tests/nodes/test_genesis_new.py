"""`stromledger genesis new`: a draft without check characters and without the meter-point file's hash
becomes the genesis an operator would have computed by hand."""

from __future__ import annotations

import re
from pathlib import Path

from nodes.cli import main
from stromledger.registry import load_genesis

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def make_draft(directory: Path) -> Path:
    """configs/devnet.toml with every check character and check digit cut off and no sha256."""
    text = (CONFIGS / "devnet.toml").read_text()
    text = re.sub(r'^(\s*(?:eic|grid_area|loss_balancing_group|balancing_group|area_out|area_in|malo_id)\s*=\s*")'
                  r'([^"]+)(")', lambda m: m.group(1) + m.group(2)[:-1] + m.group(3), text, flags=re.MULTILINE)
    text = re.sub(r'^sha256 = ".*"\n', "", text, flags=re.MULTILINE)
    lines = (CONFIGS / "devnet-meter-points.csv").read_text().splitlines()
    short = [lines[0]]
    for line in lines[1:]:
        cells = line.split(",")
        cells[0] = cells[0][:10]
        for i in (3, 4, 8, 9):
            cells[i] = cells[i][:15]
        short.append(",".join(cells))
    directory.mkdir()
    (directory / "devnet-meter-points.csv").write_text("\n".join(short) + "\n")
    (directory / "draft.toml").write_text(text)
    return directory / "draft.toml"


def test_a_draft_becomes_the_genesis_with_the_same_registry_hash(tmp_path, capsys):
    draft = make_draft(tmp_path / "draft")
    assert "sha256" not in draft.read_text() and "11YDEVAREA1----\"" in draft.read_text()
    assert main(["genesis", "new", str(draft), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    want = load_genesis(CONFIGS / "devnet.toml").hash.hex()
    assert load_genesis(tmp_path / "out" / "genesis.toml").hash.hex() == want
    assert f"registry hash  {want}" in out
    assert "# stromledger devnet genesis" in (tmp_path / "out" / "genesis.toml").read_text()  # comments kept


def test_a_draft_with_a_wrong_id_or_no_meter_file_is_refused(tmp_path, capsys):
    draft = make_draft(tmp_path / "draft")
    text = draft.read_text().replace('name = "validator-1"', 'name = "validator-2"', 1)  # a duplicate name
    draft.write_text(text)
    assert main(["genesis", "new", str(draft), "--out", str(tmp_path / "out")]) == 1
    assert "validator-2" in capsys.readouterr().out
    (tmp_path / "draft" / "devnet-meter-points.csv").unlink()
    assert main(["genesis", "new", str(draft), "--out", str(tmp_path / "out2")]) == 2
    assert "cannot read the meter-point file" in capsys.readouterr().err
