"""Writing an export directory atomically, and reading one back. The only file I/O of the export package.

    <base>/exports/<period start, UTC, ISO 8601 basic: 20261121T100000Z>/v<version>/<files>
    <base>/exports/index.jsonl     the latest version of every exported period, one JSON line per period

A billing system never sees half an export: the files are written and fsynced in a hidden sibling directory
(`.v<version>.tmp-<pid>`), which is then renamed into place in one step. An export that already exists with
identical bytes is left alone; one with different bytes is an ExportConflict (an export never changes).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Iterable, Mapping

from .build import Export, ExportError
from .manifest import MANIFEST, FileDigest

EXPORTS_DIR = "exports"
INDEX = "index.jsonl"


class ExportConflict(ExportError):
    """A different export is already stored under the same period and version."""


def period_dir_name(start_utc: str) -> str:
    """'2026-11-21T10:00:00Z' -> '20261121T100000Z' (no colons: valid on every file system)."""
    return start_utc.replace("-", "").replace(":", "")


def export_path(base_dir: str | os.PathLike[str], files: Mapping[str, bytes]) -> Path:
    """Where `files` (an export, with its manifest) belong under `base_dir`."""
    try:
        m = json.loads(files[MANIFEST])
        start, version = m["period"]["start"], m["version"]
    except (KeyError, TypeError, ValueError):
        raise ExportError("the files have no readable manifest.json") from None
    if type(version) is not int or version < 1 or type(start) is not str:
        raise ExportError("the manifest's period start or version is malformed")
    return export_dir(base_dir, start, version)


def export_dir(base_dir: str | os.PathLike[str], start_utc: str, version: int) -> Path:
    """The directory of the export of the period starting at `start_utc`, at `version`."""
    return Path(base_dir) / EXPORTS_DIR / period_dir_name(start_utc) / f"v{version}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def remove_stale_temporaries(base_dir: str | os.PathLike[str], *, own_pid_stale: bool = True) -> list[Path]:
    """Remove the hidden temporary files and directories that writers killed mid-write left under
    `<base_dir>/exports/` (`.v<version>.tmp-<pid>`, `.index.jsonl.tmp-<pid>`) and return them. One whose pid
    still runs is left alone (another process may be writing), except this process's own when
    `own_pid_stale` (at a node's start, before it writes any export)."""
    exports = Path(base_dir) / EXPORTS_DIR
    removed = []
    for tmp in sorted([*exports.glob(".*.tmp-*"), *exports.glob("*/.v*.tmp-*")]):
        pid = tmp.name.rsplit("-", 1)[1]
        if pid.isdigit() and _pid_alive(int(pid)) and not (own_pid_stale and int(pid) == os.getpid()):
            continue
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
        removed.append(tmp)
    return removed


def _check_name(name: str) -> None:
    if not name or name.startswith(".") or "/" in name or "\\" in name or name in (".", ".."):
        raise ExportError(f"{name!r} is not a plain file name")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_export(directory: str | os.PathLike[str]) -> dict[str, bytes]:
    """Every entry of an export directory by name. A subdirectory or other non-file appears as `name/` with
    empty content, so verification reports it rather than overlooking it."""
    out: dict[str, bytes] = {}
    for entry in sorted(Path(directory).iterdir()):
        out[entry.name if entry.is_file() else entry.name + "/"] = entry.read_bytes() if entry.is_file() else b""
    return out


def _same(directory: Path, files: Mapping[str, bytes]) -> bool:
    try:
        return read_export(directory) == dict(files)
    except OSError:
        return False


def write_export(base_dir: str | os.PathLike[str], files: Mapping[str, bytes]) -> Path:
    """Write an export under `<base_dir>/exports/<period start>/v<version>/` atomically; return its path.
    Idempotent for identical bytes; raises ExportConflict if a different export is already there."""
    for name in files:
        _check_name(name)
    target = export_path(base_dir, files)
    if target.exists():
        if _same(target, files):
            return target
        raise ExportConflict(f"{target} already holds a different export of this period and version")
    _write_new(target, files)
    update_index(base_dir, files)
    return target


PieceSink = Callable[[str, bytes], None]
# How the pieces reach the files: `drain(pieces, sink)` calls sink(name, data) for each piece, in order.
Drain = Callable[[Iterable[tuple[str, bytes]], PieceSink], None]


def drain_in_line(pieces: Iterable[tuple[str, bytes]], sink: PieceSink) -> None:
    """Each piece hashed and written as soon as it is made, by the caller's thread."""
    for name, data in pieces:
        sink(name, data)


def write_export_pieces(base_dir: str | os.PathLike[str], export: Export, drain: Drain = drain_in_line) -> Path:
    """`write_export` of a prepared export, written piece by piece as it is made: no file is ever whole in
    memory, and each is hashed and counted for the manifest while it is written (not read again). `drain`:
    see Drain (nodes/export_drain.py hashes and writes in another thread while the next pieces are made)."""
    target = export_dir(base_dir, export.start_utc, export.version)
    if target.exists():  # idempotent or a conflict: compared whole, as write_export does
        return write_export(base_dir, export.files())
    written: dict[str, bytes] = {}

    def write(tmp: Path) -> None:
        fds: dict[str, int] = {}
        digests: dict[str, FileDigest] = {}
        def sink(name: str, data: bytes) -> None:
            fd = fds.get(name)
            if fd is None:
                _check_name(name)
                fd = fds[name] = os.open(tmp / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                digests[name] = FileDigest(name, count=name not in export.records)
            digests[name].update(data)
            _write_all(fd, data)

        try:
            drain(export.pieces(), sink)
            written[MANIFEST] = export.manifest({name: d.entry(export.records.get(name))
                                                 for name, d in digests.items()})
            for fd in fds.values():
                os.fsync(fd)
        finally:
            for fd in fds.values():
                os.close(fd)
        _write_file(tmp / MANIFEST, written[MANIFEST])

    _publish(target, write, lambda tmp: _same(target, read_export(tmp)))
    update_index(base_dir, written)
    return target


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_new(target: Path, files: Mapping[str, bytes]) -> None:
    def write(tmp: Path) -> None:
        for name, data in sorted(files.items()):
            _write_file(tmp / name, data)

    _publish(target, write, lambda tmp: _same(target, files))


def _publish(target: Path, write: Callable[[Path], None], same: Callable[[Path], bool]) -> None:
    """Run `write` into a hidden temporary directory beside `target`, then rename it into place. `same(tmp)`:
    whether what another writer put at `target` first is the same export."""
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = parent / f".{target.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)  # left by a crash of this process id; nobody reads hidden directories
    tmp.mkdir()
    try:
        write(tmp)
        _fsync_dir(tmp)
        try:
            os.rename(tmp, target)
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            if same(tmp):  # another writer (another process) got there first, with the same bytes
                return
            raise ExportConflict(f"{target} already holds a different export of this period and version") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _fsync_dir(parent)
    _fsync_dir(parent.parent)


def index_entry(files: Mapping[str, bytes]) -> dict:
    """An export's line in index.jsonl: its period, version, height, seal hash and directory (relative to
    exports/)."""
    m = json.loads(files[MANIFEST])
    start, version = m["period"]["start"], m["version"]
    return {"period_start": start, "period_end": m["period"]["end"], "version": version, "height": m["height"],
            "seal_hash": m["seal_hash"], "path": f"{period_dir_name(start)}/v{version}"}


def read_index(base_dir: str | os.PathLike[str]) -> list[dict]:
    """The entries of <base>/exports/index.jsonl, by period start (empty if there is none yet)."""
    try:
        text = (Path(base_dir) / EXPORTS_DIR / INDEX).read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line]


def update_index(base_dir: str | os.PathLike[str], files: Mapping[str, bytes]) -> None:
    """Record an export in index.jsonl if it is the highest version of its period there. The file is
    replaced atomically (written aside, fsynced, renamed) under a lock, so a reader sees the old or the new
    index, never half of one. Missing (older homes), it is rebuilt from the export directories first."""
    import fcntl

    exports = Path(base_dir) / EXPORTS_DIR
    entry = index_entry(files)
    fd = os.open(exports / ".index.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if (exports / INDEX).exists():
            entries = {e["period_start"]: e for e in read_index(base_dir)}
        else:
            entries = {e["period_start"]: e for e in _scan(exports)}
        old = entries.get(entry["period_start"])
        if old is not None and old["version"] >= entry["version"] and (exports / INDEX).exists():
            return
        if old is None or old["version"] < entry["version"]:
            entries[entry["period_start"]] = entry
        text = "".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n"
                       for _, e in sorted(entries.items()))
        tmp = exports / f".{INDEX}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, exports / INDEX)
        _fsync_dir(exports)
    finally:
        os.close(fd)


def _scan(exports: Path) -> list[dict]:
    """The highest version of every period directory under exports/ (to rebuild a missing index)."""
    latest: dict[str, dict] = {}
    for manifest in sorted(exports.glob(f"*/v*/{MANIFEST}")):
        try:
            e = index_entry({MANIFEST: manifest.read_bytes()})
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not an export: the verifier is the place to report it
        if e["period_start"] not in latest or latest[e["period_start"]]["version"] < e["version"]:
            latest[e["period_start"]] = e
    return list(latest.values())
