"""Governance proposals: propose, approve, reject, cancel, and expiry at the end of a block.

Every step is an ordinary signed transaction by an admin key (docs/CHAINCODE.md section 12), so history,
proofs and audit cover governance like everything else. A proposal names an action (chaincode.actions) and
the last height at which it can pass. Its conditions are the thresholds of its policies (set_policy: the
`policies` policy, the changed policy as it is, and the changed policy as proposed): each must be met by
approvals of organisations of that policy's electorate, one vote per organisation whatever key signs it.
The proposer's own organisation approves by proposing.

The transaction whose vote meets every condition executes the action, in that transaction and exactly once:
the action runs in a fork of the transaction's state; if it fails (the state changed since the proposal)
the proposal ends `failed` with the action's code and the vote still counts. A proposal that enough
organisations reject to make a condition unreachable ends `rejected`; the proposer may cancel it; one still
open after its expires_height ends `expired` at the end of that block (`sweep_expired_proposals`).
"""

from __future__ import annotations

from typing import Any

from chaincode import schema, schema_gov
from chaincode.actions import ACTIONS, Action, new_policy_terms
from chaincode.base import ChaincodeFailure, validate_arg_map
from chaincode.context import TxContext
from chaincode.ledger import Code, fail, get_params, next_counter
from chaincode.policy import (
    compute_needed,
    get_electorate,
    get_policy,
    is_in_electorate,
    is_met,
    is_reachable,
    policy_terms,
)
from core.errors import InvariantBroken


def check_propose_args(args: dict[str, Any]) -> None:
    """The action's own arguments, checked like a function's (a failure is invalid_args); normalised in place."""
    action = ACTIONS[args["action"]]
    action_args = validate_arg_map(action.name, action.args, args["args"])
    if action.check_args is not None:
        action.check_args(action_args)
    args["args"] = action_args


def compute_policy_names(action: Action, action_args: dict[str, Any]) -> list[str]:
    names = [action.policy]
    if action.name == "set_policy" and action_args["policy"] not in names:
        names.append(action_args["policy"])
    return names


def _conditions(ctx: TxContext, proposal: dict[str, Any]) -> list[dict[str, Any]]:
    """The policy terms a proposal must meet, all of them."""
    terms = [policy_terms(get_policy(ctx, name)) for name in proposal["policies"]]
    if proposal["action"] == "set_policy":
        terms.append(new_policy_terms(proposal["args"]))
    return terms


def _count(ctx: TxContext, votes: list[dict[str, Any]], electorate: str) -> int:
    return sum(1 for vote in votes if is_in_electorate(ctx, electorate, vote["org"]))


def _vote(ctx: TxContext) -> dict[str, Any]:
    return {"org": ctx.sender_org, "key": ctx.sender_key.hex(), "height": ctx.height}


# --- the functions ---------------------------------------------------------------------------------------------


def apply_propose(ctx: TxContext, args: dict[str, Any]) -> None:
    action = ACTIONS[args["action"]]
    action_args, expires = args["args"], args["expires_height"]
    params = get_params(ctx)
    if not ctx.height < expires <= ctx.height + params["proposal_blocks_max"]:
        fail(
            Code.BAD_EXPIRY,
            f"expires_height must be in ({ctx.height}, {ctx.height + params['proposal_blocks_max']}]",
        )
    is_validator_change = action.name in schema_gov.VALIDATOR_ACTIONS
    if is_validator_change and ctx.get(schema_gov.VALSET_OPEN) is not None:
        fail(Code.CHANGE_PENDING, "another validator-set proposal is open (one at a time)")
    names = compute_policy_names(action, action_args)
    if not is_in_electorate(ctx, get_policy(ctx, names[0])["proposers"], ctx.sender_org):
        fail(Code.NOT_ELIGIBLE, f"{ctx.sender_org!r} may not propose under policy {names[0]!r}")
    prefix = schema_gov.org_proposal_prefix(ctx.sender_org)
    if sum(1 for _ in ctx.iterate(prefix)) >= params["open_proposals_max"]:
        fail(Code.LIMIT_EXCEEDED, f"at most {params['open_proposals_max']} open proposals per organisation")
    action.check(ctx, action_args)
    proposal: dict[str, Any] = {
        "action": action.name,
        "args": action_args,
        "policies": names,
        "proposer": ctx.sender_org,
        "proposer_key": ctx.sender_key.hex(),
        "created_height": ctx.height,
        "expires_height": expires,
        "status": "open",
        "approvals": [],
        "rejections": [],
        "closed_height": None,
        "failure": None,
    }
    conditions = _conditions(ctx, proposal)
    for terms in conditions:
        size = len(get_electorate(ctx, terms["approvers"]))
        if compute_needed(size, terms) > size:
            fail(Code.POLICY_UNREACHABLE, f"a threshold needs more approvals than its {size} approvers")
    number = next_counter(ctx, schema.COUNTER_PROPOSAL)
    proposal["id"] = number
    if any(is_in_electorate(ctx, terms["approvers"], ctx.sender_org) for terms in conditions):
        proposal["approvals"].append(_vote(ctx))
    ctx.put(schema_gov.org_proposal_key(ctx.sender_org, number), schema.EMPTY_MAP)
    ctx.put(schema_gov.proposal_expiry_key(expires, number), schema.EMPTY_MAP)
    if is_validator_change:
        ctx.put_record(schema_gov.VALSET_OPEN, {"proposal": number})
    ctx.emit(
        "proposal_created",
        proposal=number,
        action=action.name,
        proposer=ctx.sender_org,
        expires_height=expires,
    )
    _settle(ctx, proposal, conditions)


