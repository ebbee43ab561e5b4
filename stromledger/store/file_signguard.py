"""The sign guard in a small append-only file: what this validator signed, fsync'ed before it signs.

File format: the 8-byte magic b"SLSGRD01", then fixed 50-byte records

    height u64 | round u32 | step u8 | nil u8 (1: nil vote) | value hash 32 bytes | crc32 of the 46 before

all big-endian. A record with step 3 is not a signature but the guard's floor (see prune_below): the guard
signs nothing new below its height, nor below the height of its last record. A record is appended with one
write and fsync'ed before `check_and_record` returns True, so a record that is torn (short, or failing its
CRC) at the end of the file was never acknowledged, and opening the file drops it. A bad record anywhere else means the file is damaged: opening refuses it, since
forgetting a signature could lead to a double sign. The file is locked (flock) while open, so two node
processes can never share one guard.
"""

from __future__ import annotations

import fcntl
import os
import struct
import zlib
from pathlib import Path
from typing import Optional

from stromledger.consensus.signguard import SignRecord, check_record_args, guard_floor

MAGIC = b"SLSGRD01"
_BODY = struct.Struct(">QIBB32s")
RECORD_SIZE = _BODY.size + 4
FLOOR_STEP = 3  # a record of this step marks the floor: prune_below's height


class SignGuardFileError(Exception):
    """The guard file is damaged, not a guard file, or in use by another process."""


def encode_record(height: int, round: int, step: int, value_hash: bytes) -> bytes:
    body = _BODY.pack(height, round, step, 0 if value_hash else 1, value_hash or bytes(32))
    return body + struct.pack(">I", zlib.crc32(body))


def decode_record(data: bytes) -> Optional[SignRecord]:
    """The record in these RECORD_SIZE bytes, or None if its checksum fails."""
    body, crc = data[:-4], struct.unpack(">I", data[-4:])[0]
    if zlib.crc32(body) != crc:
        return None
    height, round, step, nil, value_hash = _BODY.unpack(body)
    if step > FLOOR_STEP or nil > 1:
        return None
    return SignRecord(height, round, step, b"" if nil else value_hash)


class FileSignGuard:
    """The consensus sign-guard interface (see stromledger.consensus.signguard) on one file."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._records: dict[int, dict[tuple[int, int], bytes]] = {}
        self._last: Optional[tuple[int, int, int]] = None
        self._pruned_below = 0
        self._fd = self._open_locked(self.path, os.O_RDWR | os.O_CREAT)
        try:
            self._load()
        except BaseException:
            os.close(self._fd)
            raise

    @staticmethod
    def _open_locked(path: Path, flags: int) -> int:
        fd = os.open(path, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SignGuardFileError(f"{path} is in use by another process") from None
        return fd

    def _load(self) -> None:
        size = os.fstat(self._fd).st_size
        data = os.pread(self._fd, size, 0)
        if len(data) < len(MAGIC) and MAGIC.startswith(data):  # new, or its creation was cut short
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, MAGIC, 0)
            os.fsync(self._fd)
            _fsync_dir(self.path.parent)
            return
        if not data.startswith(MAGIC):
            raise SignGuardFileError(f"{self.path} is not a sign guard file")
        count, tail = divmod(len(data) - len(MAGIC), RECORD_SIZE)
        good_end = len(MAGIC)
        for i in range(count):
            offset = len(MAGIC) + i * RECORD_SIZE
            rec = decode_record(data[offset:offset + RECORD_SIZE])
            if rec is None:
                if i == count - 1 and tail == 0:
                    break  # a torn last record: it was never acknowledged
                raise SignGuardFileError(f"{self.path}: record {i} is damaged")
            self._remember(rec)
            good_end = offset + RECORD_SIZE
        if good_end != len(data):
            os.ftruncate(self._fd, good_end)
            os.fsync(self._fd)

    def _remember(self, rec: SignRecord) -> None:
        if rec.step == FLOOR_STEP:
            self._pruned_below = max(self._pruned_below, rec.height)
            return
        held = self._records.setdefault(rec.height, {}).setdefault((rec.round, rec.step), rec.value_hash)
        if held != rec.value_hash:
            raise SignGuardFileError(f"{self.path}: two values recorded for {rec[:3]}")
        key = (rec.height, rec.round, rec.step)
        if self._last is None or key > self._last:
            self._last = key

    def check_and_record(self, height: int, round: int, step: int, value_hash: bytes) -> bool:
        """True when signing `value_hash` (b"" for nil) at (height, round, step) is safe, and then the
        record is on disk; False when a different value was recorded there."""
        check_record_args(height, round, step, value_hash)
        held = self._records.get(height, {}).get((round, int(step)))
        if held is not None:
            return held == value_hash
        if height < self.floor():
            return False  # below what was pruned or last signed: this guard's state was rolled back
        self._append(encode_record(height, round, step, value_hash))
        self._remember(SignRecord(height, round, int(step), value_hash))
        return True

    def _append(self, record: bytes) -> None:
        end = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            if os.write(self._fd, record) != len(record):
                raise OSError("short write to the sign guard file")
            os.fsync(self._fd)
        except BaseException:
            os.ftruncate(self._fd, end)  # not recorded, so not acknowledged
            raise

    def last(self) -> Optional[tuple[int, int, int]]:
        """The highest (height, round, step) recorded, or None."""
        return self._last

    def records(self, height: int) -> list[SignRecord]:
        return [SignRecord(height, r, s, v) for (r, s), v in self._records.get(height, {}).items()]

    def floor(self) -> int:
        """The lowest height this guard still signs at."""
        return guard_floor(self._pruned_below, self._last)

    def prune_below(self, height: int) -> int:
        """Forget the records of heights below `height` (decided ones) and sign nothing below it any more:
        rewrite the file atomically, the floor first."""
        if height <= self._pruned_below:
            return 0
        self._pruned_below = height
        old = [h for h in self._records if h < height]
        dropped = sum(len(self._records.pop(h)) for h in old)
        kept = [(h, r, s, v) for h in sorted(self._records) for (r, s), v in sorted(self._records[h].items())]
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = self._open_locked(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        try:
            data = MAGIC + encode_record(height, 0, FLOOR_STEP, b"") + b"".join(encode_record(*k) for k in kept)
            os.write(fd, data)
            os.fsync(fd)
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except BaseException:
            os.close(fd)
            raise
        os.close(self._fd)
        self._fd = fd
        return dropped

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FileSignGuard:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
