"""Governance policies: who belongs to an electorate, and how many of them a decision needs.

A policy (`policy/<name>`, written at genesis from genesis `governance.policies`) names who may propose
(`proposers`), whose approvals count (`approvers`) and the threshold: of the n organisations of the
approving electorate, at least max(threshold_min, ceil(n * threshold_num / threshold_den)) must approve.
Electorates are counted when a vote is counted, from state:
- `members`: the organisations with a `member/<org>` record;
- `validators`: the organisations operating a validator of the set in force (`valset/current`);
- a role name: every registered organisation of that role.
One organisation has one vote, however many of its keys sign: votes are kept per organisation.
"""

from __future__ import annotations

from typing import Any

from chaincode import schema, schema_gov
from chaincode.context import TxContext
from core.errors import InvariantBroken
from core.genesis import ELECTORATE_MEMBERS, ELECTORATE_VALIDATORS, POLICY_FIELDS


def compute_needed(electorate_size: int, policy: dict[str, Any]) -> int:
    """Approvals a policy needs from an electorate of this size (may exceed it: then it cannot pass)."""
    share = -(-electorate_size * policy["threshold_num"] // policy["threshold_den"])  # ceiling
    return max(int(policy["threshold_min"]), share)


def is_met(approvals: int, electorate_size: int, policy: dict[str, Any]) -> bool:
    return approvals >= compute_needed(electorate_size, policy)


def is_reachable(rejections: int, electorate_size: int, policy: dict[str, Any]) -> bool:
    """Whether the organisations that have not rejected could still meet the threshold."""
    return electorate_size - rejections >= compute_needed(electorate_size, policy)


def get_policy(ctx: TxContext, name: str) -> dict[str, Any]:
    record = ctx.get_record(schema_gov.policy_key(name))
    if record is None:
        raise InvariantBroken(f"governance policy {name!r} is missing from state (genesis not applied?)")
    return record


def policy_terms(record: dict[str, Any]) -> dict[str, Any]:
    """The five fields that define a policy (without its history)."""
    return {field: record[field] for field in POLICY_FIELDS}


def get_electorate(ctx: TxContext, name: str) -> list[str]:
    """The organisations of an electorate, in key order (validators: in validator order, each once)."""
    if name == ELECTORATE_MEMBERS:
        return [record["org"] for _, record in ctx.iterate_records(schema_gov.MEMBER_PREFIX)]
    if name == ELECTORATE_VALIDATORS:
        return list(dict.fromkeys(v["org"] for v in get_validator_set(ctx)["validators"]))
    return [record["id"] for _, record in ctx.iterate_records(schema.ORG_PREFIX) if record["role"] == name]


def is_in_electorate(ctx: TxContext, name: str, org: str) -> bool:
    if name == ELECTORATE_MEMBERS:
        return ctx.get(schema_gov.member_key(org)) is not None
    if name == ELECTORATE_VALIDATORS:
        return any(v["org"] == org for v in get_validator_set(ctx)["validators"])
    record = ctx.get_record(schema.org_key(org))
    return record is not None and record["role"] == name


def get_validator_set(ctx: TxContext) -> dict[str, Any]:
    record = ctx.get_record(schema_gov.VALSET)
    if record is None:
        raise InvariantBroken("the validator set is missing from state (genesis not applied?)")
    return record
