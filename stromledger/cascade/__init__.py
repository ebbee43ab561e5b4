"""The settlement cascade: meter point period -> cell -> grid area -> balancing group -> network seal.

Pure: no I/O, no clock, no threads of its own. docs/cascade.md describes the rules and the seal layout.
"""

from .checks import (
    CheckedBatch, check_batch, check_reading, check_schedule, decode_batch, make_batch, reading_verdict,
    schedule_verdict, sign_reading, sign_schedule,
)
from .ledger import Acceptor, Admission, Ledger, LedgerError, replay
from . import market  # noqa: F401  (registers the market kinds among the approved changes)
from .messages import (
    CORRECTED, MEASURED, MISSING, QUALITY_NAMES, SUBSTITUTED, AreaTotal, Batch, CellTotal, Checks, GroupMix,
    GroupTotal, PeriodResult, PeriodSeal, Reading, ReadingConflict, Receipt, Schedule, ScheduleIssue, ScheduleLine,
    SettledReading,
)
from .rejections import Reason, Rejection
from .rows import (
    MeterRow, check_invariants, entry_rows, inclusion_proof, leaf_bytes, leaf_message, merkle_root, recompute_result,
    summarize,
)
from .settle import InvariantError, NotEligible, Outcome, build_seal, rebuild_seal, validate_seal
from .state import SettledState, StateError

__all__ = [
    "CORRECTED", "MEASURED", "MISSING", "QUALITY_NAMES", "SUBSTITUTED", "Acceptor", "Admission", "AreaTotal", "Batch",
    "CellTotal", "CheckedBatch", "Checks", "GroupMix", "GroupTotal", "InvariantError", "Ledger", "LedgerError",
    "MeterRow", "NotEligible", "Outcome", "PeriodResult", "PeriodSeal", "Reading", "ReadingConflict", "Reason",
    "Receipt", "Rejection", "Schedule", "ScheduleIssue", "ScheduleLine", "SettledReading", "SettledState",
    "StateError", "build_seal", "check_batch", "check_invariants", "check_reading", "check_schedule", "decode_batch",
    "entry_rows", "inclusion_proof", "leaf_bytes", "leaf_message", "make_batch", "merkle_root", "reading_verdict",
    "rebuild_seal", "recompute_result", "replay", "schedule_verdict", "sign_reading", "sign_schedule", "summarize",
    "validate_seal",
]
