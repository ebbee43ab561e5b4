"""Wire messages of the network level (codec tags 40-44): area checkpoints and the NetworkSeal.

A Checkpoint is how an area chain's certified result reaches the network chain: the AreaSeal (the area
chain's PeriodSeal, bytes exactly as its committee committed them), the committee's commit certificate of
it, and the Merkle leaf of every boundary meter of every result in the seal with its inclusion path (the
network needs each tie line's flow, which the area totals only give summed). Anyone holding the genesis
checks it (chains/checkpoint.py); the network chain never sees a reading.

The NetworkSeal is the value the network committee decides per height (= period): the network view's own
PeriodSeal `base` (its schedule batches, matched schedules, vote evidence and last commit, built by the
unchanged cascade over a registry without meter points), the area seals used for the first time, and
NetworkResults: for period `height` version 1, and a new version of every earlier period in the window whose
set of certified area results changed (a late checkpoint, or an area correction). docs/cascade.md has the
rules.
"""

from __future__ import annotations

from stromledger.cascade.messages import (
    EIC, MALO, MAX_LAST_COMMIT, AreaTotal, CellTotal, GroupTotal, PeriodSeal, ScheduleIssue, ScheduleLine,
)
from stromledger.codec import I64, U32, U64, Blob, Hash, Message, Seq, message, nested
from stromledger.crypto import sha256
from stromledger.registry.changes import MAX_CHANGE_BYTES, RegistryChange

MAX_AREA_SEAL = 16 * 1024 * 1024  # a consensus value is at most 16 MiB
MAX_TIE_PROOFS = 65_536
MAX_CHECKPOINT_CHANGES = 100_000
MAX_CHECKPOINT_APPROVED = 10_000
MAX_NETWORK_RESULTS = 10_000
ABSENT = bytes(32)  # the seal hash of an area that is settled as absent


@nested
class TieProof(Message):
    """A boundary meter's leaf in one result of the area seal, with its RFC 6962 inclusion path."""

    period: U64
    leaf: Blob(1024)
    index: U32
    size: U32
    path: Seq(Hash, 64)


@message(40)
class Checkpoint(Message):
    area: EIC
    seal: Blob(MAX_AREA_SEAL)  # the AreaSeal: the area chain's PeriodSeal bytes
    certificate: Blob(MAX_LAST_COMMIT)  # the area committee's CommitCertificate of that seal
    ties: Seq(TieProof, MAX_TIE_PROOFS)  # every boundary meter of every result, by (period, MaLo-ID)
    # the area's committed registry changes in effect by its results' periods (and by the seal's height: its
    # committee): with the genesis they give the registry version each result names (registry/changes.py)
    changes: Seq(RegistryChange, MAX_CHECKPOINT_CHANGES)
    approved: Seq(Blob(MAX_CHANGE_BYTES), MAX_CHECKPOINT_APPROVED)  # approved changes (committee changes)


@nested
class AreaUse(Message):
    """Which certified area result a network result used: the area seal's height and hash and the result
    version; height 0, hash ABSENT and version 0 when the area is settled as absent."""

    area: EIC
    height: U64
    seal_hash: Hash
    version: U32


@nested
class TieFlow(Message):
    """One boundary meter as the network books it: `fwd` Wh from area_out into area_in (the meter's A+),
    `back` the reverse. `source` is the area whose certified seal gave the values (the operating area first,
    else the other side; "" when no seal of either side is in: 0 Wh, flagged). `disputed`: another side's
    certified seal settled other values for the line."""

    malo_id: MALO
    area_out: EIC
    area_in: EIC
    source: EIC
    fwd: U64
    back: U64
    disputed: bool


@nested
class NetworkChecks(Message):
    """The cross-level invariants as the numbers compared: cells sum to areas and groups (cell_inj, cell_wd);
    every area closes (area_residual == 0); every tie line between two areas nets out (tie_net == 0);
    schedules net out but for those with external parties (schedule_net == -external_net); the network
    reconciles (imbalance_sum == net_export - external_net). external_net is as in the cascade's Checks."""

    cell_inj: U64
    cell_wd: U64
    area_residual: U64
    tie_net: I64
    schedule_net: I64
    imbalance_sum: I64
    net_export: I64
    external_net: I64


@nested
class NetworkResult(Message):
    period: U64
    version: U32
    areas_used: Seq(AreaUse, 10_000)  # every genesis area, by EIC
    absent: Seq(EIC, 10_000)  # the areas settled as absent, by EIC
    cells: Seq(CellTotal, 1_000_000)  # the used areas' certified cells, sorted by (area, group)
    ties: Seq(TieFlow, 1_000_000)  # every boundary meter of the genesis, by MaLo-ID
    areas: Seq(AreaTotal, 10_000)
    groups: Seq(GroupTotal, 100_000)
    schedules: Seq(ScheduleLine, 1_000_000)
    schedule_issues: Seq(ScheduleIssue, 1_000_000)
    net_export: I64
    checks: NetworkChecks


@message(41)
class NetworkSeal(Message):
    previous: Hash  # hash of the NetworkSeal of height - 1 (32 zero bytes at the genesis height)
    base: PeriodSeal  # the network view's seal: chain id, height, schedule batches, vote evidence, last commit
    checkpoints: Seq(Hash, 100_000)  # the area seal hashes this seal uses for the first time, ascending
    results: Seq(NetworkResult, MAX_NETWORK_RESULTS)  # ascending by period; the last is (height, 1)

    @property
    def height(self) -> int:
        return self.base.height

    @property
    def batches(self):  # the schedule batches it settles (what a node must hold to rebuild it)
        return self.base.batches

    @property
    def vote_evidence(self):
        return self.base.vote_evidence

    def hash(self) -> bytes:
        return sha256(self.encode())

    def result(self, period: int):
        for r in self.results:
            if r.period == period:
                return r
        return None


def decode_seal(value: bytes):
    """A committed value of any chain: a NetworkSeal (tag 41) or a PeriodSeal, by its tag (the first element
    after the array header). Raises CodecError like every decode."""
    return (NetworkSeal if bytes(value[1:2]) == bytes([NetworkSeal.TAG]) else PeriodSeal).decode(bytes(value))
