"""Run by test_history_restart.py as a subprocess: a validator commits two heights, then is killed with
SIGKILL in the middle of persisting the third (see `commit_then_die`).

Usage: history_kill_worker.py HOME GENESIS_START
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).parent))

from test_history_restart import commit_then_die  # noqa: E402

if __name__ == "__main__":
    trio.run(commit_then_die, Path(sys.argv[1]), int(sys.argv[2]))
