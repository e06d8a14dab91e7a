"""Deterministic chaincode hosting and the carbon-market chaincode.

Public API for the node and the CLI:
- execute_block(base, block, registry, *, is_committed) -> BlockExecution
- build_registry() -> ChaincodeRegistry (hosting the carbon chaincode)
- genesis_writes(genesis, registry=None) -> dict[bytes, bytes | None]
- get_key_status(state, org_id, public_key) -> "active" | "revoked" | "unknown"
- get_validator_change(execution.writes, height) -> ValidatorSetChange | None: the validator-set change a
  block approved (the node calls it after executing a block; consensus puts it in force at its
  activation height, and so does the chaincode's end-of-block step)
- list_validator_changes(state) -> [(approved height, ValidatorSet)]: every change the executed chain
  approved, in order (what a restarted node rebuilds the sets from)
- FUNCTIONS (name -> FunctionSpec), QUERIES (name -> QuerySpec), run_query(state, name, params)
See docs/CHAINCODE.md.
"""

from __future__ import annotations

from chaincode.base import (
    Arg,
    Chaincode,
    ChaincodeFailure,
    FunctionSpec,
    InvalidArgs,
    NotFound,
    QuerySpec,
    UnknownFunction,
)
from chaincode.carbon import FUNCTIONS
from chaincode.context import OverlayState, TxContext
from chaincode.executor import BlockExecution, ChaincodeRegistry, execute_block, get_key_status
from chaincode.hosting import CarbonChaincode
from chaincode.queries import QUERIES, run_query
from chaincode.validators import ValidatorSetChange, get_validator_change, list_validator_changes
from core.genesis import Genesis


def build_registry() -> ChaincodeRegistry:
    """The chaincodes every carbonchain node hosts."""
    return ChaincodeRegistry([CarbonChaincode()])


def genesis_writes(genesis: Genesis, registry: ChaincodeRegistry | None = None) -> dict[bytes, bytes | None]:
    """Initial world state for a genesis document (GenesisError on bad chaincode parameters)."""
    return (registry or build_registry()).genesis_writes(genesis)


__all__ = [
    "FUNCTIONS",
    "QUERIES",
    "Arg",
    "BlockExecution",
    "CarbonChaincode",
    "Chaincode",
    "ChaincodeFailure",
    "ChaincodeRegistry",
    "FunctionSpec",
    "InvalidArgs",
    "NotFound",
    "OverlayState",
    "QuerySpec",
    "TxContext",
    "UnknownFunction",
    "ValidatorSetChange",
    "build_registry",
    "execute_block",
    "genesis_writes",
    "get_key_status",
    "get_validator_change",
    "list_validator_changes",
    "run_query",
]
