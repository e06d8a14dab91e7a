"""Shared building blocks of the carbon functions: failure codes, record access, balances, counters, totals.

Every helper here reads and writes through the TxContext, so a failure raised after some writes discards
them together with the rest of the transaction. Balances are integers (whole tonnes, or fen for cash) and
never negative; every credit checks an upper bound so that no value can leave the codec's integer range.
"""

from __future__ import annotations

from typing import Any, NoReturn

from chaincode import schema
from chaincode.base import ChaincodeFailure
from chaincode.context import TxContext
from core.errors import InvariantBroken

BALANCE_MAX = 2**62  # no balance or total may exceed this (far beyond any real market)


class Code:
    """Stable failure codes (docs/CHAINCODE.md)."""

    FORBIDDEN = "forbidden"  # the sender's role or key may not call this function (on this object)
    NOT_ADMIN = "not_admin"  # an admin key of the organisation is required
    FROZEN = "frozen"  # an organisation involved is frozen or blocked
    UNKNOWN_ORG = "unknown_org"
    ORG_EXISTS = "org_exists"
    WRONG_ROLE = "wrong_role"  # the target organisation has the wrong role for this action
    KEY_EXISTS = "key_exists"
    UNKNOWN_KEY = "unknown_key"
    KEY_REVOKED = "key_revoked"
    LAST_ADMIN = "last_admin"
    LIMIT_EXCEEDED = "limit_exceeded"
    NOT_ACCREDITED = "not_accredited"
    UNKNOWN_PERIOD = "unknown_period"
    PERIOD_EXISTS = "period_exists"
    PERIOD_CLOSED = "period_closed"
    BAD_DEADLINES = "bad_deadlines"
    DEADLINE_PASSED = "deadline_passed"
    DEADLINE_NOT_REACHED = "deadline_not_reached"
    UNKNOWN_REPORT = "unknown_report"
    ALREADY_VERIFIED = "already_verified"
    OWN_REPORT = "own_report"
    MATERIAL_MISSTATEMENT = "material_misstatement"
    ALREADY_SETTLED = "already_settled"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    INSUFFICIENT_CASH = "insufficient_cash"
    NOT_TRADABLE_TODAY = "not_tradable_today"
    SELF_TRANSFER = "self_transfer"
    OFFSET_CAP_EXCEEDED = "offset_cap_exceeded"
    NO_VERIFIED_EMISSIONS = "no_verified_emissions"
    UNKNOWN_PROJECT = "unknown_project"
    PROJECT_EXISTS = "project_exists"
    OVERLAPPING_ISSUANCE = "overlapping_issuance"
    UNKNOWN_SERIAL = "unknown_serial"
    RANGE_NOT_IN_BLOCK = "range_not_in_block"
    NOT_HOLDER = "not_holder"
    SERIAL_FINAL = "serial_final"
    SERIAL_FROZEN = "serial_frozen"
    SERIAL_HELD = "serial_held"  # a pending four-eyes request holds the serials
    BAD_SPLIT = "bad_split"
    PRICE_OUT_OF_BAND = "price_out_of_band"
    UNKNOWN_ORDER = "unknown_order"
    ORDER_CLOSED = "order_closed"
    DUPLICATE_REFERENCE = "duplicate_reference"
    BAD_AMOUNT = "bad_amount"
    OVERFLOW = "overflow"
    # governance (section 12)
    UNKNOWN_PROPOSAL = "unknown_proposal"
    PROPOSAL_CLOSED = "proposal_closed"  # it already ended (executed, failed, rejected, cancelled, expired)
    NOT_ELIGIBLE = "not_eligible"  # the sender's organisation is not in the electorate that may do this
    ALREADY_VOTED = "already_voted"  # the organisation voted on this proposal already (with any key)
    NOT_PROPOSER = "not_proposer"
    BAD_EXPIRY = "bad_expiry"
    POLICY_UNREACHABLE = "policy_unreachable"  # the threshold needs more organisations than there are
    NO_CHANGE = "no_change"
    ALREADY_MEMBER = "already_member"
    NOT_MEMBER = "not_member"
    LAST_MEMBER = "last_member"
    RUNS_VALIDATOR = "runs_validator"
    CHANGE_PENDING = "change_pending"  # a validator-set change is proposed or approved and not yet in force
    UNKNOWN_VALIDATOR = "unknown_validator"
    NODE_KEY_USED = "node_key_used"  # a node key is used once, ever
    ADDRESS_IN_USE = "address_in_use"
    TOO_FEW_VALIDATORS = "too_few_validators"
    TOO_MANY_VALIDATORS = "too_many_validators"
    BAD_PROOF = "bad_proof"  # the new node key did not sign its proof of possession
    # four-eyes requests (section 13)
    UNKNOWN_REQUEST = "unknown_request"
    REQUEST_CLOSED = "request_closed"
    SAME_KEY = "same_key"  # the second approval must come from another key
    # evidence (section 14)
    SAME_MESSAGE = "same_message"
    INVALID_SIGNATURE = "invalid_signature"
    DUPLICATE_EVIDENCE = "duplicate_evidence"


