"""Writing an export's pieces in a second thread while the next pieces are made (stromledger.export.writer.Drain).

Hashing a large piece (hashlib) and writing it (os.write, fsync) release the GIL, so a writer thread runs on the
second core while the exporting thread formats the next few thousand meter points: at 1M meter points about
1.1 GB are hashed and copied into the page cache, a quarter of the export's CPU. A bounded queue keeps at most
`depth` pieces (a few MB each) waiting; the writer's first error stops the export and is raised in the caller.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterable

from stromledger.export.writer import PieceSink

DEPTH = 8
_DONE = object()


def drain_in_thread(pieces: Iterable[tuple[str, bytes]], sink: PieceSink, depth: int = DEPTH) -> None:
    """Make the pieces in this thread and hand them, in order, to `sink` in a writer thread."""
    waiting: queue.Queue = queue.Queue(maxsize=depth)
    failed: list[BaseException] = []

    def write() -> None:
        while True:
            item = waiting.get()
            if item is _DONE:
                return
            if not failed:
                try:
                    sink(*item)
                except BaseException as e:  # noqa: B902 - handed to the exporting thread, raised there
                    failed.append(e)

    writer = threading.Thread(target=write, name="export-writer", daemon=True)
    writer.start()
    try:
        for piece in pieces:
            if failed:
                break
            waiting.put(piece)
    finally:
        waiting.put(_DONE)
        writer.join()
    if failed:
        raise failed[0]