def apply_approve(ctx: TxContext, args: dict[str, Any]) -> None:
    proposal, conditions = _vote_on(ctx, args["proposal"])
    proposal["approvals"].append(_vote(ctx))
    ctx.emit("proposal_approved", proposal=proposal["id"], org=ctx.sender_org)
    _settle(ctx, proposal, conditions)


def apply_reject(ctx: TxContext, args: dict[str, Any]) -> None:
    proposal, conditions = _vote_on(ctx, args["proposal"])
    proposal["rejections"].append(_vote(ctx))
    ctx.emit("proposal_rejected", proposal=proposal["id"], org=ctx.sender_org)
    _settle(ctx, proposal, conditions)


def apply_cancel(ctx: TxContext, args: dict[str, Any]) -> None:
    proposal = _open_proposal(ctx, args["proposal"])
    if proposal["proposer"] != ctx.sender_org:
        fail(Code.NOT_PROPOSER, f"only {proposal['proposer']!r}, the proposer, may cancel it")
    _close(ctx, proposal, "cancelled", ctx.height)
    ctx.emit("proposal_cancelled", proposal=proposal["id"])


def _open_proposal(ctx: TxContext, number: int) -> dict[str, Any]:
    proposal = ctx.get_record(schema_gov.proposal_key(number))
    if proposal is None:
        fail(Code.UNKNOWN_PROPOSAL, f"proposal {number} does not exist")
    if proposal["status"] != "open":
        fail(Code.PROPOSAL_CLOSED, f"proposal {number} is {proposal['status']}")
    return proposal


def _vote_on(ctx: TxContext, number: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    proposal = _open_proposal(ctx, number)
    conditions = _conditions(ctx, proposal)
    if not any(is_in_electorate(ctx, terms["approvers"], ctx.sender_org) for terms in conditions):
        fail(Code.NOT_ELIGIBLE, f"{ctx.sender_org!r} is not among the approvers of proposal {number}")
    if any(vote["org"] == ctx.sender_org for vote in proposal["approvals"] + proposal["rejections"]):
        fail(Code.ALREADY_VOTED, f"{ctx.sender_org!r} voted on proposal {number} already")
    return proposal, conditions


def _settle(ctx: TxContext, proposal: dict[str, Any], conditions: list[dict[str, Any]]) -> None:
    """Execute a proposal whose conditions are all met, end one that can no longer pass; then store it."""
    sizes = [len(get_electorate(ctx, terms["approvers"])) for terms in conditions]
    approvals = [_count(ctx, proposal["approvals"], terms["approvers"]) for terms in conditions]
    rejections = [_count(ctx, proposal["rejections"], terms["approvers"]) for terms in conditions]
    if all(is_met(a, n, t) for a, n, t in zip(approvals, sizes, conditions, strict=True)):
        _execute(ctx, proposal)
    elif not all(is_reachable(r, n, t) for r, n, t in zip(rejections, sizes, conditions, strict=True)):
        _close(ctx, proposal, "rejected", ctx.height)
        ctx.emit("proposal_defeated", proposal=proposal["id"])
    else:
        ctx.put_record(schema_gov.proposal_key(proposal["id"]), proposal)


def _execute(ctx: TxContext, proposal: dict[str, Any]) -> None:
    action = ACTIONS[proposal["action"]]
    child = ctx.fork()
    try:
        action.apply(child, proposal["args"], proposal["id"])
    except ChaincodeFailure as failure:
        proposal["failure"] = failure.code
        _close(ctx, proposal, "failed", ctx.height)
        ctx.emit("proposal_failed", proposal=proposal["id"], action=action.name, code=failure.code)
        return
    ctx.emit("proposal_executed", proposal=proposal["id"], action=action.name)
    ctx.absorb(child)
    _close(ctx, proposal, "executed", ctx.height)


def _close(ctx: TxContext, proposal: dict[str, Any], status: str, height: int) -> None:
    number = proposal["id"]
    proposal["status"] = status
    proposal["closed_height"] = height
    ctx.put_record(schema_gov.proposal_key(number), proposal)
    ctx.delete(schema_gov.org_proposal_key(proposal["proposer"], number))
    ctx.delete(schema_gov.proposal_expiry_key(proposal["expires_height"], number))
    holder = ctx.get_record(schema_gov.VALSET_OPEN)
    if holder is not None and holder["proposal"] == number:
        ctx.delete(schema_gov.VALSET_OPEN)


def expire_proposal(ctx: TxContext, number: int) -> None:
    """End-of-block expiry of an open proposal whose last height this block is."""
    proposal = ctx.get_record(schema_gov.proposal_key(number))
    if proposal is None or proposal["status"] != "open":
        raise InvariantBroken(f"the expiry index names proposal {number}, which is not open")
    _close(ctx, proposal, "expired", ctx.height)
