"""Read-only queries over governance state: proposals, members, policies, the validator set, four-eyes
requests and thresholds, evidence (registered in chaincode.queries.QUERIES; docs/API.md)."""

from __future__ import annotations

from itertools import islice
from typing import Any

from chaincode import schema, schema_gov
from chaincode.base import Arg, QuerySpec
from chaincode.context import decode_record
from chaincode.query_kit import LIMIT_ARG, after_arg, get_or_not_found, iter_records, page
from chaincode.schema import SEQ_MAX
from chaincode.validators import list_epochs
from core.state import StateReader

SCAN_MAX = 10_000  # records a filtered list looks at for one page, at most (then it pages on)
PROPOSAL_STATUSES = ("open", "executed", "failed", "rejected", "cancelled", "expired")
REQUEST_STATUSES = ("pending", "executed", "failed", "rejected", "expired")
_THRESHOLD_PARAMS = {
    "allowance_t": "four_eyes_allowance_t",
    "offset_t": "four_eyes_offset_t",
    "cash_fen": "four_eyes_cash_fen",
    "order_t": "four_eyes_order_t",
    "allocation_t": "four_eyes_allocation_t",
}


def _filtered_page(
    state: StateReader, prefix: bytes, start: bytes | None, limit: int, keep: Any, cursor: Any
) -> dict[str, Any]:
    """A page of the records under `prefix` that `keep` accepts; looks at SCAN_MAX records at most, so a
    page may come back short with a `next` to go on from."""
    items: list[dict[str, Any]] = []
    last: dict[str, Any] | None = None
    for scanned, (_, record) in enumerate(iter_records(state, prefix, start)):
        if scanned == SCAN_MAX:
            return {"items": items, "next": cursor(last)}
        last = record
        if keep(record):
            items.append(record)
            if len(items) > limit:
                break
    return page(items, limit, cursor)


