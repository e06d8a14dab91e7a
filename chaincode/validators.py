"""The validator set as governance changes it: add, remove, rotate a node key, move a validator's addresses.

Each is a governance action (chaincode.actions) under the `validators` policy. Approving one while executing
block h does not change the set in force: it records a *pending validator-set change* (`valset/pending`)
with the whole set after the change and its activation height L = core.validators.compute_activation_height
(h) (the first multiple of checkpoint_interval at least h + 2 * pipeline_depth + 2; docs/protocol/core.md
6.5). The end-of-block step of block L puts it in force (`activate_pending_change`): `valset/current`
becomes the new set, certifying from L + 1, its epoch record joins the history (`valset/epoch/<n>`) and the
pending record goes. Until then no other change may be proposed or approved (`change_pending`), so the sets
follow each other in approval order, as consensus.membership expects. The node reads the change a block
approved with `get_validator_change` after executing it, and every change of the executed chain with
`list_validator_changes` when it starts.

Validators have permanent numbers (core/validators.py): genesis order 0..n-1, then an added validator gets
`next_number`, one more than any number ever used; a number is never reused. A node key is used once, ever
(`nodekey/<key>` records every validator and observer key since genesis, from the approval on), and a new key
proves its operator holds it by signing core.votes.compute_node_key_proof_digest. When a change comes into
force the new key is enrolled for its organisation as a node key (it signs only evidence), and a removed or
replaced key is revoked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaincode import schema, schema_gov
from chaincode.context import TxContext, decode_record
from chaincode.identity import make_key_record
from chaincode.ledger import Code, fail, get_org
from chaincode.policy import get_validator_set
from core.errors import InvariantBroken
from core.keys import is_valid_signature
from core.state import StateReader
from core.validators import NUMBER_MAX, ValidatorSet, compute_activation_height
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
    activation_height: int  # L: the last height the current set certifies; the new set certifies from L + 1
    number: int  # the validator concerned
    node_key: bytes  # its node key (for a rotation: its old key)
    new_node_key: bytes | None  # a rotation's new key
    validators: tuple[dict[str, Any], ...]  # the set after the change, in number order (state format)

    @property
    def validator_set(self) -> ValidatorSet:
        """The set after the change, as consensus counts it (numbers and node keys)."""
        return to_validator_set(self.validators)


def to_validator_set(validators: Sequence[Mapping[str, Any]]) -> ValidatorSet:
    """A state validator list (number order) as a core.validators.ValidatorSet."""
    return ValidatorSet(tuple((v["number"], bytes.fromhex(v["node_key"])) for v in validators))


def _change_of(record: dict[str, Any]) -> ValidatorSetChange:
    new_key = record["new_node_key"]
    return ValidatorSetChange(
        action=record["action"],
        proposal=record["proposal"],
        approved_height=record["approved_height"],
        activation_height=record["activation_height"],
        number=record["number"],
        node_key=bytes.fromhex(record["node_key"]),
        new_node_key=None if new_key is None else bytes.fromhex(new_key),
        validators=tuple(dict(v) for v in record["validators"]),
    )


def get_validator_change(writes: Mapping[bytes, bytes | None], height: int) -> ValidatorSetChange | None:
    """The validator-set change block `height` approved, from its execution's net writes
    (BlockExecution.writes), or None. Pure: the same block gives the same answer on every node."""
    raw = writes.get(schema_gov.VALSET_PENDING)
    if raw is None:
        return None
    record = decode_record(raw)
    return _change_of(record) if record["approved_height"] == height else None


def list_epochs(state: StateReader) -> list[dict[str, Any]]:
    """Every validator set of the chain as the executed blocks decide it, in order: the epoch records
    (`valset/epoch/<n>`, genesis first), then a pending change's set as the epoch it will be (certifying
    from its activation height + 1). A change approved later can only start above the last executed height
    + 2 * pipeline_depth + 2, so the list is final up to there."""
    epochs = [decode_record(raw) for _, raw in state.iterate(schema_gov.VALSET_EPOCH_PREFIX)]
    if not epochs:
        raise InvariantBroken("the validator set is missing from state (genesis not applied?)")
    pending = state.get(schema_gov.VALSET_PENDING)
    if pending is not None:
        epochs.append(compute_next_epoch(epochs[-1], decode_record(pending)))
    return epochs


def compute_next_epoch(current: Mapping[str, Any], pending: Mapping[str, Any]) -> dict[str, Any]:
    """The epoch record a pending change becomes: the one after `current`, from its activation height + 1."""
    return {
        "epoch": current["epoch"] + 1,
        "first_height": pending["activation_height"] + 1,
        **{k: pending[k] for k in ("approved_height", "proposal", "action", "validators")},
    }


def list_validator_changes(state: StateReader) -> list[tuple[int, ValidatorSet]]:
    """Every change the executed chain approved, as (approved height, the set after it), in approval order
    (the pending one last): what a restarted replica rebuilds its Membership from
    (consensus.replica.RecoveredState.validator_changes)."""
    return [(e["approved_height"], to_validator_set(e["validators"])) for e in list_epochs(state)[1:]]


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
    current = get_validator_set(ctx)
    validators = current["validators"]
    if len(validators) >= VALIDATORS_MAX:
        fail(Code.TOO_MANY_VALIDATORS, f"the set has {len(validators)} validators, the most there can be")
    if current["next_number"] > NUMBER_MAX:
        fail(Code.TOO_MANY_VALIDATORS, f"every validator number up to {NUMBER_MAX} has been used")
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


# --- approval and activation ------------------------------------------------------------------------------


def _record_pending(
    ctx: TxContext,
    action: str,
    proposal: int,
    validator: dict[str, Any],
    new_node_key: str | None,
    validators: list[dict[str, Any]],
) -> None:
    rule = ctx.get_record(schema_gov.VALSET_RULE)
    if rule is None:
        raise InvariantBroken("the activation rule is missing from state (genesis not applied?)")
    activation = compute_activation_height(
        ctx.height, checkpoint_interval=rule["checkpoint_interval"], pipeline_depth=rule["pipeline_depth"]
    )
    record = {
        "action": action,
        "proposal": proposal,
        "approved_height": ctx.height,
        "activation_height": activation,
        "number": validator["number"],
        "node_key": validator["node_key"],
        "new_node_key": new_node_key,
        "validators": validators,
    }
    ctx.put_record(schema_gov.VALSET_PENDING, record)
    ctx.emit(
        "validator_change_approved",
        proposal=proposal,
        action=action,
        number=validator["number"],
        node_key=validator["node_key"],
        activation_height=activation,
    )


def _reserve_node_key(ctx: TxContext, org: str, node_key: str) -> None:
    """A key is used once, ever: recorded from the approval on, so no later proposal can name it."""
    ctx.put_record(
        schema_gov.nodekey_key(node_key),
        {"node_key": node_key, "org": org, "role": "validator", "since_height": ctx.height},
    )


def _enrol_node_key(ctx: TxContext, org: str, node_key: str) -> None:
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
    current = get_validator_set(ctx)
    entry = {
        "number": current["next_number"],
        **{k: args[k] for k in ("org", "node_key", "peer_address", "api_address")},
    }
    _reserve_node_key(ctx, args["org"], args["node_key"])
    _record_pending(ctx, "add_validator", proposal, entry, None, [*current["validators"], entry])


def apply_remove_validator(ctx: TxContext, args: dict[str, Any], proposal: int) -> None:
    check_remove_validator(ctx, args)
    validators = list(get_validator_set(ctx)["validators"])
    removed = validators.pop(_find(validators, args["node_key"]))
    _record_pending(ctx, "remove_validator", proposal, removed, None, validators)


def apply_rotate_validator_key(ctx: TxContext, args: dict[str, Any], proposal: int) -> None:
    check_rotate_validator_key(ctx, args)
    validators = list(get_validator_set(ctx)["validators"])
    index = _find(validators, args["node_key"])
    rotated = validators[index]
    validators[index] = {**rotated, "node_key": args["new_node_key"]}
    _reserve_node_key(ctx, rotated["org"], args["new_node_key"])
    _record_pending(ctx, "rotate_validator_key", proposal, rotated, args["new_node_key"], validators)


def apply_move_validator(ctx: TxContext, args: dict[str, Any], proposal: int) -> None:
    check_move_validator(ctx, args)
    validators = list(get_validator_set(ctx)["validators"])
    index = _find(validators, args["node_key"])
    moved = validators[index]
    validators[index] = {**moved, "peer_address": args["peer_address"], "api_address": args["api_address"]}
    _record_pending(ctx, "move_validator", proposal, moved, None, validators)


def activate_pending_change(ctx: TxContext) -> None:
    """End of block L of the pending change: it becomes the set in force, certifying from L + 1."""
    pending = ctx.get_record(schema_gov.VALSET_PENDING)
    if pending is None or pending["activation_height"] != ctx.height:
        if pending is not None and pending["activation_height"] < ctx.height:
            raise InvariantBroken(f"the change pending since {pending['approved_height']} missed its height")
        return
    current = get_validator_set(ctx)
    validators = pending["validators"]
    epoch = compute_next_epoch(current, pending)
    next_number = max(current["next_number"], *(v["number"] + 1 for v in validators))
    ctx.put_record(schema_gov.VALSET, {**epoch, "next_number": next_number})
    ctx.put_record(schema_gov.valset_epoch_key(epoch["epoch"]), epoch)
    ctx.delete(schema_gov.VALSET_PENDING)
    before = {v["number"]: v for v in current["validators"]}
    after = {v["number"]: v for v in validators}
    for number in sorted(before.keys() | after.keys()):
        old, new = before.get(number), after.get(number)
        if old is not None and (new is None or new["node_key"] != old["node_key"]):
            _revoke_node_key(ctx, old["org"], old["node_key"])
        if new is not None and (old is None or new["node_key"] != old["node_key"]):
            _enrol_node_key(ctx, new["org"], new["node_key"])
