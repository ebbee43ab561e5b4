"""The chain hierarchy: area checkpoints and the network chain's NetworkSeal (pure, like the cascade).

Each grid area's chain settles its meter points with the unchanged cascade over its registry view
(registry/scopes.py); its committed AreaSeal, certified by its committee, travels as a Checkpoint to the
network chain, whose NetworkSeal settles balancing groups, schedules and the network from the certified area
results. docs/cascade.md ("The network level") and docs/consensus.md ("Chains") have the rules.
"""

from .checkpoint import Certified, canonical_checkpoints, make_checkpoint, verify_checkpoint
from .messages import (
    ABSENT, AreaUse, Checkpoint, NetworkChecks, NetworkResult, NetworkSeal, TieFlow, TieProof, decode_seal,
)
from .network import (
    AreaPart, NetworkLedger, NetworkOutcome, NetworkState, build_network_seal, check_network_result,
    ignored_checkpoints, network_result, rebuild_network_seal,
)

__all__ = [
    "ABSENT", "AreaPart", "AreaUse", "Certified", "canonical_checkpoints", "Checkpoint", "NetworkChecks",
    "NetworkLedger", "NetworkOutcome", "NetworkResult", "NetworkSeal", "NetworkState", "TieFlow", "TieProof", "build_network_seal",
    "check_network_result", "decode_seal", "ignored_checkpoints", "make_checkpoint", "network_result", "rebuild_network_seal",
    "verify_checkpoint",
]
