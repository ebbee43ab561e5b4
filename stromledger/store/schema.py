"""The database schema and its forward migrations.

`schema_version` holds one row per applied migration; the highest is the database's version. A database
from a newer stromledger is refused, never "migrated" backwards. Every pending migration runs in one
transaction with foreign keys off (SQLite's procedure for altering tables) and a foreign-key check before
the commit, so an upgrade either completes or leaves the file as it was.

To change the schema, append a Migration with the next version; never edit a released one.
"""

from __future__ import annotations

import sqlite3
from typing import NamedTuple, Sequence

from .errors import NotALedgerDatabase, SchemaTooNew, StoreError

APPLICATION_ID = 0x53544C47  # "STLG" in the SQLite header: marks the file as a stromledger database


class Migration(NamedTuple):
    version: int
    description: str
    statements: tuple[str, ...]


V1 = (
    # Small facts about the database: chain id, genesis hash.
    """CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value BLOB NOT NULL
    ) WITHOUT ROWID""",
    # One decided PeriodSeal per height (= period index) with its commit certificate.
    """CREATE TABLE commits (
        height INTEGER PRIMARY KEY CHECK (height >= 0),
        round INTEGER NOT NULL CHECK (round >= 0),
        value BLOB NOT NULL,
        value_hash BLOB NOT NULL CHECK (length(value_hash) = 32),
        certificate BLOB NOT NULL,
        committed_at INTEGER NOT NULL
    )""",
    # Reading batches, content-addressed; settled_height is set once a committed seal settles them.
    """CREATE TABLE batches (
        digest BLOB PRIMARY KEY CHECK (length(digest) = 32),
        data BLOB NOT NULL,
        received_at INTEGER NOT NULL,
        settled_height INTEGER REFERENCES commits (height)
    )""",
    "CREATE INDEX batches_unsettled ON batches (received_at, digest) WHERE settled_height IS NULL",
    """CREATE TABLE batch_periods (
        period INTEGER NOT NULL,
        digest BLOB NOT NULL REFERENCES batches (digest) ON DELETE CASCADE,
        PRIMARY KEY (period, digest)
    ) WITHOUT ROWID""",
    "CREATE INDEX batch_periods_digest ON batch_periods (digest)",
    # Derived per-period results (opaque bytes), one row per correction version.
    """CREATE TABLE period_results (
        period INTEGER NOT NULL,
        version INTEGER NOT NULL,
        height INTEGER NOT NULL REFERENCES commits (height),
        data BLOB NOT NULL,
        PRIMARY KEY (period, version)
    )""",
    # Settled cascade state after applying a height: a restart replays only the commits after it.
    """CREATE TABLE states (
        height INTEGER PRIMARY KEY REFERENCES commits (height),
        data BLOB NOT NULL
    )""",
    # Misbehaviour evidence, deduplicated by the sha256 of its bytes. `kind` is untyped: str or int.
    """CREATE TABLE evidence (
        hash BLOB PRIMARY KEY CHECK (length(hash) = 32),
        kind NOT NULL,
        height INTEGER NOT NULL,
        data BLOB NOT NULL,
        first_seen INTEGER NOT NULL,
        included_height INTEGER REFERENCES commits (height)
    )""",
    "CREATE INDEX evidence_pending ON evidence (first_seen) WHERE included_height IS NULL",
    # What this node has signed: never two different values for one (height, round, step).
    """CREATE TABLE sign_guard (
        height INTEGER NOT NULL,
        round INTEGER NOT NULL,
        step INTEGER NOT NULL,
        value_hash BLOB NOT NULL,
        PRIMARY KEY (height, round, step)
    ) WITHOUT ROWID""",
    # Consensus messages received and sent, in order; seq gives the order.
    """CREATE TABLE consensus_wal (
        seq INTEGER PRIMARY KEY,
        height INTEGER NOT NULL,
        kind NOT NULL,
        data BLOB NOT NULL
    )""",
    "CREATE INDEX consensus_wal_height ON consensus_wal (height, seq)",
    # Signed receipts for submitted batches (kept by the validator that issued and the node that submitted).
    """CREATE TABLE receipts (
        batch_digest BLOB PRIMARY KEY CHECK (length(batch_digest) = 32),
        data BLOB NOT NULL
    )""",
    # A light node's submissions not yet acknowledged, in the order they were queued.
    """CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY,
        key NOT NULL UNIQUE,
        data BLOB NOT NULL
    )""",
)

V2 = (
    # Where each meter point's leaf starts in a `period_results` row (little-endian u32 per registry position,
    # then the end): the settled history is read one entry at a time, without decoding the whole period.
    """CREATE TABLE period_index (
        period INTEGER NOT NULL,
        version INTEGER NOT NULL,
        offsets BLOB NOT NULL,
        PRIMARY KEY (period, version)
    )""",
    # Batches a committed seal settled completely: (height that settled them last, last period in them).
    """CREATE TABLE batch_progress (
        digest BLOB PRIMARY KEY CHECK (length(digest) = 32),
        through INTEGER NOT NULL,
        last_period INTEGER NOT NULL
    ) WITHOUT ROWID""",
)

MIGRATIONS: tuple[Migration, ...] = (Migration(1, "initial schema", V1),
                                     Migration(2, "settled history on disk", V2))
LATEST = MIGRATIONS[-1].version


def check_identity(conn: sqlite3.Connection) -> None:
    """Refuse a file that is not SQLite, or an SQLite database that some other program wrote."""
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise NotALedgerDatabase(f"cannot read it as SQLite ({exc})") from None
    if app_id == APPLICATION_ID or (app_id == 0 and tables == 0):
        return
    raise NotALedgerDatabase(f"SQLite file of another program (application_id {app_id:#x}, {tables} objects)")


def current_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if not exists:
        return 0
    return conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database up to the last of `migrations`; return the version it is at.

    `conn` must be in autocommit mode (isolation_level=None) and outside a transaction."""
    latest = migrations[-1].version
    conn.execute("PRAGMA foreign_keys = OFF")  # no effect inside a transaction, so before BEGIN
    conn.execute("BEGIN IMMEDIATE")  # the write lock first: two processes never migrate at once
    try:
        have = current_version(conn)
        if have > latest:
            raise SchemaTooNew(
                f"the database is at schema version {have}, this stromledger knows up to {latest}: "
                "run a newer stromledger (or restore a backup made by this version)"
            )
        if have == 0:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL)")
        for m in migrations:
            if m.version > have:
                for statement in m.statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version, description) VALUES (?, ?)",
                             (m.version, m.description))
        broken = conn.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise StoreError(f"migration to version {latest} breaks foreign keys: {broken[:5]}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return max(have, latest)
