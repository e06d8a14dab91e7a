"""The carbon chaincode's function table (FUNCTIONS); chaincode.hosting dispatches calls to it.

FUNCTIONS is the single source of truth for what may be called, by whom, with which arguments (and units),
what each function may answer (failure codes) and emit (events with their attributes): the executor
validates against it, the API and CLI enumerate it, tests check every result against it (`check_result`),
and docs/CHAINCODE.md's function headers are generated from it (`python -m chaincode.docgen --write`; the
numbered steps there are written by hand). Checks applied to every call before the handler runs, in order
(chaincode.declare.check_caller):
1. the sender organisation's role is in `roles` (else `forbidden`);
2. for `admin_only` functions the sender key is an admin key (else `not_admin`);
3. unless `frozen_ok`, the sender organisation is neither frozen nor blocked (else `frozen`).
A function with a four-eyes rule then runs through chaincode.foureyes (at once, or as a request for a
second key); `approve_request`, declared here because it runs the other functions of the table, runs the
waiting function with these checks again. The governance part of the table is chaincode.gov_table.
"""

from __future__ import annotations

from typing import Any

from chaincode import compliance, foureyes, identity, market, offsets
from chaincode.base import AMOUNT_MAX, Arg, FunctionSpec
from chaincode.context import TxContext
from chaincode.declare import BANK, ENT, HOLDERS, REG, ROLE_NAMES, VER, check_caller, declare, events
from chaincode.executor import EXECUTOR_CODES
from chaincode.foureyes import RULES
from chaincode.gov_table import FOUR_EYES, GOVERNANCE
from chaincode.ledger import Code
from chaincode.params import PENALTY_RULES
from chaincode.schema import SEQ_MAX
from core.block import TxResult
from core.genesis import Role

TIME_MAX = 2**53  # block-time milliseconds (well beyond year 285,000)
PRICE_MAX = 10**9  # fen per tonne (CNY 10 million)
QUANTITY_MAX = 10**12  # tonnes in one argument

_period = Arg("period", "id", "compliance period id, e.g. '2025'")
_org = Arg("org", "org", "target organisation id")
_reason = Arg("reason", "str", "why (recorded in the event)")
_first = Arg("first", "int", "first serial of the range", minimum=1, maximum=AMOUNT_MAX)
_last = Arg("last", "int", "last serial of the range (inclusive)", minimum=1, maximum=AMOUNT_MAX)
_hash = Arg("evidence_hash", "hex32", "SHA-256 of the evidence documents, 64 lowercase hex digits")
_events = events


def _spec(name: str, *rest: Any, **flags: Any) -> FunctionSpec:
    """A function of the table; the four-eyes functions get their rule (chaincode.foureyes.RULES)."""
    return declare(name, *rest, four_eyes=RULES.get(name), **flags)


_RANGE_CODES = (Code.RANGE_NOT_IN_BLOCK, Code.UNKNOWN_SERIAL)  # find_range
_MOVABLE_CODES = (*_RANGE_CODES, Code.SERIAL_FINAL, Code.NOT_HOLDER, Code.SERIAL_FROZEN, Code.SERIAL_HELD)

