"""The registry (genesis): chain parameters, validators, grid areas, balancing groups, meter operators,
meter points and supplier switches. See docs/domain.md for the genesis file layout."""

from .changes import (
    CHANGE_KINDS, KIND_BY_NAME, METER_KEY_ROTATED, METER_POINT_ADDED, METER_POINT_RETIRED, SUPPLIER_SWITCH,
    RegistryChange, decode_change, registry_at, sign_change, with_changes,
)
from .committee import CommitteeChange, committee_change
from .market import MarketChange, MeterOperatorChange
from .genesis import METER_POINT_FIELDS, Defect, GenesisError, check_genesis, load_genesis
from .model import (
    GENERATION_SOURCES, KINDS, SOURCES, Assignment, BalancingGroup, ChainParams, ExternalParty, GridArea,
    MeterOperator, MeterPoint, Registry, Supplier, Validator,
)
from .scopes import NETWORK, chain_id, committee, scopes, scopes_of, tie_lines, view
from .write import genesis_toml, meter_points_csv, write_genesis

__all__ = [
    "CHANGE_KINDS", "KIND_BY_NAME", "METER_KEY_ROTATED", "METER_POINT_ADDED", "METER_POINT_RETIRED",
    "SUPPLIER_SWITCH", "CommitteeChange", "MarketChange", "MeterOperatorChange", "RegistryChange",
    "committee_change", "decode_change", "registry_at", "sign_change", "with_changes",
    "GENERATION_SOURCES", "KINDS", "METER_POINT_FIELDS", "SOURCES", "Assignment", "BalancingGroup", "ChainParams",
    "Defect", "ExternalParty", "GenesisError", "GridArea", "MeterOperator", "MeterPoint", "NETWORK", "Registry",
    "Supplier", "Validator", "chain_id", "check_genesis", "committee", "scopes", "scopes_of", "tie_lines", "view",
    "genesis_toml", "load_genesis", "meter_points_csv", "write_genesis",
]
