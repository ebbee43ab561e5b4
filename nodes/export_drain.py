"""Writing an export's pieces in a second thread while the next pieces are made (stromledger.export.writer.Drain).

Hashing a large piece (hashlib) and writing it (os.write, fsync) release the GIL, so a writer thread runs on the
second core while the exporting thread formats the next few thousand meter points: at 1M meter points about
1.1 GB are hashed and copied into the page cache, a quarter of the export's CPU.

Every release costs the writer a wait for the GIL to come back from the busy exporting thread (up to the
interpreter's switch interval, 5 ms): handed the pieces one by one (about 2,500 at 1M meter points, two
releases each) the writer spent more time waiting for the GIL than writing, and the exporting thread then
waited for the writer. So the pieces of each file are gathered into blocks of `block` bytes (16 MB: at 1M
meter points the export of 4 MB blocks took 9.6 s, of 16 MB blocks 8.9 s, measured with `bench cascade`)
and each block is hashed and written in one go. At most `gathering` bytes wait to be handed over (the
largest file's pieces go early beyond it: an area with many balancing groups has many MSCONS files) and a
bounded queue keeps at most `depth` blocks; the writer's first error stops the export and is raised in the
caller.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterable

from stromledger.export.writer import PieceSink

DEPTH = 2
BLOCK = 16 << 20
GATHERING = 64 << 20
_DONE = object()


def drain_in_thread(pieces: Iterable[tuple[str, bytes]], sink: PieceSink, depth: int = DEPTH,
                    block: int = BLOCK, gathering: int = GATHERING) -> None:
    """Make the pieces in this thread and hand them to `sink` in a writer thread, each file's pieces in order
    and joined into blocks of at least `block` bytes (smaller: a file's last, and the largest file's when
    `gathering` bytes are waiting)."""
    waiting: queue.Queue = queue.Queue(maxsize=depth)
    failed: list[BaseException] = []

    def write() -> None:
        while True:
            item = waiting.get()
            if item is _DONE:
                return
            if not failed:
                name, parts = item
                try:
                    sink(name, parts[0] if len(parts) == 1 else b"".join(parts))
                except BaseException as e:  # noqa: B902 - handed to the exporting thread, raised there
                    failed.append(e)

    writer = threading.Thread(target=write, name="export-writer", daemon=True)
    writer.start()
    gathered: dict[str, list[bytes]] = {}  # by file, in the order the files first appeared
    sizes: dict[str, int] = {}
    total = 0  # bytes gathered, not yet handed over
    try:
        for name, data in pieces:
            if failed:
                break
            parts = gathered.setdefault(name, [])
            parts.append(data)
            sizes[name] = size = sizes.get(name, 0) + len(data)
            total += len(data)
            if size < block and total >= gathering:
                name = max(sizes, key=sizes.__getitem__)
                size = block
            if size >= block:
                waiting.put((name, gathered[name]))
                total -= sizes[name]
                gathered[name], sizes[name] = [], 0
        else:
            for name, parts in gathered.items():
                if parts:  # a file's first piece may be empty: it is still handed over (the file exists)
                    waiting.put((name, parts))
    finally:
        waiting.put(_DONE)
        writer.join()
    if failed:
        raise failed[0]
