"""Writing exports: atomic directories, exports from node stores, two validators, versions, the CLI."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

import export_chain as chain
from export_chain import G
from nodes.cli import main
from stromledger.export import (
    ExportConflict, ExportError, committed_rows, export_committed, export_period, read_export, verify_export,
    write_export,
)
from stromledger.store import Store


def tree(base: Path) -> dict[str, bytes]:
    """Every file under `base` by relative path."""
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


def make_store(directory: Path, commits, **kw) -> Store:
    store = Store.open_home(directory)
    chain.fill_store(store, commits, **kw)
    return store


# -- write_export -------------------------------------------------------------------------------------------


def test_write_export_is_atomic_and_idempotent(tmp_path, correction):
    path = write_export(tmp_path, correction)
    assert path == tmp_path / "exports" / "20261121T100000Z" / "v2"
    assert read_export(path) == correction
    assert sorted(os.listdir(path.parent)) == ["v2"]  # no temporary directory left behind
    assert oct(os.stat(path / "manifest.json").st_mode & 0o777) == "0o644"
    mtime = os.stat(path / "meter-points.csv").st_mtime_ns
    assert write_export(tmp_path, correction) == path  # identical: left alone
    assert os.stat(path / "meter-points.csv").st_mtime_ns == mtime


def test_write_export_refuses_a_different_export(tmp_path, correction):
    write_export(tmp_path, correction)
    other = {**correction, "areas.csv": correction["areas.csv"] + b"x"}
    with pytest.raises(ExportConflict):
        write_export(tmp_path, other)
    assert read_export(tmp_path / "exports" / "20261121T100000Z" / "v2") == correction
    with pytest.raises(ExportError):
        write_export(tmp_path, {**correction, "../evil": b""})


def test_read_export_shows_subdirectories(tmp_path, correction, registry):
    path = write_export(tmp_path, correction)
    (path / "extra").mkdir()
    report = verify_export(read_export(path), registry)
    assert [(p.reason, p.file) for p in report.problems] == [("unlisted_file", "extra/")]


# -- exports from a node's store ----------------------------------------------------------------------------


def test_export_committed_writes_every_version(tmp_path, registry, commits, exports):
    store = make_store(tmp_path / "home", commits)
    base = tmp_path / "out"
    written = []
    for c in commits[:-1]:
        written += export_committed(store, registry, c.height, base)
    names = sorted(str(p.relative_to(base / "exports")) for p in written)
    assert names == ["20261121T100000Z/v1", "20261121T100000Z/v2", "20261121T101500Z/v1", "20261121T101500Z/v2",
                     "20261121T103000Z/v1"]
    starts = {"20261121T100000Z": G, "20261121T101500Z": G + 1, "20261121T103000Z": G + 2}
    for p in written:
        files = read_export(p)
        key = (starts[p.parent.name], int(p.name[1:]))
        assert files == exports[key]
        assert verify_export(files, registry).ok
    v1 = read_export(base / "exports" / "20261121T100000Z" / "v1")
    v2 = read_export(base / "exports" / "20261121T100000Z" / "v2")
    assert "changes.csv" not in v1 and "changes.csv" in v2
    assert verify_export(v2, registry, previous=v1).ok
    assert export_committed(store, registry, G + 1, base) == written[1:3]  # again: unchanged
    last = commits[-1].height  # no seal carries its certificate yet
    with pytest.raises(ExportError, match=f"height {last} is not final for export until height {last + 1} commits"):
        export_committed(store, registry, last, base)
    store.close()


def test_rows_from_period_results_state_and_replay_agree(tmp_path, registry, commits):
    wanted = [(G, 1), (G, 2), (G + 1, 1), (G + 1, 2), (G + 2, 1)]
    stored = make_store(tmp_path / "a", commits)
    replayed = make_store(tmp_path / "b", commits, period_rows=False)
    snapshot = make_store(tmp_path / "c", commits, period_rows=False, state=True)
    a = committed_rows(stored, registry, wanted)
    assert committed_rows(replayed, registry, wanted) == a
    assert committed_rows(snapshot, registry, [(G + 1, 2), (G + 2, 1)]) == {k: a[k] for k in [(G + 1, 2), (G + 2, 1)]}
    assert a[G, 2] == commits[1].rows[G] and a[G + 1, 2] == commits[2].rows[G + 1]
    with pytest.raises(ExportError, match="no committed rows"):
        committed_rows(replayed, registry, [(G, 3)])
    for s in (stored, replayed, snapshot):
        s.close()


@pytest.mark.parametrize("chunk", [1, 3, 5])
def test_stored_rows_read_a_chunk_at_a_time_make_the_same_exports(tmp_path, registry, commits, exports, monkeypatch,
                                                                   chunk):
    """An export of the store's period rows decodes, checks and formats them a chunk at a time: whatever the
    chunk size (the MSCONS files of groups whose meter points are spread across chunks included), the bytes
    are the export built from the whole rows."""
    import stromledger.export.build as build
    import stromledger.export.period_data as period_data

    monkeypatch.setattr(build, "CHUNK", chunk)
    monkeypatch.setattr(period_data, "CHUNK", chunk)
    store = make_store(tmp_path / "home", commits)
    base = tmp_path / "out"
    for c in commits[:-1]:
        for p in export_committed(store, registry, c.height, base):
            start = {"20261121T100000Z": G, "20261121T101500Z": G + 1, "20261121T103000Z": G + 2}[p.parent.name]
            assert read_export(p) == exports[start, int(p.name[1:])]
    store.close()


@pytest.mark.parametrize("tamper, reason", [
    (lambda rows: [rows[0]._replace(import_wh=rows[0].import_wh + 1), *rows[1:]], "do not recompute"),
    (lambda rows: [rows[1], rows[0], *rows[2:]], "MaLo-ID order"),
    (lambda rows: [*rows[:-1], rows[-1]._replace(balancing_group='BG,"x')], "do not recompute"),
    (lambda rows: rows[:-1], "MaLo-ID order"),
    (lambda rows: [rows[0]._replace(balancing_group=7, reading_sig=7), *rows[1:]], "cannot be exported"),
])
def test_stored_rows_that_are_not_the_sealed_ones_are_never_published(tmp_path, registry, commits, tamper, reason):
    """Stored rows are checked against the seal while the export is written (the same pass): rows that differ
    (a value, the order, text that is not the registry's and would break the CSV, a meter point short, values
    of the wrong type that cannot even be formatted) raise
    ExportError, and nothing of that export is left under exports/: no files, no index line."""
    from stromledger.cascade.messages import PeriodSeal
    from stromledger.export import encode_period_rows

    store = make_store(tmp_path / "home", commits, period_rows=False)
    for c in commits:
        for r in PeriodSeal.decode(c.seal_bytes).results:
            rows = list(c.rows[r.period])
            if (r.period, r.version) == (G, 1):
                rows = tamper(rows)
            store.put_period_result(r.period, r.version, c.height, encode_period_rows(r.period, r.version, rows))
    base = tmp_path / "out"
    with pytest.raises(ExportError, match=reason):
        export_committed(store, registry, G, base)
    assert [p for p in (base / "exports").rglob("*") if p.is_file() and p.name != ".index.lock"] == []
    assert not (base / "exports" / "20261121T100000Z" / "v1").exists()
    store.close()


def test_two_validators_write_identical_exports(tmp_path, registry, commits):
    # A second validator builds the same seals independently (other ledger, batches in another order), keeps
    # no period rows (its exports come from a replay of its own store), and stored another certificate of
    # every height (validators 2-4 where the first has 1-3). Each export takes the certificate the next seal
    # carries, the same for both, so the trees are byte-identical all the same.
    other = [dataclasses.replace(c, certificate=chain.certify(registry, c.height, c.seal_hash, (1, 2, 3)))
             for c in chain.run_chain(registry, reverse_batches=True)]
    assert [c.seal_bytes for c in other] == [c.seal_bytes for c in commits]
    assert all(a.certificate != b.certificate for a, b in zip(commits, other))
    one, two = make_store(tmp_path / "v1", commits), make_store(tmp_path / "v2", other, period_rows=False)
    assert one.get_commit(G).certificate != two.get_commit(G).certificate
    for c in commits[:-1]:
        export_committed(one, registry, c.height, tmp_path / "out1")
        export_committed(two, registry, c.height, tmp_path / "out2")
    assert len(list((tmp_path / "out1").rglob("manifest.json"))) == 5
    assert tree(tmp_path / "out1") == tree(tmp_path / "out2")
    manifest = json.loads((tmp_path / "out2" / "exports" / "20261121T100000Z" / "v1" / "manifest.json").read_bytes())
    assert manifest["certificate"]["encoded"] == commits[0].certificate.encode().hex()  # not what v2 stored
    one.close()
    two.close()


def test_another_certificate_changes_only_the_manifest(tmp_path, registry, commits):
    # another chain's seal of G + 1 carried another certificate of G (validators 2-4): the export of G differs
    # in that certificate only
    other = chain.run_chain(registry, heights=2, signers=(1, 2, 3))
    store = make_store(tmp_path / "v4", other)
    path = export_period(store, registry, G, 1, tmp_path / "out")
    mine = read_export(path)
    first = make_store(tmp_path / "v1", commits[:2])
    theirs = read_export(export_period(first, registry, G, 1, tmp_path / "o"))
    first.close()
    assert {n for n in mine if mine[n] != theirs[n]} == {"manifest.json"}
    a, b = json.loads(mine["manifest.json"]), json.loads(theirs["manifest.json"])
    assert a["certificate"] != b["certificate"] and {**a, "certificate": 0} == {**b, "certificate": 0}
    assert verify_export(mine, registry).ok
    store.close()


def test_export_period_on_demand(tmp_path, registry, commits, exports):
    store = make_store(tmp_path / "home", commits, period_rows=False)
    assert read_export(export_period(store, registry, G, None, tmp_path / "out")) == exports[G, 2]
    assert read_export(export_period(store, registry, G + 1, 1, tmp_path / "out")) == exports[G + 1, 1]
    with pytest.raises(ExportError, match="version 3"):
        export_period(store, registry, G, 3, tmp_path / "out")
    with pytest.raises(ExportError, match="not committed"):
        export_period(store, registry, G + 7, None, tmp_path / "out")
    store.close()


# -- the command line ---------------------------------------------------------------------------------------


def test_cli_verify(tmp_path, genesis, correction, exports, capsys):
    path = write_export(tmp_path, correction)
    previous = write_export(tmp_path, exports[G, 1])
    genesis_file = str(genesis[0])
    assert main(["export", "verify", str(path), "--genesis", genesis_file]) == 0
    assert main(["export", "verify", str(path), "--genesis", genesis_file, "--previous", str(previous)]) == 0
    assert capsys.readouterr().out.startswith("OK ")
    data = bytearray((path / "areas.csv").read_bytes())
    data[-3] ^= 1
    (path / "areas.csv").write_bytes(bytes(data))
    assert main(["export", "verify", str(path), "--genesis", genesis_file]) == 1
    out = capsys.readouterr().out
    assert out.startswith("INVALID ") and "areas.csv: file_hash: SHA-256 is" in out
    assert main(["export", "verify", str(tmp_path / "nowhere"), "--genesis", genesis_file]) == 2
    assert main(["export", "verify", str(path), "--genesis", str(tmp_path / "nowhere.toml")]) == 2


def test_cli_period_from_a_running_nodes_home(tmp_path, genesis, registry, commits, exports, capsys):
    from stromledger.registry import write_genesis

    home = tmp_path / "home"
    write_genesis(registry, home)
    store = make_store(home, commits, period_rows=False)  # held open: the node is "running"
    assert main(["export", "period", "--home", str(home), "--period", "2026-11-21T10:00:00Z"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == home / "data" / "exports" / "20261121T100000Z" / "v2"
    assert read_export(path) == exports[G, 2]
    assert main(["export", "period", "--home", str(home), "--period", "2026-11-21T10:15:00Z/PT15M",
                 "--version", "1", "--out", str(tmp_path / "billing")]) == 0
    assert read_export(Path(capsys.readouterr().out.strip())) == exports[G + 1, 1]
    assert main(["export", "period", "--home", str(home), "--period", str(G + 2)]) == 0
    assert main(["export", "period", "--home", str(home), "--period", str(G + 3)]) == 1  # the newest height
    assert f"is not final for export until height {G + 4} commits" in capsys.readouterr().err
    assert main(["export", "period", "--home", str(home), "--period", "2026-11-21T10:05:00Z"]) == 2
    assert main(["export", "period", "--home", str(home), "--period", str(G + 9)]) == 1
    assert main(["export", "period", "--home", str(tmp_path / "empty"), "--period", str(G),
                 "--genesis", str(genesis[0])]) == 1
    assert "no ledger database" in capsys.readouterr().err
    store.close()