def fail(code: str, message: str) -> NoReturn:
    raise ChaincodeFailure(code, message)


# --- organisations ----------------------------------------------------------------------------------------


def get_org(ctx: TxContext, org: str) -> dict[str, Any]:
    record = ctx.get_record(schema.org_key(org))
    if record is None:
        fail(Code.UNKNOWN_ORG, f"organisation {org!r} is not registered")
    return record


def require_org_role(ctx: TxContext, org: str, roles: tuple[str, ...]) -> dict[str, Any]:
    record = get_org(ctx, org)
    if record["role"] not in roles:
        fail(Code.WRONG_ROLE, f"organisation {org!r} has role {record['role']!r}, needs one of {list(roles)}")
    return record


def is_org_restricted(record: dict[str, Any]) -> bool:
    """Frozen by the regulator, or blocked for missing verified emissions at a settlement."""
    return bool(record.get("frozen") or record.get("blocked"))


def require_unrestricted(record: dict[str, Any]) -> None:
    if is_org_restricted(record):
        state = "frozen" if record.get("frozen") else "blocked"
        fail(Code.FROZEN, f"organisation {record['id']!r} is {state}")


# --- parameters, counters, totals ---------------------------------------------------------------------------


def get_params(ctx: TxContext) -> dict[str, Any]:
    """The parameters in force, as a dict of the caller's own (apply_set_parameter changes it). Decoded
    once per distinct value: they are a flat record (chaincode.context.decode_record)."""
    record = ctx.get_record(schema.PARAMS)
    if record is None:
        raise InvariantBroken("carbon parameters are missing from state (genesis not applied?)")
    return record


def next_counter(ctx: TxContext, key: bytes, count: int = 1) -> int:
    """Reserve `count` consecutive numbers; returns the first (counters start at 1).

    Each counter stops at its maximum (schema.COUNTER_MAX: the width of the keys its numbers go into).
    """
    record = ctx.get_record(key) or {"next": 1}
    first = int(record["next"])
    if first + count - 1 > schema.COUNTER_MAX[key]:
        fail(Code.OVERFLOW, f"counter {key.decode()} is exhausted")
    ctx.put_record(key, {"next": first + count})
    return first


def add_supply(ctx: TxContext, key: bytes, field: str, amount: int) -> None:
    record = ctx.get_record(key)
    if record is None:
        raise InvariantBroken(f"supply record {key!r} is missing")
    value = record[field] + amount
    if not 0 <= value <= BALANCE_MAX:
        fail(Code.OVERFLOW, f"total {field} would leave [0, 2**62]")
    record[field] = value
    ctx.put_record(key, record)