def query_proposals(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    """Proposals in id order, optionally only those of one status."""
    start = None if p["start_after"] is None else schema_gov.proposal_key(p["start_after"])
    status = p["status"]
    return _filtered_page(
        state,
        schema_gov.PROPOSAL_PREFIX,
        start,
        p["limit"],
        lambda record: status is None or record["status"] == status,
        lambda record: record["id"],
    )


def query_proposal(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    return get_or_not_found(state, schema_gov.proposal_key(p["proposal"]), f"proposal {p['proposal']}")


def query_members(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    return {"items": [record for _, record in iter_records(state, schema_gov.MEMBER_PREFIX, None)]}


def query_policies(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    return {"items": [record for _, record in iter_records(state, schema_gov.POLICY_PREFIX, None)]}


def query_validators(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    """The set in force at `height` (default: the current set, which certifies the heights after the last
    executed block), every set since genesis with the heights it certifies (a pending change's set last),
    the approved change not in force yet with its activation height, and the open validator-set proposal."""
    current = get_or_not_found(state, schema_gov.VALSET, "validator set")
    raw_pending = state.get(schema_gov.VALSET_PENDING)
    epochs = list_epochs(state)
    for epoch, successor in zip(epochs, [*epochs[1:], None], strict=True):
        epoch["last_height"] = None if successor is None else successor["first_height"] - 1
    height = p["height"]
    if height is None:
        in_force = epochs[current["epoch"]]
    else:
        in_force = next(epoch for epoch in reversed(epochs) if epoch["first_height"] <= height)
    open_proposal = state.get(schema_gov.VALSET_OPEN)
    return {
        "height": height,
        **{k: in_force[k] for k in ("epoch", "first_height", "last_height", "validators")},
        "next_number": current["next_number"],
        "history": epochs,
        "pending": None if raw_pending is None else decode_record(raw_pending),
        "open_proposal": None if open_proposal is None else decode_record(open_proposal)["proposal"],
    }


def query_requests(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    """Four-eyes requests in id order, optionally of one organisation and one status."""
    start = None if p["start_after"] is None else schema_gov.request_key(p["start_after"])
    org, status = p["org"], p["status"]
    return _filtered_page(
        state,
        schema_gov.REQUEST_PREFIX,
        start,
        p["limit"],
        lambda r: (org is None or r["org"] == org) and (status is None or r["status"] == status),
        lambda record: record["id"],
    )


def query_request(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    return get_or_not_found(state, schema_gov.request_key(p["request"]), f"request {p['request']}")


def query_four_eyes(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    """The thresholds in force for an organisation: its own where set, else the consortium's."""
    get_or_not_found(state, schema.org_key(p["org"]), f"organisation {p['org']!r}")
    params = get_or_not_found(state, schema.PARAMS, "parameters")
    raw = state.get(schema_gov.thresholds_key(p["org"]))
    own = decode_record(raw) if raw is not None else dict.fromkeys(_THRESHOLD_PARAMS)
    effective = {
        field: params[name] if own[field] is None else own[field] for field, name in _THRESHOLD_PARAMS.items()
    }
    return {
        "org": p["org"],
        "own": own,
        "effective": effective,
        "freezes": params["four_eyes_freezes"],
        "window_blocks": params["four_eyes_window_blocks"],
    }


def query_evidence(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    """Recorded evidence, by validator key, then height; optionally of one validator."""
    validator = p["validator"]
    prefix = schema_gov.EVIDENCE_PREFIX + (b"" if validator is None else validator.encode() + b"/")
    start = None if p["start_after"] is None else schema_gov.EVIDENCE_PREFIX + p["start_after"].encode()
    if start is not None and not start.startswith(prefix):
        start = None
    items = []
    for key, record in islice(iter_records(state, prefix, start), p["limit"] + 1):
        items.append({**record, "key": key.decode()[len("evidence/") :]})
    result = page(items, p["limit"], lambda item: item["key"])
    for item in result["items"]:
        del item["key"]
    return result


_proposal = Arg("proposal", "int", "proposal id", minimum=1, maximum=SEQ_MAX)
_request = Arg("request", "int", "request id", minimum=1, maximum=SEQ_MAX)

GOVERNANCE_QUERIES = (
    QuerySpec(
        "proposals",
        (
            Arg("status", "enum", "only proposals of this status", required=False, choices=PROPOSAL_STATUSES),
            after_arg("proposal id", "int"),
            LIMIT_ARG,
        ),
        "Governance proposals, oldest first.",
        query_proposals,
    ),
    QuerySpec("proposal", (_proposal,), "One proposal with its votes.", query_proposal),
    QuerySpec("members", (), "The consortium's member organisations.", query_members),
    QuerySpec("policies", (), "The governance policies.", query_policies),
    QuerySpec(
        "validators",
        (
            Arg(
                "height",
                "int",
                "the height whose set is asked (default: the current set)",
                required=False,
                minimum=1,
                maximum=2**62,
            ),
        ),
        "The validator set in force at a height, the history of sets with the heights they certify, and the "
        "pending change with its activation height.",
        query_validators,
    ),
    QuerySpec(
        "requests",
        (
            Arg("org", "org", "only this organisation's requests", required=False),
            Arg("status", "enum", "only requests of this status", required=False, choices=REQUEST_STATUSES),
            after_arg("request id", "int"),
            LIMIT_ARG,
        ),
        "Four-eyes requests, oldest first.",
        query_requests,
    ),
    QuerySpec("request", (_request,), "One four-eyes request.", query_request),
    QuerySpec(
        "four_eyes",
        (Arg("org", "org", "organisation id"),),
        "The four-eyes thresholds in force for an organisation.",
        query_four_eyes,
    ),
    QuerySpec(
        "evidence",
        (
            Arg("validator", "hex32", "only this validator's (node key hex)", required=False),
            after_arg("the `next` of the previous page", "str"),
            LIMIT_ARG,
        ),
        "Recorded evidence of equivocation.",
        query_evidence,
    ),
)
