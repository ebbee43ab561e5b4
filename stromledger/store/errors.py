"""The store's errors. Each one means the node must stop and an operator must look: none is routine."""

from __future__ import annotations


class StoreError(Exception):
    """Base class. `reason` is a short code for logs and status output."""

    reason = "store_error"

    def __init__(self, message: str):
        super().__init__(f"{self.reason}: {message}")


class NotALedgerDatabase(StoreError):
    """The file is not SQLite, or it is an SQLite database of some other program."""

    reason = "not_a_ledger_database"


class SchemaTooNew(StoreError):
    """The database was written by a newer stromledger; opening it with this one could corrupt it."""

    reason = "schema_too_new"


class StoreLocked(StoreError):
    """Another process (a second node on the same home?) has the database open."""

    reason = "store_locked"


class WrongChain(StoreError):
    """The database belongs to another chain id or genesis file."""

    reason = "wrong_chain"


class ConflictingCommit(StoreError):
    """A different value for an already committed height: consensus safety is broken, or a bug."""

    reason = "conflicting_commit"


class ConflictingPeriodResult(StoreError):
    """Different derived bytes for a (period, version) already stored: the derivation is not deterministic."""

    reason = "conflicting_period_result"


class DigestMismatch(StoreError):
    """Batch bytes whose sha256 is not the digest they were offered under."""

    reason = "digest_mismatch"


class UnknownBatch(StoreError):
    """A batch digest that is not stored (for example in a seal being marked settled)."""

    reason = "unknown_batch"


class BatchAlreadySettled(StoreError):
    """A batch settled by one height being settled again by another: a reading would count twice."""

    reason = "batch_already_settled"


class StoreDiskError(StoreError):
    """SQLite could not write the database: the disk is full, read-only or not permitted to this process (or
    failed). `path` is the database file, `cause` SQLite's message."""

    reason = "disk"

    def __init__(self, path, cause: str):
        self.path, self.cause = path, cause
        super().__init__(f"{path}: {cause}")