def compute_day(ctx: TxContext, params: dict[str, Any]) -> int:
    """The trading day of the current block: floor((block time + offset) / day length)."""
    return (ctx.block_time_ms + params["trading_day_offset_ms"]) // params["trading_day_ms"]


# --- balances ----------------------------------------------------------------------------------------------


def get_balance(ctx: TxContext, org: str, unit: str) -> dict[str, Any]:
    """{"available", "locked"} plus, for allowances, {"fresh", "fresh_day"} (bought today, not resellable)."""
    record = ctx.get_record(schema.bal_key(org, unit))
    if record is None:
        record = {"available": 0, "locked": 0}
        if unit == schema.UNIT_ALLOWANCE:
            record["fresh"] = 0
            record["fresh_day"] = 0
    return record


def put_balance(ctx: TxContext, org: str, unit: str, record: dict[str, Any]) -> None:
    if record["available"] < 0 or record["locked"] < 0:
        raise InvariantBroken(f"negative {unit} balance for {org!r}: {record}")
    if record["available"] + record["locked"] > BALANCE_MAX:
        fail(Code.OVERFLOW, f"{unit} balance of {org!r} would exceed 2**62")
    ctx.put_record(schema.bal_key(org, unit), record)


def credit(ctx: TxContext, org: str, unit: str, amount: int) -> None:
    record = get_balance(ctx, org, unit)
    record["available"] += amount
    put_balance(ctx, org, unit, record)


def debit(ctx: TxContext, org: str, unit: str, amount: int) -> dict[str, Any]:
    """Take `amount` from the available balance; returns the balance record as it was before."""
    record = get_balance(ctx, org, unit)
    before = dict(record)
    if record["available"] < amount:
        code = Code.INSUFFICIENT_CASH if unit == schema.UNIT_CASH else Code.INSUFFICIENT_BALANCE
        fail(code, f"{org!r} has {record['available']} {unit} available, needs {amount}")
    reduce_available(record, amount)
    put_balance(ctx, org, unit, record)
    return before


def reduce_available(record: dict[str, Any], amount: int) -> None:
    """Lower `available`; allowances bought today leave last, so `fresh` only shrinks to stay <= available."""
    record["available"] -= amount
    if "fresh" in record and record["fresh"] > record["available"]:
        record["fresh"] = record["available"]


def get_fresh(record: dict[str, Any], day: int) -> int:
    """Allowances bought on `day` (not resellable until the next trading day)."""
    return int(record["fresh"]) if record["fresh_day"] == day else 0


# --- periods -------------------------------------------------------------------------------------------------


def get_period(ctx: TxContext, period: str) -> dict[str, Any]:
    record = ctx.get_record(schema.period_key(period))
    if record is None:
        fail(Code.UNKNOWN_PERIOD, f"compliance period {period!r} does not exist")
    return record


def require_open_period(ctx: TxContext, period: str) -> dict[str, Any]:
    record = get_period(ctx, period)
    if record["status"] != "open":
        fail(Code.PERIOD_CLOSED, f"compliance period {period!r} is closed")
    return record


def get_comp(ctx: TxContext, period: str, org: str) -> dict[str, Any]:
    """An enterprise's compliance row for a period (created on first use)."""
    record = ctx.get_record(schema.comp_key(period, org))
    if record is None:
        record = {
            "org": org,
            "period": period,
            "allocated_t": 0,
            "verified_t": None,
            "surrendered_allowances_t": 0,
            "surrendered_offsets_t": 0,
            "status": "open",
            # filled in by the settlement
            "banked_in_t": 0,
            "owed_in_t": 0,
            "shortfall_t": 0,
            "surplus_t": 0,
            "penalty_fen": 0,
            "penalty_rule": None,
            "settled_height": None,
        }
    return record


def put_comp(ctx: TxContext, record: dict[str, Any]) -> None:
    ctx.put_record(schema.comp_key(record["period"], record["org"]), record)
