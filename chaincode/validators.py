"""The validator set as governance changes it: add, remove, rotate a node key, move a validator's addresses.

Each is a governance action (chaincode.actions) under the `validators` policy. Approving one does not change
the set in force: it records a *pending validator-set change* (`valset/pending`) with the height at which
it was approved and the whole set after the change. Consensus puts it in force at a height derived from
the approval height (the reconfiguration issue); until then no other change may be proposed or approved
(`change_pending`). The node reads the change approved in a block with `get_validator_change` after
executing it.

A node key is used once, ever (`nodekey/<key>` records every validator and observer key since genesis), and
a new key proves its operator holds it by signing core.votes.compute_node_key_proof_digest. When a change is
approved the new key is enrolled for its organisation as a node key (it signs only evidence), and a
removed or replaced key is revoked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chaincode import schema, schema_gov
from chaincode.context import TxContext, decode_record
from chaincode.identity import make_key_record
from chaincode.ledger import Code, fail, get_org
from chaincode.policy import get_validator_set
from core.keys import is_valid_signature
from core.votes import compute_node_key_proof_digest

VALIDATORS_MIN = (
    4  # a removal may not leave fewer: 3f+1 with f = 1 is the smallest set that tolerates a fault
)
VALIDATORS_MAX = 64  # as in genesis


@dataclass(frozen=True, slots=True)
class ValidatorSetChange:
    """A validator-set change approved by governance, as the node reads it after executing a block."""

    action: str  # add_validator, remove_validator, rotate_validator_key or move_validator
    proposal: int  # the proposal that approved it
    approved_height: int  # the block whose execution approved it
    node_key: bytes  # the validator concerned (for a rotation: its old key)
    new_node_key: bytes | None  # a rotation's new key
    validators: tuple[dict[str, str], ...]  # the set after the change, in index order (genesis format)


def get_validator_change(writes: Mapping[bytes, bytes | None], height: int) -> ValidatorSetChange | None:
    """The validator-set change a block approved, from its execution's net writes (BlockExecution.writes),
    or None. Pure: the same block gives the same answer on every node."""
    raw = writes.get(schema_gov.VALSET_PENDING)
    if raw is None:
        return None
    record = decode_record(raw)
    if record["approved_height"] != height:
        return None
    new_key = record["new_node_key"]
    return ValidatorSetChange(
        action=record["action"],
        proposal=record["proposal"],
        approved_height=record["approved_height"],
        node_key=bytes.fromhex(record["node_key"]),
        new_node_key=None if new_key is None else bytes.fromhex(new_key),
        validators=tuple(dict(v) for v in record["validators"]),
    )


# --- checks ---------------------------------------------------------------------------------------------


def require_no_pending_change(ctx: TxContext) -> None:
    if ctx.get(schema_gov.VALSET_PENDING) is not None:
        fail(Code.CHANGE_PENDING, "an approved validator-set change is not in force yet")


def _find(validators: list[dict[str, Any]], node_key: str) -> int:
    for index, validator in enumerate(validators):
        if validator["node_key"] == node_key:
            return index
    fail(Code.UNKNOWN_VALIDATOR, f"{node_key} is not the node key of a validator in the set")


def _require_unused_key(ctx: TxContext, org: str, node_key: str) -> None:
    if ctx.get(schema_gov.nodekey_key(node_key)) is not None:
        fail(Code.NODE_KEY_USED, f"node key {node_key} has been used before (a node key is used once)")
    if ctx.get(schema.key_key(org, bytes.fromhex(node_key))) is not None:
        fail(Code.NODE_KEY_USED, f"{node_key} is already a key of {org!r}")


def _require_free_addresses(
    validators: list[dict[str, Any]], peer_address: str, api_address: str, skip: int | None = None
) -> None:
    if peer_address == api_address:
        fail(Code.ADDRESS_IN_USE, "the peer and API addresses must differ")
    for index, validator in enumerate(validators):
        if index != skip and {peer_address, api_address} & {
            validator["peer_address"],
            validator["api_address"],
        }:
            fail(Code.ADDRESS_IN_USE, f"an address is in use by validator {index}")


def _require_proof(ctx: TxContext, org: str, node_key: str, replaces: str | None, proof: str) -> None:
    key = bytes.fromhex(node_key)
    old = None if replaces is None else bytes.fromhex(replaces)
    digest = compute_node_key_proof_digest(ctx.chain_id, org, key, old)
    if not is_valid_signature(key, digest, bytes.fromhex(proof)):
        fail(
            Code.BAD_PROOF, "the proof is not the new node key's signature of (chain id, org, key, replaces)"
        )


def check_add_validator(ctx: TxContext, args: dict[str, Any]) -> None:
    require_no_pending_change(ctx)
    org = args["org"]
    get_org(ctx, org)
    if ctx.get(schema_gov.member_key(org)) is None:
        fail(Code.NOT_MEMBER, f"{org!r} is not a member: only members operate validators")
    _require_unused_key(ctx, org, args["node_key"])
    validators = get_validator_set(ctx)["validators"]
    if len(validators) >= VALIDATORS_MAX:
        fail(Code.TOO_MANY_VALIDATORS, f"the set has {len(validators)} validators, the most there can be")
    _require_free_addresses(validators, args["peer_address"], args["api_address"])
    _require_proof(ctx, org, args["node_key"], None, args["proof"])


def check_remove_validator(ctx: TxContext, args: dict[str, Any]) -> None:
    require_no_pending_change(ctx)
    validators = get_validator_set(ctx)["validators"]
    _find(validators, args["node_key"])
    if len(validators) - 1 < VALIDATORS_MIN:
        fail(
            Code.TOO_FEW_VALIDATORS, f"the set would keep {len(validators) - 1}, fewer than {VALIDATORS_MIN}"
        )


def check_rotate_validator_key(ctx: TxContext, args: dict[str, Any]) -> None:
    require_no_pending_change(ctx)
    validators = get_validator_set(ctx)["validators"]
    org = validators[_find(validators, args["node_key"])]["org"]
    _require_unused_key(ctx, org, args["new_node_key"])
    _require_proof(ctx, org, args["new_node_key"], args["node_key"], args["proof"])


def check_move_validator(ctx: TxContext, args: dict[str, Any]) -> None:
    require_no_pending_change(ctx)
    validators = get_validator_set(ctx)["validators"]
    index = _find(validators, args["node_key"])
    current = validators[index]
    if (current["peer_address"], current["api_address"]) == (args["peer_address"], args["api_address"]):
        fail(Code.NO_CHANGE, "the validator already has these addresses")
    _require_free_addresses(validators, args["peer_address"], args["api_address"], skip=index)


# --- approval ---------------------------------------------------------------------------------------------


def _record_pending(
    ctx: TxContext,
    action: str,
    proposal: int,
    node_key: str,
    new_node_key: str | None,
    validators: list[dict[str, Any]],
) -> None:
    record = {
        "action": action,
        "proposal": proposal,
        "approved_height": ctx.height,
        "node_key": node_key,
        "new_node_key": new_node_key,
        "validators": validators,
    }
    ctx.put_record(schema_gov.VALSET_PENDING, record)
    ctx.emit("validator_change_approved", proposal=proposal, action=action, node_key=node_key)


def _enrol_node_key(ctx: TxContext, org: str, node_key: str) -> None:
    ctx.put_record(
        schema_gov.nodekey_key(node_key),
        {"node_key": node_key, "org": org, "role": "validator", "since_height": ctx.height},
    )
    key = bytes.fromhex(node_key)
    ctx.put_record(
        schema.key_key(org, key), make_key_record(org, key, admin=False, height=ctx.height, node=True)
    )


def _revoke_node_key(ctx: TxContext, org: str, node_key: str) -> None:
    key = schema.key_key(org, bytes.fromhex(node_key))
    record = ctx.get_record(key)
    if record is not None and record["status"] == "active":
        ctx.put_record(key, {**record, "status": "revoked", "revoked_height": ctx.height})


def apply_add_validator(ctx: TxContext, args: dict[str, Any], proposal: int) -> None:
    check_add_validator(ctx, args)
    entry = {k: args[k] for k in ("org", "node_key", "peer_address", "api_address")}
    validators = [*get_validator_set(ctx)["validators"], entry]
    _enrol_node_key(ctx, args["org"], args["node_key"])
    _record_pending(ctx, "add_validator", proposal, args["node_key"], None, validators)


def apply_remove_validator(ctx: TxContext, args: dict[str, Any], proposal: int) -> None:
    check_remove_validator(ctx, args)
    validators = list(get_validator_set(ctx)["validators"])
    removed = validators.pop(_find(validators, args["node_key"]))
    _revoke_node_key(ctx, removed["org"], removed["node_key"])
    _record_pending(ctx, "remove_validator", proposal, args["node_key"], None, validators)


def apply_rotate_validator_key(ctx: TxContext, args: dict[str, Any], proposal: int) -> None:
    check_rotate_validator_key(ctx, args)
    validators = list(get_validator_set(ctx)["validators"])
    index = _find(validators, args["node_key"])
    org = validators[index]["org"]
    validators[index] = {**validators[index], "node_key": args["new_node_key"]}
    _enrol_node_key(ctx, org, args["new_node_key"])
    _revoke_node_key(ctx, org, args["node_key"])
    _record_pending(ctx, "rotate_validator_key", proposal, args["node_key"], args["new_node_key"], validators)


def apply_move_validator(ctx: TxContext, args: dict[str, Any], proposal: int) -> None:
    check_move_validator(ctx, args)
    validators = list(get_validator_set(ctx)["validators"])
    index = _find(validators, args["node_key"])
    addresses = {"peer_address": args["peer_address"], "api_address": args["api_address"]}
    validators[index] = {**validators[index], **addresses}
    _record_pending(ctx, "move_validator", proposal, args["node_key"], None, validators)
