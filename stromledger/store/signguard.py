"""The sign guard on SQLite: what this validator signed, so that it never signs a conflicting message.

Consensus calls `check_and_record` before any vote or proposal leaves the node and sends only on True.
The record is committed with `synchronous=FULL` before the call returns, so after a crash, a kill -9 or a
power cut the node remembers every signature it may have sent.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from typing import NamedTuple

from stromledger.consensus.signguard import guard_floor

from . import checks
from .db import Database

STEPS = (0, 1, 2)  # propose, prevote, precommit: the numbers every guard stores
PRUNED_LAST_KEY = "sign_guard.last"  # meta: the last record when a prune removed all of them
FLOOR_KEY = "sign_guard.floor"  # meta: the highest height a prune went up to; nothing is signed below it


class SignRecord(NamedTuple):
    """One recorded signature; the same fields as consensus's SignRecord."""

    height: int
    round: int
    step: int
    value_hash: bytes  # b"" for nil


class SqliteSignGuard:
    """The consensus sign-guard interface over a node database (see `Store.sign_guard`)."""

    def __init__(self, db: Database):
        self._db = db

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> SqliteSignGuard:
        """A guard on its own database file; `close()` it when done."""
        return cls(Database(path))

    def close(self) -> None:
        self._db.close()

    def check_and_record(self, height: int, round: int, step: int, value_hash: bytes) -> bool:
        """True when signing `value_hash` (b"" for nil) at (height, round, step) is safe, and then the
        record is durable; False, recording nothing, when a different value was recorded there."""
        key = (checks.uint("height", height), checks.uint("round", round), checks.uint("step", step))
        if key[2] not in STEPS:
            raise ValueError(f"step must be 0, 1 or 2, got {step!r}")
        if not isinstance(value_hash, bytes) or len(value_hash) not in (0, 32):
            raise ValueError(f"value_hash must be b'' (nil) or 32 bytes, got {value_hash!r:.80}")
        with self._db.transaction(durable=True, standalone=True) as conn:
            row = conn.execute("SELECT value_hash FROM sign_guard WHERE height = ? AND round = ? AND step = ?",
                               key).fetchone()
            if row is None:
                if key[0] < _floor(conn):
                    return False  # below what was pruned or last signed: this guard's state was rolled back
                conn.execute("INSERT INTO sign_guard (height, round, step, value_hash) VALUES (?, ?, ?, ?)",
                             (*key, value_hash))
                return True
            return row[0] == value_hash

    def last(self) -> tuple[int, int, int] | None:
        """The highest (height, round, step) ever recorded (pruning does not lower it), or None."""
        with self._db.read() as conn:
            return _last(conn)

    def records(self, height: int) -> list[SignRecord]:
        """What was signed at `height`, in (round, step) order: lets a restarted node restore its lock."""
        with self._db.read() as conn:
            rows = conn.execute("SELECT height, round, step, value_hash FROM sign_guard WHERE height = ? "
                                "ORDER BY round, step", (checks.uint("height", height),)).fetchall()
        return [SignRecord(*r) for r in rows]

    def floor(self) -> int:
        """The lowest height this guard still signs at (see stromledger.consensus.signguard)."""
        with self._db.read() as conn:
            return _floor(conn)

    def prune_below(self, height: int) -> int:
        """Forget the records of heights below `height` (decided ones); returns how many were dropped.
        From then on nothing below `height` is signed."""
        height = checks.uint("height", height)
        with self._db.transaction(durable=True) as conn:
            last = _last(conn)
            if last is not None and last[0] < height:  # every record goes: remember where signing stopped
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                             (PRUNED_LAST_KEY, struct.pack(">QQQ", *last)))
            if height > _pruned_below(conn):
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                             (FLOOR_KEY, struct.pack(">Q", height)))
            return conn.execute("DELETE FROM sign_guard WHERE height < ?", (height,)).rowcount


def _pruned_below(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (FLOOR_KEY,)).fetchone()
    return struct.unpack(">Q", row[0])[0] if row else 0


def _floor(conn: sqlite3.Connection) -> int:
    return guard_floor(_pruned_below(conn), _last(conn))


def _last(conn: sqlite3.Connection) -> tuple[int, int, int] | None:
    row = conn.execute(
        "SELECT height, round, step FROM sign_guard ORDER BY height DESC, round DESC, step DESC LIMIT 1"
    ).fetchone()
    pruned = conn.execute("SELECT value FROM meta WHERE key = ?", (PRUNED_LAST_KEY,)).fetchone()
    found = [tuple(row)] if row else []
    found += [struct.unpack(">QQQ", pruned[0])] if pruned else []
    return max(found, default=None)
