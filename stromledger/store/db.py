"""One node database file: opening it, the process lock, the connection and its transactions.

Threads: a `Database` owns a single SQLite connection guarded by a re-entrant lock, so any thread may call
it (the node calls it from trio via `trio.to_thread.run_sync`), one operation at a time. Operations are
short; the store never holds the lock across I/O other than SQLite's own.

Durability: every write runs in a `transaction(durable=...)`. Durable transactions commit with
`synchronous=FULL`: the WAL is fsynced before COMMIT returns, so the write survives a power cut.
Non-durable ones use `synchronous=NORMAL`: they survive a killed process (the data is in the OS) but a
power cut may lose the most recent of them. SQLite's WAL is append-only and replays a prefix, so a durable
commit also makes every earlier write durable, and a crash never keeps a later write while losing an
earlier one.

Processes: an exclusive `flock` on `<db>.lock` keeps a second node off the same database (two nodes
signing from one home would defeat the sign guard's purpose). Readers such as `sqlite3 .backup` do not
take that lock and may read while the node runs.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Iterator

from . import schema
from .errors import StoreDiskError, StoreError, StoreLocked

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no process lock
    fcntl = None

BUSY_TIMEOUT_S = 10.0  # wait for an external reader's checkpoint-blocking lock rather than fail at once
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024  # truncate the -wal file back to this after checkpoints
AUTO_VACUUM_INCREMENTAL = 2
# SQLITE_PERM, SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN (primary codes)
DISK_ERROR_CODES = {3, 8, 10, 13, 14}
DISK_ERROR_TEXTS = ("disk is full", "readonly database", "disk I/O error", "unable to open database file")


class Database:
    def __init__(self, path: str | os.PathLike[str], *, migrations=schema.MIGRATIONS):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock_process(self.path)
        self._conn: sqlite3.Connection | None = None
        try:
            self._open(migrations)
        except BaseException:
            self._release()
            raise
        self._durable_level = True  # what `synchronous` is set to now (FULL)
        self._lock = threading.RLock()
        self._depth = 0  # open transaction + savepoints of the thread holding the lock
        self._tx_durable = False

    def _open(self, migrations) -> None:
        with self.disk_errors():
            created = not self.path.exists()
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                         timeout=BUSY_TIMEOUT_S)
            schema.check_identity(self._conn)
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise StoreError(f"{self.path}: cannot use WAL mode here (got {mode!r}; a network file system?)")
            self.version = schema.migrate(self._conn, migrations)
            if self._conn.execute("PRAGMA auto_vacuum").fetchone()[0] != AUTO_VACUUM_INCREMENTAL:
                # Freed pages go back to the file system on reclaim(): a WAL flood must not leave the file big.
                # An older file is converted once (VACUUM rewrites it).
                self._conn.execute(f"PRAGMA auto_vacuum = {AUTO_VACUUM_INCREMENTAL}")
                self._conn.execute("VACUUM")
            for pragma in ("foreign_keys = ON", "synchronous = FULL", "fullfsync = ON",
                           "checkpoint_fullfsync = ON", f"journal_size_limit = {JOURNAL_SIZE_LIMIT}"):
                self._conn.execute(f"PRAGMA {pragma}")
            if created:
                _fsync_dir(self.path.parent)  # the new file's directory entry must survive a power cut too

    @contextlib.contextmanager
    def transaction(self, durable: bool = True, *, standalone: bool = False) -> Iterator[sqlite3.Connection]:
        """Run the block as one transaction and commit it on exit (roll back on an exception).

        Nested calls from the same thread join the outer transaction through a savepoint: an exception
        rolls back only the inner block, and the outer transaction decides when everything commits.
        `standalone=True` refuses to nest, for callers that must know the write is committed on return.
        A disk that cannot take the write raises StoreDiskError (nothing of the block is committed).
        """
        with self.disk_errors(), self._transaction(durable, standalone) as conn:
            yield conn

    @contextlib.contextmanager
    def disk_errors(self) -> Iterator[None]:
        """SQLite's full, read-only, permission and I/O errors as StoreDiskError naming this file."""
        try:
            yield
        except sqlite3.OperationalError as e:
            if (getattr(e, "sqlite_errorcode", 0) & 0xFF) in DISK_ERROR_CODES or \
                    any(text in str(e) for text in DISK_ERROR_TEXTS):
                raise StoreDiskError(self.path, str(e)) from e
            raise

    @contextlib.contextmanager
    def _transaction(self, durable: bool, standalone: bool) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connection()
            if self._depth:
                if standalone:
                    raise RuntimeError("this write must commit on its own; call it outside store.transaction()")
                if durable and not self._tx_durable:
                    raise RuntimeError("a durable write inside a non-durable transaction would not be durable")
                yield from self._savepoint(conn)
                return
            if durable != self._durable_level:
                conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")  # only outside a tx
                self._durable_level = durable
            conn.execute("BEGIN IMMEDIATE")
            self._depth, self._tx_durable = 1, durable
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0

    def _savepoint(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        name = f"sp{self._depth}"
        conn.execute(f"SAVEPOINT {name}")
        self._depth += 1
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:  # SQLite may already have rolled back everything (disk full, I/O error)
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
            raise
        else:
            conn.execute(f"RELEASE {name}")
        finally:
            self._depth -= 1

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection for reads; statements inside see one consistent database (no writer can interleave)."""
        with self._lock:
            yield self._connection()

    def synchronous(self) -> str:
        """The current `PRAGMA synchronous` level (for tests and diagnostics)."""
        with self.read() as conn:
            return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[conn.execute("PRAGMA synchronous").fetchone()[0]]

    def reclaim(self) -> int:
        """Give the file's free pages back to the file system (incremental vacuum); returns how many."""
        with self.read() as conn:
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            if not free or conn.in_transaction:
                return 0  # inside a transaction executescript would commit it: the next call reclaims
            # executescript steps the pragma to its end (execute() would free only one page per call).
            with self.disk_errors():
                conn.executescript("PRAGMA incremental_vacuum")
        return free

    def size(self) -> tuple[int, int]:
        """(bytes in the database file's pages, bytes in the -wal file)."""
        with self.read() as conn:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        wal = Path(f"{self.path}-wal")
        return pages * page_size, wal.stat().st_size if wal.exists() else 0

    def integrity_check(self) -> list[str]:
        """SQLite's full integrity check plus foreign keys; an empty list means the file is sound."""
        with self.read() as conn:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        problems = [] if rows == ["ok"] else rows
        return problems + [f"foreign key: {row}" for row in fk]

    def backup(self, dest: str | os.PathLike[str]) -> None:
        """Write a consistent copy of the database to `dest` (a new file) while the node keeps running.

        Reads through a second connection, so writers are not held up beyond SQLite's own page copying."""
        dest = Path(dest)
        if dest.exists():
            raise FileExistsError(f"{dest} exists; a backup never overwrites a file")
        src = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
        try:
            out = sqlite3.connect(dest)
            try:
                src.backup(out)  # one step: one read transaction, so one consistent snapshot
            finally:
                out.close()
        finally:
            src.close()

    def close(self) -> None:
        with self._lock:
            self._release()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: the store is closed")
        return self._conn

    def _release(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None


def _lock_process(path: Path) -> int | None:
    if fcntl is None:  # pragma: no cover
        return None
    lock_path = Path(f"{path}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StoreLocked(f"{path} is in use by another process (pid {holder}); is a node already running "
                          "on this home?") from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory descriptors
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
