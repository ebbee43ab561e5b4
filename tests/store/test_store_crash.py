"""kill -9 at an arbitrary instant: every acknowledged record survives and the sign guard still holds.

The worker (crash_worker.py) prints a line only after an operation has returned. We read a random number
of lines, SIGKILL it wherever it happens to be (often inside a transaction), reopen the database and check
every acknowledged record. Then a new worker resumes on the same file, as a restarted node would.
Synchronisation is by the acknowledgement lines alone; the deadline only stops a hung worker.
"""

from __future__ import annotations

import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stromledger.crypto import sha256
from stromledger.store import Store

sys.path.insert(0, str(Path(__file__).parent))
import crash_worker as worker  # noqa: E402

WORKER = Path(__file__).with_name("crash_worker.py")
DEADLINE_S = 30.0

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


class Acks:
    def __init__(self):
        self.signs: set[tuple[int, int, int]] = set()
        self.wal: set[int] = set()
        self.batches: set[int] = set()
        self.commits: set[int] = set()

    def add(self, line: str) -> None:
        kind, *fields = line.split()
        nums = tuple(map(int, fields))
        if kind == "sign":
            self.signs.add(nums)
        elif kind == "wal":
            self.wal.add(nums[0])
        elif kind == "batch":
            self.batches.add(nums[0])
        elif kind == "commit":
            self.commits.add(nums[0])
        elif kind != "ready":
            raise AssertionError(f"unexpected line {line!r}")


class LineReader:
    """Complete lines from a pipe, with a deadline so that a hung worker fails the test instead of hanging it."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.fd = proc.stdout.fileno()
        self.buf = b""
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.fd, selectors.EVENT_READ)

    def readline(self) -> str | None:
        deadline = time.monotonic() + DEADLINE_S
        while b"\n" not in self.buf:
            if not self.sel.select(timeout=max(0.0, deadline - time.monotonic())):
                self.proc.kill()
                raise AssertionError("crash worker hung")
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None  # EOF; a partial last line was never acknowledged
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()


def run_and_kill(db: Path, lines_before_kill: int, acks: Acks) -> int:
    proc = subprocess.Popen([sys.executable, str(WORKER), str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader = LineReader(proc)
    try:
        first = reader.readline()
        if first is None or not first.startswith("ready "):
            proc.wait()
            raise AssertionError(f"worker did not start: {first!r} {proc.stderr.read().decode()}")
        start = int(first.split()[1])
        acks.wal = {h for h in acks.wal if h >= start}  # the worker truncates the WAL below its start height
        for _ in range(lines_before_kill):
            line = reader.readline()
            assert line is not None, f"worker died: {proc.stderr.read().decode()}"
            acks.add(line)
        proc.send_signal(signal.SIGKILL)
        while (line := reader.readline()) is not None:  # printed before the kill: acknowledged too
            acks.add(line)
        assert proc.wait() == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    return start


def check_survivors(db: Path, acks: Acks) -> None:
    with Store(db) as store:
        assert store.integrity_check() == []
        guard = store.sign_guard
        for h, r, s in acks.signs:
            assert not guard.check_and_record(h, r, s, sha256(b"conflicting")), (h, r, s)
            assert not guard.check_and_record(h, r, s, b""), (h, r, s)  # nor nil
            assert guard.check_and_record(h, r, s, worker.vote_hash(h, s))
        for h in acks.wal:
            assert store.wal_read(h)[:5] == worker.wal_entries(h), h
        for h in acks.batches:
            data = worker.batch_bytes(h)
            assert store.get_batch(sha256(data)) == data, h
        for h in acks.commits:
            commit = store.get_commit(h)
            assert commit is not None and commit.value == worker.seal_bytes(h), h
            assert store.batch_settled_height(sha256(worker.batch_bytes(h))) == h
        if acks.commits:
            assert store.latest_state()[0] >= max(acks.commits)


def test_kill9_loses_nothing_acknowledged(tmp_path):
    rng = random.Random(20261121)
    db = tmp_path / "data" / "ledger.sqlite3"
    acks = Acks()
    starts = []
    for _ in range(8):
        starts.append(run_and_kill(db, rng.randint(1, 60), acks))
        check_survivors(db, acks)
    assert len(acks.commits) >= 4 and len(acks.signs) >= 12
    # each restart resumed after the last commit it had acknowledged: nothing was replayed from scratch
    assert starts == sorted(starts) and starts[-1] > 0