_SPECS = (
    # --- identity and access ---
    _spec(
        "register_organisation",
        REG,
        (
            Arg("org", "org", "new organisation id"),
            Arg("name", "str", "legal name"),
            Arg("role", "enum", "its one role", choices=ROLE_NAMES),
            Arg("admin_keys", "hex32_list", "Ed25519 admin public keys (hex), 1..16", max_len=16),
        ),
        "Register a member organisation with its admin keys.",
        identity.apply_register_organisation,
        (Code.ORG_EXISTS, Code.KEY_EXISTS),
        _events("organisation_registered"),
        admin_only=True,
    ),
    _spec(
        "enrol_key",
        ROLE_NAMES,
        (
            Arg("public_key", "hex32", "Ed25519 public key (hex) to enrol for the sender's organisation"),
            Arg(
                "admin",
                "bool",
                "whether the key may administer the organisation",
                required=False,
                default=False,
            ),
        ),
        "An admin enrols a client (or admin) key for its own organisation.",
        identity.apply_enrol_key,
        (Code.KEY_REVOKED, Code.KEY_EXISTS, Code.LIMIT_EXCEEDED),
        _events("key_enrolled"),
        admin_only=True,
        frozen_ok=True,
    ),
    _spec(
        "revoke_key",
        ROLE_NAMES,
        (_org, Arg("public_key", "hex32", "public key (hex) to revoke")),
        "Revoke a key: an admin for its own organisation, or a regulator admin for any organisation.",
        identity.apply_revoke_key,
        (Code.FORBIDDEN, Code.UNKNOWN_ORG, Code.UNKNOWN_KEY, Code.KEY_REVOKED, Code.LAST_ADMIN),
        _events("key_revoked"),
        admin_only=True,
        frozen_ok=True,
    ),
    _spec(
        "accredit_verifier",
        REG,
        (_org,),
        "Accredit a verifier organisation.",
        identity.apply_accredit_verifier,
        (Code.UNKNOWN_ORG, Code.WRONG_ROLE),
        _events("verifier_accredited"),
    ),
    _spec(
        "revoke_verifier",
        REG,
        (_org,),
        "Withdraw a verifier's accreditation (its past verifications stand).",
        identity.apply_revoke_verifier,
        (Code.UNKNOWN_ORG, Code.WRONG_ROLE),
        _events("verifier_revoked"),
    ),
    _spec(
        "freeze_account",
        REG,
        (_org, _reason),
        "Freeze an organisation's account: it can no longer send units or cash, trade or receive.",
        identity.apply_freeze_account,
        (Code.UNKNOWN_ORG, Code.WRONG_ROLE),
        _events("account_frozen"),
    ),
    _spec(
        "unfreeze_account",
        REG,
        (_org, _reason),
        "Lift a freeze or a settlement block.",
        identity.apply_unfreeze_account,
        (Code.UNKNOWN_ORG,),
        _events("account_unfrozen"),
    ),
    # --- compliance cycle ---
    _spec(
        "open_period",
        REG,
        (
            _period,
            Arg(
                "reporting_deadline_ms", "int", "last block time for emission reports", "ms", maximum=TIME_MAX
            ),
            Arg("surrender_deadline_ms", "int", "last block time for surrenders", "ms", maximum=TIME_MAX),
            Arg(
                "offset_cap_bps",
                "int",
                "offsets cap as a share of verified emissions (default param)",
                "bps",
                required=False,
                maximum=10_000,
            ),
            Arg(
                "penalty_rule",
                "enum",
                "'china' (fine + deduction) or 'eu' (penalty + make-good); default param",
                required=False,
                choices=PENALTY_RULES,
            ),
            Arg(
                "penalty_fen_per_t",
                "int",
                "penalty per tonne of shortfall (default param)",
                "fen",
                required=False,
                maximum=PRICE_MAX,
            ),
        ),
        "Open a compliance period with its deadlines and rules.",
        compliance.apply_open_period,
        (Code.PERIOD_EXISTS, Code.BAD_DEADLINES),
        _events("period_opened"),
    ),
    _spec(
        "extend_period",
        REG,
        (
            _period,
            Arg(
                "reporting_deadline_ms",
                "int",
                "the new reporting deadline: not earlier, and moved only while it has not passed",
                "ms",
                maximum=TIME_MAX,
            ),
            Arg(
                "surrender_deadline_ms",
                "int",
                "the new surrender deadline: not earlier than the one in force",
                "ms",
                maximum=TIME_MAX,
            ),
        ),
        "Extend an open period's deadlines before its surrender deadline has passed (never shorten them).",
        compliance.apply_extend_period,
        (Code.UNKNOWN_PERIOD, Code.PERIOD_CLOSED, Code.DEADLINE_PASSED, Code.BAD_DEADLINES),
        _events("period_extended"),
    ),
    _spec(
        "close_period",
        REG,
        (_period,),
        "Close a period after its surrender deadline: no more allocations, reports, verifications or surrenders.",
        compliance.apply_close_period,
        (Code.UNKNOWN_PERIOD, Code.PERIOD_CLOSED, Code.DEADLINE_NOT_REACHED),
        _events("period_closed"),
    ),
    _spec(
        "allocate",
        REG,
        (
            _period,
            _org,
            Arg(
                "amount_t",
                "int",
                "explicit amount (or use the benchmark inputs)",
                "t",
                required=False,
                maximum=QUANTITY_MAX,
            ),
            Arg(
                "benchmark_kg_per_unit",
                "int",
                "emission benchmark per unit of output",
                "kg/unit",
                required=False,
                maximum=10**7,
            ),
            Arg("output_units", "int", "output, e.g. MWh", "unit", required=False, maximum=QUANTITY_MAX),
            Arg(
                "correction_bps",
                "int",
                "correction factor (10000 = 1.0)",
                "bps",
                required=False,
                default=10_000,
                maximum=100_000,
            ),
            Arg(
                "share_bps",
                "int",
                "pre-allocation share, e.g. 7000 = 70%",
                "bps",
                required=False,
                default=10_000,
                maximum=10_000,
            ),
        ),
        "Allocate allowances to an enterprise; a China-rule deduction carried from an earlier shortfall is "
        "taken first.",
        compliance.apply_allocate,
        (
            Code.UNKNOWN_PERIOD,
            Code.PERIOD_CLOSED,
            Code.UNKNOWN_ORG,
            Code.WRONG_ROLE,
            Code.BAD_AMOUNT,
            Code.LIMIT_EXCEEDED,
            Code.OVERFLOW,
        ),
        _events("allowances_allocated"),
    ),
    _spec(
        "submit_report",
        ENT,
        (_period, Arg("emissions_kg", "int", "reported emissions", "kg CO2e", maximum=10**16), _hash),
        "Submit (or, before verification, resubmit) the sender's emission report.",
        compliance.apply_submit_report,
        (Code.UNKNOWN_PERIOD, Code.PERIOD_CLOSED, Code.DEADLINE_PASSED, Code.ALREADY_VERIFIED),
        _events("report_submitted"),
        frozen_ok=True,
    ),
    _spec(
        "verify_report",
        VER,
        (
            _period,
            Arg("org", "org", "the reporting enterprise"),
            Arg("verified_t", "int", "verified emissions", "t", maximum=QUANTITY_MAX),
            Arg(
                "opinion",
                "enum",
                "verification opinion",
                choices=("satisfactory", "satisfactory_with_comments", "not_satisfactory"),
            ),
            _hash,
        ),
        "An accredited verifier verifies another organisation's report, once.",
        compliance.apply_verify_report,
        (
            Code.NOT_ACCREDITED,
            Code.OWN_REPORT,
            Code.UNKNOWN_PERIOD,
            Code.PERIOD_CLOSED,
            Code.UNKNOWN_REPORT,
            Code.ALREADY_VERIFIED,
            Code.ALREADY_SETTLED,
            Code.MATERIAL_MISSTATEMENT,
        ),
        _events("report_verified"),
    ),
    _spec(
        "surrender_allowances",
        ENT,
        (_period, Arg("amount_t", "int", "allowances to surrender", "t", minimum=1, maximum=QUANTITY_MAX)),
        "Surrender allowances for a period before its deadline (final).",
        compliance.apply_surrender_allowances,
        (Code.UNKNOWN_PERIOD, Code.PERIOD_CLOSED, Code.DEADLINE_PASSED, Code.INSUFFICIENT_BALANCE),
        _events("allowances_surrendered"),
        frozen_ok=True,
    ),
    _spec(
        "surrender_offsets",
        ENT,
        (_period, _first, _last),
        "Surrender a held offset serial range for a period, within the offset cap (final).",
        offsets.apply_surrender_offsets,
        (
            Code.UNKNOWN_PERIOD,
            Code.PERIOD_CLOSED,
            Code.DEADLINE_PASSED,
            Code.NO_VERIFIED_EMISSIONS,
            *_MOVABLE_CODES,
            Code.OFFSET_CAP_EXCEEDED,
        ),
        _events("offsets_surrendered"),
        frozen_ok=True,
    ),
    _spec(
        "settle_period",
        REG,
        (_period, Arg("org", "org", "the enterprise to settle")),
        "Settle one enterprise for a period after the surrender deadline, once.",
        compliance.apply_settle_period,
        (
            Code.UNKNOWN_PERIOD,
            Code.DEADLINE_NOT_REACHED,
            Code.UNKNOWN_ORG,
            Code.WRONG_ROLE,
            Code.ALREADY_SETTLED,
            Code.OVERFLOW,
        ),
        _events("period_settled"),
    ),
    # --- offsets ---
    _spec(
        "register_project",
        (Role.REGULATOR.value, Role.OFFSET_DEVELOPER.value),
        (
            Arg("project", "id", "project id"),
            Arg("developer", "org", "the offset developer that owns the project"),
            Arg("name", "str", "project name"),
            Arg("methodology", "str", "methodology, e.g. 'CCER-14-001-V01'", max_len=64),
            Arg("standard", "id", "standard, e.g. 'CCER' or 'VCS'"),
        ),
        "Register an offset project (a developer only for itself).",
        offsets.apply_register_project,
        (Code.FORBIDDEN, Code.UNKNOWN_ORG, Code.WRONG_ROLE, Code.PROJECT_EXISTS),
        _events("project_registered"),
    ),
    _spec(
        "issue_offsets",
        REG,
        (
            Arg("project", "id", "project id"),
            Arg("vintage", "int", "vintage year", minimum=1990, maximum=2200),
            Arg("monitoring_start_ms", "int", "monitoring period start (inclusive)", "ms", maximum=TIME_MAX),
            Arg("monitoring_end_ms", "int", "monitoring period end (exclusive)", "ms", maximum=TIME_MAX),
            Arg("amount_t", "int", "offsets to issue", "t", minimum=1, maximum=QUANTITY_MAX),
            Arg(
                "buffer_bps",
                "int",
                "share withheld in the buffer, rounded down (default param)",
                "bps",
                required=False,
                maximum=5_000,
            ),
        ),
        "Issue a serial block to the project's developer; monitoring periods of a project never overlap.",
        offsets.apply_issue_offsets,
        (
            Code.UNKNOWN_PROJECT,
            Code.BAD_AMOUNT,
            Code.OVERLAPPING_ISSUANCE,
            Code.LIMIT_EXCEEDED,
            Code.OVERFLOW,
        ),
        _events("offsets_issued"),
    ),
    _spec(
        "transfer_offsets",
        HOLDERS,
        (_first, _last, Arg("to", "org", "recipient organisation")),
        "Transfer an exact serial sub-range of a held block.",
        offsets.apply_transfer_offsets,
        (Code.SELF_TRANSFER, Code.UNKNOWN_ORG, Code.WRONG_ROLE, Code.FROZEN, *_MOVABLE_CODES),
        _events("offsets_transferred"),
    ),
    _spec(
        "split_offsets",
        HOLDERS,
        (_first, _last),
        "Cut an exact sub-range out of a held block into a block of its own (pieces partition the parent).",
        offsets.apply_split_offsets,
        (*_MOVABLE_CODES, Code.BAD_SPLIT),
        _events("offsets_split"),
        frozen_ok=True,
    ),
    _spec(
        "retire_offsets",
        HOLDERS,
        (_first, _last, Arg("beneficiary", "str", "on whose behalf"), _reason),
        "Retire held offsets voluntarily (final); writes a retirement receipt keyed by the transaction id.",
        offsets.apply_retire_offsets,
        _MOVABLE_CODES,
        _events("offsets_retired"),
    ),
    _spec(
        "freeze_offsets",
        REG,
        (_first, _last, _reason),
        "Freeze a serial range (it cannot move, be surrendered or retired).",
        offsets.apply_freeze_offsets,
        (*_RANGE_CODES, Code.SERIAL_FINAL),
        _events("offsets_frozen"),
    ),
    _spec(
        "unfreeze_offsets",
        REG,
        (_first, _last, _reason),
        "Unfreeze a serial range.",
        offsets.apply_unfreeze_offsets,
        (*_RANGE_CODES, Code.SERIAL_FINAL),
        _events("offsets_unfrozen"),
    ),
    _spec(
        "cancel_offsets",
        REG,
        (_first, _last, _reason),
        "Cancel held or buffer serials (invalid issuance, or a reversal drawn on the buffer); final.",
        offsets.apply_cancel_offsets,
        (*_RANGE_CODES, Code.SERIAL_FINAL, Code.SERIAL_HELD),
        _events("offsets_cancelled"),
    ),
    # --- allowances, cash and the order book ---
    _spec(
        "transfer_allowances",
        ENT,
        (
            Arg("to", "org", "recipient enterprise"),
            Arg("amount_t", "int", "allowances", "t", minimum=1, maximum=QUANTITY_MAX),
        ),
        "Transfer allowances to another enterprise (those bought today leave last and stay unsellable today).",
        market.apply_transfer_allowances,
        (
            Code.SELF_TRANSFER,
            Code.UNKNOWN_ORG,
            Code.WRONG_ROLE,
            Code.FROZEN,
            Code.INSUFFICIENT_BALANCE,
            Code.OVERFLOW,
        ),
        _events("allowances_transferred"),
    ),
    _spec(
        "deposit_cash",
        BANK,
        (
            _org,
            Arg("amount_fen", "int", "amount received off-chain", "fen", minimum=1),
            Arg("bank_ref", "id", "the bank's payment reference (unique per bank)"),
        ),
        "The settlement bank credits a member's cash account against an off-chain payment.",
        market.apply_deposit_cash,
        (Code.UNKNOWN_ORG, Code.WRONG_ROLE, Code.DUPLICATE_REFERENCE, Code.OVERFLOW),
        _events("cash_deposited"),
    ),
    _spec(
        "withdraw_cash",
        BANK,
        (
            _org,
            Arg("amount_fen", "int", "amount paid out off-chain", "fen", minimum=1),
            Arg("bank_ref", "id", "the bank's payment reference (unique per bank)"),
        ),
        "The settlement bank debits a member's available cash for an off-chain payout.",
        market.apply_withdraw_cash,
        (Code.UNKNOWN_ORG, Code.WRONG_ROLE, Code.FROZEN, Code.DUPLICATE_REFERENCE, Code.INSUFFICIENT_CASH),
        _events("cash_withdrawn"),
    ),
    _spec(
        "place_order",
        ENT,
        (
            Arg("side", "enum", "buy or sell allowances", choices=("buy", "sell")),
            Arg("quantity_t", "int", "quantity", "t", minimum=1, maximum=QUANTITY_MAX),
            Arg("price_fen", "int", "limit price", "fen/t", minimum=1, maximum=PRICE_MAX),
        ),
        "Place a limit order; it matches at once in price-time priority, the rest rests with its lock.",
        market.apply_place_order,
        (
            Code.LIMIT_EXCEEDED,
            Code.PRICE_OUT_OF_BAND,
            Code.INSUFFICIENT_BALANCE,
            Code.NOT_TRADABLE_TODAY,
            Code.INSUFFICIENT_CASH,
            Code.OVERFLOW,
        ),
        _events("order_placed", "trade"),
    ),
    _spec(
        "cancel_order",
        ENT,
        (Arg("order", "int", "order id", minimum=1, maximum=2**62),),
        "Cancel the sender's resting order; its remaining lock is released.",
        market.apply_cancel_order,
        (Code.UNKNOWN_ORDER, Code.FORBIDDEN, Code.ORDER_CLOSED),
        _events("order_cancelled"),
        frozen_ok=True,
    ),
    _spec(
        "set_reference_price",
        REG,
        (Arg("price_fen", "int", "new reference price for the band", "fen/t", minimum=1, maximum=PRICE_MAX),),
        "Set the allowance market's reference price (e.g. a published close).",
        market.apply_set_reference_price,
        (),
        _events("reference_price_set"),
    ),
)


