"""The node store: every table of the node database behind one synchronous, thread-safe API.

All stored values are bytes made by other layers (canonical codec encodings, opaque derived data); the
store never decodes them. What is durable when (see docs/storage.md):

- durable before return (synchronous=FULL): commits, batches, receipts, outbox, meta, the sign guard;
- survives a killed process, may lose the last writes on a power cut (synchronous=NORMAL): the consensus
  WAL, period results, state snapshots, evidence, settlement marks. Each can be rebuilt or is re-sent.

Group writes that must land together in `with store.transaction(): ...` (durable by default).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, NamedTuple

from stromledger.crypto import sha256

from . import checks
from .db import Database
from .errors import (BatchAlreadySettled, ConflictingCommit, ConflictingPeriodResult, DigestMismatch,
                     UnknownBatch, WrongChain)
from .signguard import SqliteSignGuard

DB_FILE = Path("data") / "ledger.sqlite3"
STATS_TABLES = ("commits", "batches", "batch_periods", "period_results", "states", "evidence", "sign_guard",
                "consensus_wal", "receipts", "outbox")


class Commit(NamedTuple):
    height: int
    round: int
    value: bytes
    value_hash: bytes
    certificate: bytes
    committed_at: int


class PeriodResult(NamedTuple):
    period: int
    version: int
    height: int
    data: bytes


class Evidence(NamedTuple):
    hash: bytes
    kind: str | int
    height: int
    data: bytes
    first_seen: int
    included_height: int | None


COMMIT_COLUMNS = "height, round, value, value_hash, certificate, committed_at"
EVIDENCE_COLUMNS = "hash, kind, height, data, first_seen, included_height"


class Store:
    """A node's database (`<home>/data/ledger.sqlite3`). Close it, or use it as a context manager."""

    def __init__(self, path: str | os.PathLike[str]):
        self.db = Database(path)
        self.path = self.db.path
        self.sign_guard = SqliteSignGuard(self.db)

    @classmethod
    def open_home(cls, home: str | os.PathLike[str]) -> Store:
        return cls(Path(home) / DB_FILE)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def transaction(self, durable: bool = True):
        """Make the store calls in the block one atomic transaction (see `Database.transaction`)."""
        return self.db.transaction(durable)

    # -- meta ------------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> bytes | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: bytes) -> None:
        with self.db.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, checks.blob("value", value)))

    def check_chain(self, chain_id: str, genesis_hash: bytes) -> None:
        """Bind a new database to this chain, or raise WrongChain if it already belongs to another."""
        want = (chain_id.encode(), checks.hash32("genesis_hash", genesis_hash))
        with self.db.transaction() as conn:
            rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('chain_id', 'genesis_hash')"))
            have = (rows.get("chain_id"), rows.get("genesis_hash"))
            if have == (None, None):
                conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                                 [("chain_id", want[0]), ("genesis_hash", want[1])])
            elif have != want:
                stored = (have[0] or b"?").decode(errors="replace")
                raise WrongChain(
                    f"{self.path} belongs to chain {stored!r} with genesis {(have[1] or b'').hex()[:16]}..., "
                    f"not to {chain_id!r} with genesis {want[1].hex()[:16]}...: wrong --home or genesis file?"
                )

    # -- commits -----------------------------------------------------------------------------------------

    def put_commit(self, height: int, round: int, value: bytes, value_hash: bytes, certificate: bytes,
                   committed_at: int) -> bool:
        """Store a decided value; True if new, False if this value was already committed at `height`
        (the first round and certificate stored are kept). A different value raises ConflictingCommit."""
        row = (checks.uint("height", height), checks.uint("round", round), checks.blob("value", value),
               checks.hash32("value_hash", value_hash), checks.blob("certificate", certificate),
               checks.uint("committed_at", committed_at))
        with self.db.transaction() as conn:
            have = conn.execute("SELECT value, value_hash FROM commits WHERE height = ?", row[:1]).fetchone()
            if have is None:
                conn.execute(f"INSERT INTO commits ({COMMIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", row)
                return True
        if have == (row[2], row[3]):
            return False
        raise ConflictingCommit(f"height {height} is committed with value hash {have[1].hex()}; refusing "
                                f"{row[3].hex()}. Stop the node: consensus safety is broken or the store is corrupt")

    def get_commit(self, height: int) -> Commit | None:
        return self._commit(f"SELECT {COMMIT_COLUMNS} FROM commits WHERE height = ?", (height,))

    def latest_commit(self) -> Commit | None:
        return self._commit(f"SELECT {COMMIT_COLUMNS} FROM commits ORDER BY height DESC LIMIT 1", ())

    def commits_from(self, height: int, limit: int) -> list[Commit]:
        """Up to `limit` commits at heights >= `height`, ascending (heights may have gaps)."""
        with self.db.read() as conn:
            rows = conn.execute(f"SELECT {COMMIT_COLUMNS} FROM commits WHERE height >= ? ORDER BY height LIMIT ?",
                                (checks.uint("height", height), checks.uint("limit", limit))).fetchall()
        return [Commit(*r) for r in rows]

    def last_height(self) -> int | None:
        with self.db.read() as conn:
            return conn.execute("SELECT max(height) FROM commits").fetchone()[0]

    def _commit(self, sql: str, params: tuple) -> Commit | None:
        with self.db.read() as conn:
            row = conn.execute(sql, params).fetchone()
        return Commit(*row) if row else None

    # -- batches -----------------------------------------------------------------------------------------

    def put_batch(self, digest: bytes, data: bytes, received_at: int, periods: Iterable[int]) -> bool:
        """Store a batch under its sha256 `digest` (verified: DigestMismatch otherwise) with the periods it
        touches. True if new; storing it again only adds periods."""
        digest, data = checks.hash32("digest", digest), checks.blob("data", data)
        if sha256(data) != digest:
            raise DigestMismatch(f"batch offered as {digest.hex()} hashes to {sha256(data).hex()}")
        received_at = checks.uint("received_at", received_at)
        rows = [(checks.uint("period", p), digest) for p in periods]
        with self.db.transaction() as conn:
            new = conn.execute("INSERT OR IGNORE INTO batches (digest, data, received_at) VALUES (?, ?, ?)",
                               (digest, data, received_at)).rowcount == 1
            conn.executemany("INSERT OR IGNORE INTO batch_periods (period, digest) VALUES (?, ?)", rows)
        return new

    def get_batch(self, digest: bytes) -> bytes | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT data FROM batches WHERE digest = ?", (digest,)).fetchone()
        return row[0] if row else None

    def batch_received_at(self, digest: bytes) -> int | None:
        """When the batch was stored (the node's clock, UTC seconds); None if it is not stored."""
        with self.db.read() as conn:
            row = conn.execute("SELECT received_at FROM batches WHERE digest = ?", (digest,)).fetchone()
        return row[0] if row else None

    def has_batch(self, digest: bytes) -> bool:
        with self.db.read() as conn:
            return conn.execute("SELECT 1 FROM batches WHERE digest = ?", (digest,)).fetchone() is not None

    def batches_for_periods(self, periods: Iterable[int], *, unsettled_only: bool = False) -> list[bytes]:
        """Digests of the batches touching any of `periods`, sorted by digest."""
        ps = sorted({checks.uint("period", p) for p in periods})
        unsettled = "AND b.settled_height IS NULL" if unsettled_only else ""
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT DISTINCT bp.digest FROM batch_periods bp JOIN batches b ON b.digest = bp.digest "
                f"WHERE bp.period IN (SELECT value FROM json_each(?)) {unsettled} ORDER BY bp.digest",
                (json.dumps(ps),),
            ).fetchall()
        return [r[0] for r in rows]

    def unsettled_batches(self, limit: int | None = None) -> list[bytes]:
        """Digests of batches no committed seal has settled yet, oldest received first."""
        with self.db.read() as conn:
            rows = conn.execute(
                "SELECT digest FROM batches WHERE settled_height IS NULL ORDER BY received_at, digest LIMIT ?",
                (-1 if limit is None else checks.uint("limit", limit),),
            ).fetchall()
        return [r[0] for r in rows]

    def batch_settled_height(self, digest: bytes) -> int | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT settled_height FROM batches WHERE digest = ?", (digest,)).fetchone()
        if row is None:
            raise UnknownBatch(f"batch {bytes(digest).hex()} is not stored")
        return row[0]

    def mark_settled(self, digests: Iterable[bytes], height: int) -> int:
        """Record that the commit at `height` settles these batches; all or none. Marking again with the same
        height is a no-op; another height raises BatchAlreadySettled. Returns how many were newly marked."""
        height = checks.uint("height", height)
        digests = [checks.hash32("digest", d) for d in digests]
        marked = 0
        with self.db.transaction(durable=False) as conn:
            for d in digests:
                row = conn.execute("SELECT settled_height FROM batches WHERE digest = ?", (d,)).fetchone()
                if row is None:
                    raise UnknownBatch(f"batch {d.hex()} settled by height {height} is not stored")
                if row[0] is None:
                    conn.execute("UPDATE batches SET settled_height = ? WHERE digest = ?", (height, d))
                    marked += 1
                elif row[0] != height:
                    raise BatchAlreadySettled(f"batch {d.hex()} was settled by height {row[0]}, not {height}")
        return marked

    # -- period results ------------------------------------------------------------------------------------

    def put_period_result(self, period: int, version: int, height: int, data: bytes) -> bool:
        """Store derived bytes for (period, version), computed from the commit at `height`. True if new;
        identical bytes again are a no-op; different bytes raise ConflictingPeriodResult."""
        row = (checks.uint("period", period), checks.uint("version", version), checks.uint("height", height),
               checks.blob("data", data))
        with self.db.transaction(durable=False) as conn:
            have = conn.execute("SELECT height, data FROM period_results WHERE period = ? AND version = ?",
                                row[:2]).fetchone()
            if have is None:
                conn.execute("INSERT INTO period_results (period, version, height, data) VALUES (?, ?, ?, ?)", row)
                return True
        if have == row[2:]:
            return False
        raise ConflictingPeriodResult(f"period {period} version {version} is stored from height {have[0]} "
                                      f"with different bytes than offered from height {height}")

    def get_period_result(self, period: int, version: int) -> PeriodResult | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT period, version, height, data FROM period_results "
                               "WHERE period = ? AND version = ?", (period, version)).fetchone()
        return PeriodResult(*row) if row else None

    def latest_version(self, period: int) -> int | None:
        with self.db.read() as conn:
            return conn.execute("SELECT max(version) FROM period_results WHERE period = ?", (period,)).fetchone()[0]

    # -- cascade state snapshots ---------------------------------------------------------------------------

    def put_state(self, height: int, data: bytes, *, keep: int = 2) -> None:
        """Store the settled state after applying `height` (replacing any at that height) and keep only the
        `keep` newest snapshots."""
        height, data, keep = checks.uint("height", height), checks.blob("data", data), checks.uint("keep", keep)
        if keep < 1:
            raise ValueError("keep must be at least 1")
        with self.db.transaction(durable=False) as conn:
            conn.execute("INSERT OR REPLACE INTO states (height, data) VALUES (?, ?)", (height, data))
            conn.execute("DELETE FROM states WHERE height NOT IN "
                         "(SELECT height FROM states ORDER BY height DESC LIMIT ?)", (keep,))

    def latest_state(self) -> tuple[int, bytes] | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT height, data FROM states ORDER BY height DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else None

    # -- evidence ------------------------------------------------------------------------------------------

    def put_evidence(self, kind: str | int, height: int, data: bytes, first_seen: int) -> bool:
        """Store evidence once (keyed by sha256 of `data`); True if it was new."""
        data = checks.blob("data", data)
        row = (sha256(data), checks.kind("kind", kind), checks.uint("height", height), data,
               checks.uint("first_seen", first_seen))
        with self.db.transaction(durable=False) as conn:
            return conn.execute("INSERT OR IGNORE INTO evidence (hash, kind, height, data, first_seen) "
                                "VALUES (?, ?, ?, ?, ?)", row).rowcount == 1

    def list_evidence(self, limit: int = 100) -> list[Evidence]:
        """The newest evidence first (by first_seen)."""
        return self._evidence("ORDER BY first_seen DESC, hash LIMIT ?", limit)

    def pending_evidence(self, limit: int = 100) -> list[Evidence]:
        """Evidence no committed seal has included yet, oldest first (what a proposer should include)."""
        return self._evidence("WHERE included_height IS NULL ORDER BY first_seen, hash LIMIT ?", limit)

    def mark_evidence_included(self, hashes: Iterable[bytes], height: int) -> None:
        height = checks.uint("height", height)
        rows = [(height, checks.hash32("hash", h)) for h in hashes]
        with self.db.transaction(durable=False) as conn:
            conn.executemany("UPDATE evidence SET included_height = ? WHERE hash = ? AND included_height IS NULL",
                             rows)

    def _evidence(self, clause: str, limit: int) -> list[Evidence]:
        with self.db.read() as conn:
            rows = conn.execute(f"SELECT {EVIDENCE_COLUMNS} FROM evidence {clause}",
                                (checks.uint("limit", limit),)).fetchall()
        return [Evidence(*r) for r in rows]

    # -- consensus WAL -------------------------------------------------------------------------------------

    def wal_append(self, height: int, kind: str | int, data: bytes) -> None:
        self.wal_append_many(height, [(kind, data)])

    def wal_append_many(self, height: int, entries: Iterable[tuple[str | int, bytes]]) -> None:
        """Append consensus messages for `height` in one transaction. They survive a killed process; the
        next durable write (every sign-guard record is one) makes them survive a power cut too."""
        height = checks.uint("height", height)
        rows = [(height, checks.kind("kind", k), checks.blob("data", d)) for k, d in entries]
        with self.db.transaction(durable=False) as conn:
            conn.executemany("INSERT INTO consensus_wal (height, kind, data) VALUES (?, ?, ?)", rows)

    def wal_read(self, height: int) -> list[tuple[str | int, bytes]]:
        """The messages appended for `height`, in the order they were appended."""
        with self.db.read() as conn:
            return [(k, d) for k, d in conn.execute(
                "SELECT kind, data FROM consensus_wal WHERE height = ? ORDER BY seq", (height,))]

    def wal_truncate_below(self, height: int) -> int:
        """Drop the messages of heights below `height`, and give their space back; returns how many."""
        with self.db.transaction(durable=False) as conn:
            dropped = conn.execute("DELETE FROM consensus_wal WHERE height < ?",
                                   (checks.uint("height", height),)).rowcount
        if dropped:
            self.db.reclaim()
        return dropped

    # -- receipts and the light node's outbox ----------------------------------------------------------------

    def put_receipt(self, batch_digest: bytes, receipt: bytes) -> bool:
        """Keep the receipt for a batch; the first one stored wins. True if it was new."""
        row = (checks.hash32("batch_digest", batch_digest), checks.blob("receipt", receipt))
        with self.db.transaction() as conn:
            return conn.execute("INSERT OR IGNORE INTO receipts (batch_digest, data) VALUES (?, ?)",
                                row).rowcount == 1

    def get_receipt(self, batch_digest: bytes) -> bytes | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT data FROM receipts WHERE batch_digest = ?", (batch_digest,)).fetchone()
        return row[0] if row else None

    def put_outbox(self, key: bytes | str, data: bytes) -> None:
        """Queue (or replace, keeping its place) a submission not yet acknowledged."""
        row = (checks.key("key", key), checks.blob("data", data))
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO outbox (key, data) VALUES (?, ?) "
                         "ON CONFLICT (key) DO UPDATE SET data = excluded.data", row)

    def outbox(self) -> list[tuple[bytes | str, bytes]]:
        """The queued submissions, oldest first."""
        with self.db.read() as conn:
            return [(k, d) for k, d in conn.execute("SELECT key, data FROM outbox ORDER BY seq")]

    def drop_outbox(self, key: bytes | str) -> bool:
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM outbox WHERE key = ?", (checks.key("key", key),)).rowcount == 1

    # -- operations ----------------------------------------------------------------------------------------

    def stats(self) -> dict:
        """Row counts per table, file sizes and the heights a status page shows."""
        with self.db.read() as conn:
            rows = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in STATS_TABLES}
            unsettled = conn.execute("SELECT count(*) FROM batches WHERE settled_height IS NULL").fetchone()[0]
            pending = conn.execute("SELECT count(*) FROM evidence WHERE included_height IS NULL").fetchone()[0]
            last_height = conn.execute("SELECT max(height) FROM commits").fetchone()[0]
            state_height = conn.execute("SELECT max(height) FROM states").fetchone()[0]
        db_bytes, wal_bytes = self.db.size()
        return {
            "path": str(self.path),
            "schema_version": self.db.version,
            "db_bytes": db_bytes,
            "wal_bytes": wal_bytes,
            "last_height": last_height,
            "state_height": state_height,
            "rows": rows,
            "unsettled_batches": unsettled,
            "pending_evidence": pending,
        }

    def integrity_check(self) -> list[str]:
        """Problems SQLite finds in the file (empty when sound). Reads every page: for start-up checks and
        operators, not for a hot path."""
        return self.db.integrity_check()

    def backup(self, dest: str | os.PathLike[str]) -> None:
        """Write a consistent copy to the new file `dest` while the node keeps running."""
        self.db.backup(dest)
