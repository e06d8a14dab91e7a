"""Evidence of misbehaviour on chain: two conflicting consensus messages signed by one validator.

A validator that holds two signed messages of the same kind for the same slot (view and height; a
checkpoint has only a height) naming different blocks, or different states for a checkpoint, has proof that
their signer equivocated: an honest validator never signs twice for one slot (its safety log). It submits
them with `report_evidence`, signed by its node key (enrolled for its organisation as a node key, which signs
nothing else). Execution recomputes both signing digests (core.votes, the bytes consensus signs) and checks
both Ed25519 signatures against the validator's key, deterministically: the same transaction gives the same
answer on every node. The offence is recorded once, keyed by (validator, height, view, kind): the same
evidence again, from any reporter, fails `duplicate_evidence`. Governance may act on it (remove_validator).
Nothing else is evidence: a refused proposal or a late vote is not an accusation.
"""

from __future__ import annotations

from typing import Any

from chaincode import schema_gov
from chaincode.base import InvalidArgs
from chaincode.context import TxContext
from chaincode.ledger import Code, fail
from core.keys import is_valid_signature
from core.votes import (
    compute_checkpoint_digest,
    compute_commit_digest,
    compute_pre_prepare_digest,
    compute_prepare_digest,
)

_VOTE_DIGESTS = {
    "pre_prepare": compute_pre_prepare_digest,
    "prepare": compute_prepare_digest,
    "commit": compute_commit_digest,
}


def check_evidence_args(args: dict[str, Any]) -> None:
    """A checkpoint has state roots and no view; the other kinds have a view and no state roots."""
    is_checkpoint = args["kind"] == "checkpoint"
    roots = [args["state_root_1"], args["state_root_2"]]
    if is_checkpoint:
        if args["view"] is not None or None in roots:
            raise InvalidArgs("report_evidence", "view", "checkpoint evidence has state roots and no view")
    elif args["view"] is None or roots != [None, None]:
        raise InvalidArgs("report_evidence", "view", f"{args['kind']} evidence has a view and no state roots")


def compute_digest(
    chain_id: str, kind: str, view: int, height: int, block_hash: bytes, root: bytes | None
) -> bytes:
    """The digest a validator signed for one message of the evidence."""
    if kind == "checkpoint":
        assert root is not None
        return compute_checkpoint_digest(chain_id, height, block_hash, root)
    return _VOTE_DIGESTS[kind](chain_id, view, height, block_hash)


def apply_report_evidence(ctx: TxContext, args: dict[str, Any]) -> None:
    validator, kind, height = args["validator"], args["kind"], args["height"]
    view = args["view"] if args["view"] is not None else 0
    node = ctx.get_record(schema_gov.nodekey_key(validator))
    if node is None or node["role"] != "validator":
        fail(Code.UNKNOWN_VALIDATOR, f"{validator} is not the node key of a validator")
    messages = sorted(
        (
            (args["block_hash_1"], args["state_root_1"] or "", args["signature_1"]),
            (args["block_hash_2"], args["state_root_2"] or "", args["signature_2"]),
        )
    )
    first, second = messages
    if first[:2] == second[:2]:
        fail(Code.SAME_MESSAGE, "the two messages are the same message: that is no conflict")
    public_key = bytes.fromhex(validator)
    for block_hash, root, signature in messages:
        digest = compute_digest(
            ctx.chain_id, kind, view, height, bytes.fromhex(block_hash), bytes.fromhex(root) if root else None
        )
        if not is_valid_signature(public_key, digest, bytes.fromhex(signature)):
            fail(Code.INVALID_SIGNATURE, f"a signature is not {validator}'s over its {kind} message")
    key = schema_gov.evidence_key(validator, height, view, kind)
    if ctx.get(key) is not None:
        fail(Code.DUPLICATE_EVIDENCE, f"this {kind} equivocation at height {height} is recorded already")
    record = {
        "validator": validator,
        "org": node["org"],
        "kind": kind,
        "view": view,
        "height": height,
        "block_hash_1": first[0],
        "state_root_1": first[1] or None,
        "signature_1": first[2],
        "block_hash_2": second[0],
        "state_root_2": second[1] or None,
        "signature_2": second[2],
        "reporter": ctx.sender_org,
        "reporter_key": ctx.sender_key.hex(),
        "recorded_height": ctx.height,
        "tx_id": ctx.tx_id.hex(),
    }
    ctx.put_record(key, record)
    ctx.emit("evidence_recorded", validator=validator, org=node["org"], kind=kind, view=view, height=height)
