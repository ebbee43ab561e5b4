"""Persistence: the node's SQLite database (commits, batches, period results, state snapshots, evidence,
the sign guard, the consensus WAL, receipts and a light node's outbox). See docs/storage.md.

Names are imported lazily, so importing a sibling module of this package (such as a file-based sign guard)
does not load sqlite3.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Store": "sqlite", "Commit": "sqlite", "PeriodResult": "sqlite", "Evidence": "sqlite", "DB_FILE": "sqlite",
    "SqliteSignGuard": "signguard", "Database": "db",
    "StoreError": "errors", "NotALedgerDatabase": "errors", "SchemaTooNew": "errors", "StoreLocked": "errors",
    "WrongChain": "errors", "ConflictingCommit": "errors", "ConflictingPeriodResult": "errors",
    "DigestMismatch": "errors", "UnknownBatch": "errors", "BatchAlreadySettled": "errors",
    "StoreDiskError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