def _run_approved(ctx: TxContext, spec: FunctionSpec, args: dict[str, Any]) -> None:
    """A four-eyes function once its second key approved it: the caller checks again, then the function."""
    check_caller(ctx, spec)
    spec.handler(ctx, args)


def _apply_approve_request(ctx: TxContext, args: dict[str, Any]) -> None:
    foureyes.approve_request(ctx, args, FUNCTIONS.__getitem__, _run_approved)


_GUARDED_EVENTS = tuple(
    dict.fromkeys(e for spec in _SPECS + FOUR_EYES if spec.four_eyes for e in spec.events)
)
_APPROVE_REQUEST = declare(
    "approve_request",
    ROLE_NAMES,
    (Arg("request", "int", "four-eyes request id", minimum=1, maximum=SEQ_MAX),),
    "A second key of the organisation approves a four-eyes request: the waiting function runs now.",
    _apply_approve_request,
    (
        Code.UNKNOWN_REQUEST,
        Code.REQUEST_CLOSED,
        Code.FORBIDDEN,
        Code.SAME_KEY,
        Code.NOT_ADMIN,
        Code.KEY_REVOKED,
    ),
    (*events("request_approved", "request_failed"), *_GUARDED_EVENTS),
    frozen_ok=True,
)

FUNCTIONS: dict[str, FunctionSpec] = {
    spec.name: spec for spec in (*_SPECS, *GOVERNANCE, _APPROVE_REQUEST, *FOUR_EYES)
}


def check_result(function: str, result: TxResult) -> None:
    """Raise ValueError unless the result is one the function's declaration allows (tests use this)."""
    spec = FUNCTIONS.get(function)
    if result.code in EXECUTOR_CODES or spec is None:
        if result.code not in EXECUTOR_CODES or result.events:
            raise ValueError(f"{function} has no declaration for {result}")
        return
    spec.check_result(result)
