"""Hammers a node store until it is killed; run by test_store_crash.py as a subprocess.

Usage: crash_worker.py DB_PATH

Each height it records three signatures in the sign guard, appends consensus WAL entries, stores a batch,
and commits (commit + settlement mark + state snapshot in one transaction). After each operation has
returned it prints one acknowledgement line, so every line on stdout names a record that must survive the
kill. It resumes after the last committed height, as a restarted node does. Values are deterministic, so a
resumed worker asks the sign guard for the same values and the guard must say yes.
"""

from __future__ import annotations

import sys

from stromledger.crypto import sha256
from stromledger.store import Store


def vote_hash(height: int, step: int) -> bytes:
    return sha256(f"vote/{height}/{step}".encode())


def wal_entries(height: int) -> list[tuple[str, bytes]]:
    return [("recv" if i % 2 else "sent", f"msg/{height}/{i}".encode() * 20) for i in range(5)]


def batch_bytes(height: int) -> bytes:
    return f"batch/{height}/".encode() * 200


def seal_bytes(height: int) -> bytes:
    return f"seal/{height}".encode() * 10


def ack(*fields: object) -> None:
    sys.stdout.write(" ".join(map(str, fields)) + "\n")
    sys.stdout.flush()


def main(path: str) -> None:
    store = Store(path)
    guard = store.sign_guard
    last = store.last_height()
    height = 0 if last is None else last + 1
    store.wal_truncate_below(height)
    ack("ready", height)
    while True:
        for step in range(3):
            if not guard.check_and_record(height, 0, step, vote_hash(height, step)):
                raise SystemExit(f"sign guard refused its own value at {height}/0/{step}")
            ack("sign", height, 0, step)
        store.wal_append_many(height, wal_entries(height))
        ack("wal", height)
        data = batch_bytes(height)
        store.put_batch(sha256(data), data, received_at=height, periods=[height])
        ack("batch", height)
        value = seal_bytes(height)
        with store.transaction():
            store.put_commit(height, 0, value, sha256(value), b"cert", committed_at=height)
            store.mark_settled([sha256(data)], height)
            store.put_state(height, f"state/{height}".encode())
        ack("commit", height)
        height += 1


if __name__ == "__main__":
    main(sys.argv[1])
