"""Application messages on the node protocols (codec tags 50-69). docs/protocol.md describes each exchange.

    /stromledger/consensus/1  one-way: Proposal, Prevote, Precommit, Commit (validators only)
    /stromledger/batch/1      one-way: Batch (a validator pushes what it admitted to the others);
                              request: BatchRequest -> BatchReply, InventoryRequest -> InventoryReply
                              (validators only)
    /stromledger/submit/1     request: Batch -> Receipt, or ErrorReply (registered submitters)
    /stromledger/sync/1       request: SyncRequest -> SyncReply; BatchRequest -> BatchReply (anyone registered)
    /stromledger/light/1      request: LightRequest -> LightReply, or ErrorReply (anyone registered)
"""

from __future__ import annotations

from stromledger.codec import U16, U32, U64, Blob, Hash, Message, Seq, Str, message, nested
from stromledger.consensus.messages import CommitCertificate
from stromledger.registry.changes import MAX_CHANGE_BYTES

MAX_BLOB = 48 * 1024 * 1024
MAX_REPLY_CHANGES = 1024  # committee changes since the genesis a reply carries
MAX_SYNC = 64
MAX_FETCH = 256
MAX_LIGHT_IDS = 2_000  # 2000 proofs of a 1M-leaf tree fit well in one 4 MiB frame
MAX_INVENTORY = 65_536  # digests in one inventory reply (2.2 MB); the asker asks again from the last one


@message(50)
class ErrorReply(Message):
    reason: Str(32)
    message: Str(512)


@message(51)
class BatchRequest(Message):
    digests: Seq(Hash, MAX_FETCH)


@message(52)
class BatchReply(Message):
    batches: Seq(Blob(MAX_BLOB), MAX_FETCH)  # canonical Batch bytes; the asker checks each digest


@message(53)
class SyncRequest(Message):
    from_height: U64
    limit: U16


@message(54)
class SyncReply(Message):
    commits: Seq(Blob(MAX_BLOB), MAX_SYNC)  # canonical consensus Commit bytes (seal + certificate), ascending
    last_height: U64  # the newest committed height the answering validator has


@message(55)
class LightRequest(Message):
    period: U64
    malo_ids: Seq(Str(11), MAX_LIGHT_IDS)


@nested
class LeafProof(Message):
    malo_id: Str(11)
    index: U32
    leaf: Blob(1024)  # canonical SettledReading bytes
    path: Seq(Hash, 64)


@message(56)
class LightReply(Message):
    """The seal that settled `period` at its latest version, its certificate, and inclusion proofs.
    `changes`: the chain's committee changes in effect by `height` (canonical bytes, history order): a light
    node that holds only the genesis follows the committee that signed through them, each approved by the
    committee before it (registry/changes.py trust_problem)."""

    height: U64
    version: U32
    seal: Blob(MAX_BLOB)
    certificate: CommitCertificate
    size: U32  # leaves in the period result's tree
    proofs: Seq(LeafProof, MAX_LIGHT_IDS)
    changes: Seq(Blob(MAX_CHANGE_BYTES), MAX_REPLY_CHANGES)


@message(60)
class InventoryRequest(Message):
    """Which batches do you hold that are not settled yet, for periods first..last, digests above `after`?
    A validator asks its peers when it starts, so that a restarted proposer holds what they hold."""

    first_period: U64
    last_period: U64
    after: Hash  # 32 zero bytes: from the start


@message(61)
class InventoryReply(Message):
    digests: Seq(Hash, MAX_INVENTORY)  # ascending; fewer than MAX_INVENTORY: that was all


def chain_protocol(protocol: str, scope: str) -> str:
    """A protocol id for one chain of a validator process: `/stromledger/consensus/1/<EIC>` or
    `.../network` (scope "" - the whole genesis as one chain - keeps the plain id). Each chain's handlers
    are separate routes with their own committee as the allowed peers."""
    return f"{protocol}/{scope}" if scope else protocol

