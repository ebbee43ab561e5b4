"""A disk the node cannot write: full, read-only or not permitted. Nothing a node does can repair that, and
going on would lose what it promised to keep, so it stops; the operator gets one line naming the path and
the cause (`stromledger node run`'s known failures), never a traceback.

The store reports SQLite's such errors as `StoreDiskError` with the database path; file writes (exports,
status.json, the index) raise OSError with the file name.
"""

from __future__ import annotations

import errno
from typing import Optional

from stromledger.store import StoreDiskError

DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EIO}


def disk_problem(error: BaseException) -> Optional[str]:
    """`path: cause` when `error` means a disk this node cannot write, else None."""
    if isinstance(error, StoreDiskError):
        return f"{error.path}: {error.cause}"
    if isinstance(error, OSError) and error.errno in DISK_ERRNOS:
        return f"{error.filename or 'a file of this node'}: {error.strerror or errno.errorcode[error.errno]}"
    return None
