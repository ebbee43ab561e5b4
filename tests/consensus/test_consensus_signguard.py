"""The sign guard, in memory and on file: never two different values for one (height, round, step)."""

import os

import pytest

from stromledger.consensus import MemorySignGuard, SignRecord
from stromledger.consensus.signguard import PRECOMMIT, PREVOTE, PROPOSE
from stromledger.store.file_signguard import MAGIC, RECORD_SIZE, FileSignGuard, SignGuardFileError
from stromledger.store.signguard import SqliteSignGuard

A, B = b"\xaa" * 32, b"\xbb" * 32


def exercise(guard) -> None:
    assert guard.last() is None
    assert guard.check_and_record(7, 0, PREVOTE, A)
    assert guard.check_and_record(7, 0, PREVOTE, A)  # the same again: a re-send
    assert not guard.check_and_record(7, 0, PREVOTE, B)
    assert not guard.check_and_record(7, 0, PREVOTE, b"")
    assert guard.check_and_record(7, 0, PRECOMMIT, b"")  # nil
    assert not guard.check_and_record(7, 0, PRECOMMIT, A)
    assert guard.check_and_record(7, 1, PROPOSE, B)
    assert not guard.check_and_record(6, 3, PREVOTE, B)  # below the last record's height: a rollback
    assert guard.floor() == 7
    assert guard.last() == (7, 1, PROPOSE)
    assert sorted(guard.records(7)) == [SignRecord(7, 0, PREVOTE, A), SignRecord(7, 0, PRECOMMIT, b""),
                                        SignRecord(7, 1, PROPOSE, B)]
    with pytest.raises(ValueError):
        guard.check_and_record(7, 2, 5, A)
    with pytest.raises(ValueError):
        guard.check_and_record(7, 2, PREVOTE, b"short")


def test_memory_guard():
    guard = MemorySignGuard()
    exercise(guard)
    assert guard.prune_below(7) == 0
    assert guard.records(6) == [] and len(guard.records(7)) == 3


def open_guard(kind: str, path):
    if kind == "memory":
        return MemorySignGuard()
    if kind == "file":
        return FileSignGuard(path / "signguard")
    return SqliteSignGuard.open(path / "guard.sqlite3")


@pytest.mark.parametrize("kind", ["memory", "file", "sqlite"])
def test_no_guard_signs_below_its_floor(kind, tmp_path):
    """After prune_below(11) a guard must refuse a different value at height 10 and a new record at 5:
    a validator whose guard forgot a decided height must not sign there again."""
    guard = open_guard(kind, tmp_path)
    assert guard.floor() == 0
    assert guard.check_and_record(10, 0, PREVOTE, A)
    assert guard.prune_below(11) == 1
    assert guard.floor() == 11
    assert not guard.check_and_record(10, 0, PREVOTE, B)
    assert not guard.check_and_record(10, 0, PREVOTE, A)  # decided: nothing to re-send there
    assert not guard.check_and_record(5, 0, PROPOSE, A)
    assert guard.check_and_record(11, 0, PREVOTE, B)
    assert guard.prune_below(3) == 0 and guard.floor() == 11  # a floor never goes down
    if kind != "memory":
        guard.close()
        again = open_guard(kind, tmp_path)  # the floor survives a restart
        assert again.floor() == 11 and again.records(11) == [SignRecord(11, 0, PREVOTE, B)]
        assert not again.check_and_record(10, 1, PRECOMMIT, B)
        again.close()


def test_file_guard_survives_a_restart(tmp_path):
    path = tmp_path / "signguard"
    with FileSignGuard(path) as guard:
        exercise(guard)
    assert os.stat(path).st_mode & 0o077 == 0
    with FileSignGuard(path) as again:
        assert again.last() == (7, 1, PROPOSE)
        assert not again.check_and_record(7, 0, PREVOTE, B)
        assert again.check_and_record(7, 0, PREVOTE, A)
        assert len(again.records(7)) == 3
    assert os.path.getsize(path) == len(MAGIC) + 3 * RECORD_SIZE  # a repeated value appends nothing


@pytest.mark.parametrize("torn", ["short", "bad_crc"])
def test_file_guard_drops_a_torn_last_record(tmp_path, torn):
    path = tmp_path / "signguard"
    with FileSignGuard(path) as guard:
        guard.check_and_record(9, 0, PREVOTE, A)
        guard.check_and_record(9, 0, PRECOMMIT, A)
    data = path.read_bytes()
    if torn == "short":
        path.write_bytes(data[:-17])  # the last write was cut short by a crash
    else:
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with FileSignGuard(path) as guard:
        assert guard.records(9) == [SignRecord(9, 0, PREVOTE, A)]
        assert guard.check_and_record(9, 0, PRECOMMIT, B)  # never acknowledged, so free
    assert os.path.getsize(path) == len(MAGIC) + 2 * RECORD_SIZE
    with FileSignGuard(path) as guard:
        assert not guard.check_and_record(9, 0, PRECOMMIT, A)


def test_file_guard_refuses_damage_before_the_end(tmp_path):
    path = tmp_path / "signguard"
    with FileSignGuard(path) as guard:
        guard.check_and_record(9, 0, PREVOTE, A)
        guard.check_and_record(9, 0, PRECOMMIT, A)
    data = bytearray(path.read_bytes())
    data[len(MAGIC) + 3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(SignGuardFileError, match="record 0 is damaged"):
        FileSignGuard(path)


def test_file_guard_refuses_a_foreign_file_and_a_second_user(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.write_bytes(b"hello world, not a guard")
    with pytest.raises(SignGuardFileError, match="not a sign guard"):
        FileSignGuard(foreign)
    path = tmp_path / "signguard"
    with FileSignGuard(path):
        with pytest.raises(SignGuardFileError, match="in use"):
            FileSignGuard(path)


def test_file_guard_recovers_from_an_interrupted_creation(tmp_path):
    path = tmp_path / "signguard"
    path.write_bytes(MAGIC[:3])
    with FileSignGuard(path) as guard:
        assert guard.last() is None
        assert guard.check_and_record(1, 0, PREVOTE, A)
    assert path.read_bytes().startswith(MAGIC)


def test_file_guard_prunes_atomically(tmp_path):
    path = tmp_path / "signguard"
    with FileSignGuard(path) as guard:
        for h in (5, 6, 7):
            guard.check_and_record(h, 0, PREVOTE, A)
        assert guard.prune_below(7) == 2
        assert guard.check_and_record(7, 0, PRECOMMIT, B)  # still usable after the rewrite
        with pytest.raises(SignGuardFileError, match="in use"):
            FileSignGuard(path)  # the lock moved to the new file
    with FileSignGuard(path) as guard:
        assert guard.records(5) == [] and len(guard.records(7)) == 2
        assert not guard.check_and_record(7, 0, PREVOTE, B)
    assert not (tmp_path / "signguard.tmp").exists()
