"""Cascade wire and ledger messages (codec tags 1-29; 6-9 are registry changes: 6 RegistryChange,
registry/changes.py, 7 CommitteeChange, registry/committee.py; 8 MarketChange and 9 MeterOperatorChange,
registry/market.py).

Readings and schedules carry no chain id: their signatures cover it (domain tag + chain id + body), so a
reading signed for another chain simply does not verify. A batch names its chain so a wrong-chain batch is
refused with that reason before any signature is checked.

The PeriodSeal is the value consensus decides for height h = period index h: the version-1 result of
period h plus new versions of earlier periods that corrections changed. It also carries the commit
certificate of height h - 1 (`last_commit`, as in Tendermint), so every node agrees on one certificate per
committed height. docs/cascade.md has the layout.
"""

from __future__ import annotations

from typing import Optional

from stromledger.codec import (
    I64, U8, U16, U32, U64, Blob, Hash, Message, PubKey, Seq, Sig, Str, message, nested,
)
from stromledger.crypto import sha256
from stromledger.registry.changes import MAX_CHANGE_BYTES, RegistryChange

READING_DOMAIN = "stromledger/reading/1"
SCHEDULE_DOMAIN = "stromledger/schedule/1"
BATCH_DOMAIN = "stromledger/batch/1"
RECEIPT_DOMAIN = "stromledger/receipt/1"

MAX_BATCH_READINGS = 100_000
MAX_BATCH_SCHEDULES = 20_000
MAX_BATCH_CHANGES = 1_000
MAX_BATCH_APPROVED = 64  # approved changes (committee, market) are rare and each may be large
MAX_SEAL_BATCHES = 100_000
MAX_SEAL_RESULTS = 10_000  # the seal of h plus corrections: the correction window must stay below this
MAX_SEAL_EVIDENCE = 10_000
MAX_LAST_COMMIT = 72 * 1024  # a commit certificate of 1024 validators encodes to about 70 KiB
EIC = Str(16)
MALO = Str(11)

# Quality of a settled meter-point period (also in the Merkle leaf and the billing rows).
MEASURED, SUBSTITUTED, CORRECTED, MISSING = 1, 2, 3, 4
QUALITY_NAMES = {MEASURED: "measured", SUBSTITUTED: "substituted", CORRECTED: "corrected", MISSING: "missing"}


@message(1)
class Reading(Message):
    """A meter's signed value for one period. `register` False: `import_wh`/`export_wh` are the period's
    energies (A+ taken from the grid, A- fed in). `register` True: they are the cumulative registers 1.8.0 and
    2.8.0 at the period's end, and the period's energy is the difference to the previous register reading.
    `version` is the meter's: 1 for the original, higher for the meter operator's own corrections."""

    malo_id: MALO
    period: U64
    version: U16
    register: bool
    import_wh: U64
    export_wh: U64
    meter_key: PubKey
    sig: Sig


@message(2)
class Schedule(Message):
    """An energy trade of `wh` from one balancing group to another in one period, signed by one of the two
    groups' operators. It counts only when both operators signed the same (from, to, period, wh)."""

    from_group: EIC
    to_group: EIC
    period: U64
    wh: U64
    signer: PubKey
    sig: Sig


@message(3)
class Batch(Message):
    """Readings, schedules and registry changes sent together by one registered submitter; content-addressed
    by `digest()`. `approved`: changes approved by a committee (e.g. a CommitteeChange), each as its canonical
    tagged bytes, decoded strictly by the allow-list of approved kinds (registry/changes.py)."""

    chain_id: Str(64)
    submitter: PubKey
    readings: Seq(Reading, MAX_BATCH_READINGS)
    schedules: Seq(Schedule, MAX_BATCH_SCHEDULES)
    changes: Seq(RegistryChange, MAX_BATCH_CHANGES)
    approved: Seq(Blob(MAX_CHANGE_BYTES), MAX_BATCH_APPROVED)
    sig: Sig

    def digest(self) -> bytes:
        return sha256(self.encode())


@message(4)
class SettledReading(Message):
    """The Merkle leaf of one meter point in one period result: its settled energies and, if a reading was
    settled, that reading's own fields and signature, so anyone with the registry can rebuild the signed
    Reading from the leaf. Leaf bytes = this message's canonical encoding."""

    period: U64
    malo_id: MALO
    grid_area: EIC
    balancing_group: EIC  # "" for boundary meters
    version: U32  # settlement version of this meter-point period: 1 at gate closure, +1 per change
    quality: U8  # MEASURED, SUBSTITUTED, CORRECTED or MISSING
    import_wh: U64  # settled energy taken from the grid (A+)
    export_wh: U64  # settled energy fed into the grid (A-)
    reading_version: U16  # 0 when no reading was settled
    register: bool
    reading_import: U64
    reading_export: U64
    reading_sig: Blob(64)  # b"" when no reading was settled


@nested
class ItemRejection(Message):
    kind: U8  # 1 reading, 2 schedule, 3 registry change, 4 approved change
    index: U32
    reason: U8
    message: Str(200)


