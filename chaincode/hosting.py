"""CarbonChaincode: the carbon chaincode as the executor hosts it (chaincode.base.Chaincode).

It dispatches a call to its function in the table (chaincode.carbon.FUNCTIONS) after the checks every call
makes (chaincode.declare.check_caller), through the four-eyes step for the functions that have one
(chaincode.foureyes); at the end of every block it expires the proposals and four-eyes requests whose last
height that block is and activates a pending validator-set change at its height (docs/CHAINCODE.md 2.4),
and at genesis it writes the initial state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chaincode import foureyes, governance, schema_gov, validators
from chaincode.base import FunctionSpec, UnknownFunction, validate_arg_map
from chaincode.carbon import FUNCTIONS
from chaincode.context import OverlayState, TxContext
from chaincode.declare import check_caller
from chaincode.genesis import compute_genesis_writes
from core.errors import InvariantBroken
from core.genesis import Genesis


class CarbonChaincode:
    """The carbon market (and, as the first chaincode, the identity functions of the platform)."""

    name = "carbon"

    def __init__(self, functions: Mapping[str, FunctionSpec] | None = None) -> None:
        self.functions = dict(FUNCTIONS if functions is None else functions)

    def has_function(self, function: str) -> bool:
        return function in self.functions

    def accepts_node_key(self, function: str) -> bool:
        return self.functions[function].node_key_ok

    def validate_args(self, function: str, args: Mapping[str, Any]) -> dict[str, Any]:
        spec = self.functions.get(function)
        if spec is None:
            raise UnknownFunction(f"chaincode {self.name!r} has no function {function!r}")
        validated = validate_arg_map(function, spec.args, args)
        if spec.check_args is not None:
            spec.check_args(validated)
        return validated

    def apply(self, ctx: TxContext, function: str, args: dict[str, Any]) -> None:
        spec = self.functions[function]
        check_caller(ctx, spec)
        if spec.four_eyes is not None:
            foureyes.apply_guarded(ctx, spec, args)
        else:
            spec.handler(ctx, args)

    def end_block(self, state: OverlayState, height: int, time_ms: int) -> None:
        """Expire the proposals and four-eyes requests whose last height this is, then put in force the
        validator-set change whose activation height this is (docs/CHAINCODE.md 2.4)."""
        ctx = TxContext(
            state,
            sender_org="",
            sender_role="",
            sender_key=b"",
            sender_is_admin=False,
            height=height,
            block_time_ms=time_ms,
            tx_id=b"",
        )
        for key, _ in list(ctx.iterate(schema_gov.expiry_prefix(height))):
            if (proposal := schema_gov.PROPOSAL_EXPIRY_RECORD.key.parse(key)) is not None:
                governance.expire_proposal(ctx, int(proposal["proposal"]))
            elif (request := schema_gov.REQUEST_EXPIRY_RECORD.key.parse(key)) is not None:
                foureyes.expire_request(ctx, int(request["request"]))
            else:
                raise InvariantBroken(f"unknown expiry entry {key!r}")
        validators.activate_pending_change(ctx)

    def genesis_writes(self, genesis: Genesis) -> dict[bytes, bytes | None]:
        return compute_genesis_writes(genesis)