@message(5)
class Receipt(Message):
    """A validator's signed answer to a submitted batch (domain RECEIPT_DOMAIN). Provisional: the seal is
    final, and re-derives every verdict itself."""

    batch: Hash
    validator: PubKey
    batch_reason: U8  # 0 = batch admitted, else the Reason refusing the whole batch
    accepted: U32
    duplicates: U32
    rejected: Seq(ItemRejection, MAX_BATCH_READINGS + MAX_BATCH_SCHEDULES + MAX_BATCH_CHANGES + MAX_BATCH_APPROVED)
    sig: Sig


# -- the seal --------------------------------------------------------------------------------------------


@nested
class CellTotal(Message):
    area: EIC
    group: EIC
    meter_points: U32
    inj: U64
    wd: U64


@nested
class AreaTotal(Message):
    area: EIC
    inj: U64  # sum over the area's cells
    wd: U64
    exin: U64  # boundary meters: energy into the area
    exout: U64
    loss: I64  # inj + exin - wd - exout, booked as withdrawal of the area's loss group


@nested
class GroupTotal(Message):
    group: EIC
    inj: U64
    wd: I64  # sum over its cells, plus `loss` for a loss group
    loss: I64  # the losses of the areas this group books (0 for other groups)
    fpi: U64  # matched schedules in
    fpe: U64  # matched schedules out
    imb: I64  # inj + fpi - wd - fpe, positive = long


@nested
class SourceWh(Message):
    source: Str(16)
    wh: U64


@nested
class GroupMix(Message):
    group: EIC
    sources: Seq(SourceWh, 32)  # injection by energy source, sources sorted, zeros left out


@nested
class ScheduleLine(Message):
    from_group: EIC
    to_group: EIC
    wh: U64


ONE_SIDED, MISMATCHED = 1, 2


@nested
class ScheduleIssue(Message):
    """A schedule that did not count: only one side signed it (ONE_SIDED), or the two sides signed
    different energies (MISMATCHED). The Wh each side signed, sorted (at most 8 each)."""

    from_group: EIC
    to_group: EIC
    status: U8
    from_wh: Seq(U64, 8)
    to_wh: Seq(U64, 8)


@nested
class Checks(Message):
    """The four invariants, as the numbers that were compared (each comparison integer-exact):
    1. attribution: meter_inj == sum of cell inj, meter_wd == sum of cell wd;
    2. area closure: area_residual == sum over areas of |inj + exin - wd - exout - loss| == 0;
    3. schedules net out: schedule_net == sum over groups of (fpi - fpe) == -external_net (0 without
       external parties: schedules between the network's groups cancel);
    4. network: imbalance_sum == sum of imb == net_export - external_net.
    external_net = matched schedules to external parties - matched schedules from them (positive: the
    groups sold out of the network)."""

    meter_inj: U64
    meter_wd: U64
    cell_inj: U64
    cell_wd: U64
    area_residual: U64
    schedule_net: I64
    imbalance_sum: I64
    net_export: I64
    external_net: I64


@nested
class PeriodResult(Message):
    """One version of one period's settlement: complete totals over all meter points of the period."""

    period: U64
    version: U32
    meter_points: U32
    measured: U32
    substituted: U32
    corrected: U32
    missing: U32
    merkle_root: Hash  # RFC 6962 over SettledReading leaves sorted by malo_id (one leaf per meter point)
    cells: Seq(CellTotal, 1_000_000)
    areas: Seq(AreaTotal, 10_000)
    groups: Seq(GroupTotal, 100_000)
    mix: Seq(GroupMix, 100_000)
    schedules: Seq(ScheduleLine, 1_000_000)
    schedule_issues: Seq(ScheduleIssue, 1_000_000)
    net_export: I64  # sum over areas of (exout - exin): the exchange with outside the network
    checks: Checks
    implausible_loss: Seq(EIC, 10_000)  # areas whose |loss| exceeds the registry's share of their throughput
    registry_version: Hash  # the registry version the period settled under (registry/changes.py)


@nested
class ReadingConflict(Message):
    """Evidence against a meter: two readings it signed for the same (malo_id, period, version) with
    different values. `kept` is the one settled (it never gets overwritten), `conflicting` the other."""

    kept: Reading
    conflicting: Reading


@nested
class ReasonCount(Message):
    reason: U8
    count: U32


@message(10)
class PeriodSeal(Message):
    chain_id: Str(64)
    registry_hash: Hash
    height: U64  # = the period settled at version 1
    previous: Hash  # hash of the seal at height - 1 (32 zero bytes at the genesis height)
    batches: Seq(Hash, MAX_SEAL_BATCHES)  # digests of the batches settled, ascending
    results: Seq(PeriodResult, MAX_SEAL_RESULTS)  # ascending by period; the last is (height, 1)
    evidence: Seq(ReadingConflict, MAX_SEAL_EVIDENCE)
    rejected: Seq(ReasonCount, 64)  # items of the listed batches refused by this seal, by reason
    vote_evidence: Seq(Blob(4096), 256)  # opaque consensus evidence (e.g. DuplicateVoteEvidence), ascending
    last_commit: Blob(MAX_LAST_COMMIT)  # opaque: the commit certificate of height - 1 (b"" at the genesis height)

    def hash(self) -> bytes:
        return sha256(self.encode())

    def result(self, period: int) -> Optional[PeriodResult]:
        for r in self.results:
            if r.period == period:
                return r
        return None
