"""The compliance cycle: periods, allocation, emission reports, verification, surrender and settlement.

Deadlines are agreed block times in milliseconds since the Unix epoch (UTC), because real deadlines are
calendar dates and block time is agreed by the validators and strictly increasing. "Before the deadline"
means block_time_ms <= deadline; settlement is possible once block_time_ms > surrender_deadline_ms.

Rounding (integers only):
- emission reports are in kg and are rounded to the nearest tonne, halves up: t = (kg + 500) // 1000
  (EU Regulation 2018/2067 art. 72 rounds totals to the nearest tonne);
- formula allocation is floor(benchmark_kg_per_unit * output_units * correction_bps * share_bps / 10^11);
- the offset cap is floor(verified_t * offset_cap_bps / 10000);
- the materiality threshold is checked exactly: |verified - reported| * 10000 > reported * materiality_bps.

Settlement per enterprise, once (regulator, after the surrender deadline):
    obligation = verified_t + owed_t carried in (EU make-good of an earlier shortfall)
    credit     = surrendered allowances + surrendered offsets + banked_t carried in
    balance    = credit - obligation
balance >= 0: status "compliant" (0) or "surplus" (> 0); the surplus banks into the enterprise's next
settlement. balance < 0: status "shortfall", penalty_fen = shortfall * penalty_fen_per_t is recorded (paid
off-chain); under "eu" the shortfall is still owed at the next settlement (make-good); under "china" it is
deducted from the enterprise's next allocation instead. No verified emissions: status "blocked" and the
account is blocked (it may then only report, surrender and cancel orders) until the regulator unfreezes it.
Carry-over lives in `carry/<org>` and is consumed by the next settlement of that enterprise, whichever
period that is.
"""

from __future__ import annotations

from typing import Any

from chaincode import schema
from chaincode.context import TxContext
from chaincode.ledger import (
    BALANCE_MAX,
    Code,
    add_supply,
    credit,
    debit,
    fail,
    get_comp,
    get_org,
    get_params,
    get_period,
    put_comp,
    require_open_period,
    require_org_role,
)
from core.genesis import Role

LARGE_INSTALLATION_T = 500_000  # EU: above this, the materiality level is 2% instead of 5%
ENTERPRISE = (Role.ENTERPRISE.value,)


def compute_tonnes_from_kg(emissions_kg: int) -> int:
    """Nearest tonne, halves rounded up."""
    return (emissions_kg + 500) // 1000


def compute_formula_allocation(
    benchmark_kg_per_unit: int, output_units: int, correction_bps: int, share_bps: int
) -> int:
    """Benchmark x output x correction factor x pre-allocation share, in whole tonnes, rounded down."""
    return benchmark_kg_per_unit * output_units * correction_bps * share_bps // (1000 * 10_000 * 10_000)


def compute_materiality_bps(reported_t: int) -> int:
    return 200 if reported_t > LARGE_INSTALLATION_T else 500


def get_carry(ctx: TxContext, org: str) -> dict[str, Any]:
    return ctx.get_record(schema.carry_key(org)) or {"banked_t": 0, "owed_t": 0, "deduct_t": 0}


# --- periods ---------------------------------------------------------------------------------------------------


def apply_open_period(ctx: TxContext, args: dict[str, Any]) -> None:
    period_id = args["period"]
    if ctx.get(schema.period_key(period_id)) is not None:
        fail(Code.PERIOD_EXISTS, f"compliance period {period_id!r} already exists")
    reporting, surrender = args["reporting_deadline_ms"], args["surrender_deadline_ms"]
    if not ctx.block_time_ms < reporting <= surrender:
        fail(
            Code.BAD_DEADLINES,
            f"need block time {ctx.block_time_ms} < reporting deadline {reporting} <= surrender deadline "
            f"{surrender}",
        )
    params = get_params(ctx)
    record = {
        "id": period_id,
        "reporting_deadline_ms": reporting,
        "surrender_deadline_ms": surrender,
        "offset_cap_bps": _or_default(args["offset_cap_bps"], params["offset_cap_bps"]),
        "penalty_rule": _or_default(args["penalty_rule"], params["penalty_rule"]),
        "penalty_fen_per_t": _or_default(args["penalty_fen_per_t"], params["penalty_fen_per_t"]),
        "status": "open",
        "opened_height": ctx.height,
        "closed_height": None,
    }
    ctx.put_record(schema.period_key(period_id), record)
    ctx.emit("period_opened", period=period_id)


def _or_default(value: Any, default: Any) -> Any:
    return default if value is None else value


def apply_extend_period(ctx: TxContext, args: dict[str, Any]) -> None:
    """Later deadlines for an open period, as regulators grant them; never earlier ones, never a deadline
    reopened once it has passed (reports or surrenders refused then stay refused)."""
    period_id = args["period"]
    record = require_open_period(ctx, period_id)
    old_reporting, old_surrender = record["reporting_deadline_ms"], record["surrender_deadline_ms"]
    if ctx.block_time_ms > old_surrender:
        fail(Code.DEADLINE_PASSED, f"the surrender deadline of {period_id!r} has passed")
    reporting, surrender = args["reporting_deadline_ms"], args["surrender_deadline_ms"]
    reporting_passed = ctx.block_time_ms > old_reporting
    if (
        reporting < old_reporting
        or surrender < old_surrender
        or reporting > surrender
        or (reporting_passed and reporting != old_reporting)
    ):
        fail(
            Code.BAD_DEADLINES,
            f"need reporting deadline {reporting} >= {old_reporting} (unchanged once passed), surrender "
            f"deadline {surrender} >= {old_surrender}, and reporting <= surrender",
        )
    record["reporting_deadline_ms"], record["surrender_deadline_ms"] = reporting, surrender
    ctx.put_record(schema.period_key(period_id), record)
    ctx.emit(
        "period_extended", period=period_id, reporting_deadline_ms=reporting, surrender_deadline_ms=surrender
    )


def apply_close_period(ctx: TxContext, args: dict[str, Any]) -> None:
    record = require_open_period(ctx, args["period"])
    if ctx.block_time_ms <= record["surrender_deadline_ms"]:
        fail(Code.DEADLINE_NOT_REACHED, "a period closes only after its surrender deadline")
    record["status"] = "closed"
    record["closed_height"] = ctx.height
    ctx.put_record(schema.period_key(args["period"]), record)
    ctx.emit("period_closed", period=args["period"])


# --- allocation ----------------------------------------------------------------------------------------------


def apply_allocate(ctx: TxContext, args: dict[str, Any]) -> None:
    period_id, org = args["period"], args["org"]
    require_open_period(ctx, period_id)
    require_org_role(ctx, org, ENTERPRISE)
    formula = (args["benchmark_kg_per_unit"], args["output_units"])
    if args["amount_t"] is not None:
        if any(value is not None for value in formula):
            fail(Code.BAD_AMOUNT, "give either amount_t or benchmark_kg_per_unit and output_units, not both")
        computed = args["amount_t"]
        inputs: dict[str, Any] = {
            "method": "explicit",
            "amount_t": computed,
            "benchmark_kg_per_unit": None,
            "output_units": None,
            "correction_bps": None,
            "share_bps": None,
        }
    else:
        if any(value is None for value in formula):
            fail(Code.BAD_AMOUNT, "give amount_t, or both benchmark_kg_per_unit and output_units")
        computed = compute_formula_allocation(
            args["benchmark_kg_per_unit"], args["output_units"], args["correction_bps"], args["share_bps"]
        )
        inputs = {
            "method": "benchmark",
            "amount_t": None,
            "benchmark_kg_per_unit": args["benchmark_kg_per_unit"],
            "output_units": args["output_units"],
            "correction_bps": args["correction_bps"],
            "share_bps": args["share_bps"],
        }
    carry = get_carry(ctx, org)
    deducted = min(carry["deduct_t"], computed)
    granted = computed - deducted
    key = schema.alloc_key(period_id, org)
    allocation = ctx.get_record(key) or {"period": period_id, "org": org, "total_t": 0, "entries": []}
    entries_max = get_params(ctx)["allocations_per_period_max"]
    if len(allocation["entries"]) >= entries_max:
        fail(Code.LIMIT_EXCEEDED, f"at most {entries_max} allocations per enterprise and period")
    inputs.update(computed_t=computed, deducted_t=deducted, granted_t=granted, height=ctx.height)
    allocation["entries"].append(inputs)
    allocation["total_t"] += granted
    ctx.put_record(key, allocation)
    if deducted:
        carry["deduct_t"] -= deducted
        ctx.put_record(schema.carry_key(org), carry)
    comp = get_comp(ctx, period_id, org)
    comp["allocated_t"] += granted
    put_comp(ctx, comp)
    credit(ctx, org, schema.UNIT_ALLOWANCE, granted)
    add_supply(ctx, schema.SUPPLY_ALLOWANCE, "allocated", granted)
    ctx.emit("allowances_allocated", period=period_id, org=org, amount_t=granted, deducted_t=deducted)


# --- reports and verification ----------------------------------------------------------------------------------


def apply_submit_report(ctx: TxContext, args: dict[str, Any]) -> None:
    period_id, org = args["period"], ctx.sender_org
    period = require_open_period(ctx, period_id)
    if ctx.block_time_ms > period["reporting_deadline_ms"]:
        fail(Code.DEADLINE_PASSED, f"the reporting deadline of {period_id!r} has passed")
    key = schema.report_key(period_id, org)
    existing = ctx.get_record(key)
    if existing is not None and existing["status"] != "submitted":
        fail(Code.ALREADY_VERIFIED, "the report was already verified; it can no longer be resubmitted")
    report = {
        "period": period_id,
        "org": org,
        "emissions_kg": args["emissions_kg"],
        "emissions_t": compute_tonnes_from_kg(args["emissions_kg"]),
        "evidence_hash": args["evidence_hash"],
        "status": "submitted",
        "version": 1 if existing is None else existing["version"] + 1,
        "submitted_height": ctx.height,
        "verification": None,
    }
    ctx.put_record(key, report)
    if ctx.get(schema.comp_key(period_id, org)) is None:
        put_comp(ctx, get_comp(ctx, period_id, org))  # the enterprise now appears in the compliance table
    ctx.emit("report_submitted", period=period_id, org=org, emissions_t=report["emissions_t"])


def apply_verify_report(ctx: TxContext, args: dict[str, Any]) -> None:
    period_id, org = args["period"], args["org"]
    verifier = get_org(ctx, ctx.sender_org)
    if not verifier.get("accredited"):
        fail(Code.NOT_ACCREDITED, f"verifier {ctx.sender_org!r} is not accredited")
    if org == ctx.sender_org:
        fail(Code.OWN_REPORT, "a verifier never verifies its own organisation's report")
    require_open_period(ctx, period_id)
    key = schema.report_key(period_id, org)
    report = ctx.get_record(key)
    if report is None:
        fail(Code.UNKNOWN_REPORT, f"{org!r} has no report for {period_id!r}")
    if report["status"] != "submitted":
        fail(Code.ALREADY_VERIFIED, "the report was already verified")
    comp = get_comp(ctx, period_id, org)
    if comp["status"] != "open":
        fail(Code.ALREADY_SETTLED, f"{org!r} is already settled for {period_id!r}")
    verified_t, opinion, reported_t = args["verified_t"], args["opinion"], report["emissions_t"]
    if opinion == "satisfactory":
        materiality_bps = compute_materiality_bps(reported_t)
        if abs(verified_t - reported_t) * 10_000 > reported_t * materiality_bps:
            fail(
                Code.MATERIAL_MISSTATEMENT,
                f"verified {verified_t} t differs from reported {reported_t} t by more than "
                f"{materiality_bps} bps: the opinion cannot be 'satisfactory'",
            )
    report["status"] = "rejected" if opinion == "not_satisfactory" else "verified"
    report["verification"] = {
        "verifier": ctx.sender_org,
        "verified_t": verified_t,
        "opinion": opinion,
        "evidence_hash": args["evidence_hash"],
        "height": ctx.height,
        "time_ms": ctx.block_time_ms,
    }
    ctx.put_record(key, report)
    if opinion != "not_satisfactory":
        comp["verified_t"] = verified_t
        put_comp(ctx, comp)
    ctx.emit("report_verified", period=period_id, org=org, verifier=ctx.sender_org, opinion=opinion)


# --- surrender and settlement ----------------------------------------------------------------------------------


def require_surrender_window(
    ctx: TxContext, period_id: str, org: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The open period and the enterprise's compliance row, before the surrender deadline.

    The row is never settled yet: settlement is possible only after the surrender deadline.
    """
    period = require_open_period(ctx, period_id)
    if ctx.block_time_ms > period["surrender_deadline_ms"]:
        fail(Code.DEADLINE_PASSED, f"the surrender deadline of {period_id!r} has passed")
    return period, get_comp(ctx, period_id, org)


def apply_surrender_allowances(ctx: TxContext, args: dict[str, Any]) -> None:
    period_id, org, amount = args["period"], ctx.sender_org, args["amount_t"]
    _, comp = require_surrender_window(ctx, period_id, org)
    debit(ctx, org, schema.UNIT_ALLOWANCE, amount)
    comp["surrendered_allowances_t"] += amount
    put_comp(ctx, comp)
    add_supply(ctx, schema.SUPPLY_ALLOWANCE, "surrendered", amount)
    ctx.emit("allowances_surrendered", period=period_id, org=org, amount_t=amount)


def apply_settle_period(ctx: TxContext, args: dict[str, Any]) -> None:
    period_id, org = args["period"], args["org"]
    period = get_period(ctx, period_id)
    if ctx.block_time_ms <= period["surrender_deadline_ms"]:
        fail(Code.DEADLINE_NOT_REACHED, "settlement is possible only after the surrender deadline")
    org_record = require_org_role(ctx, org, ENTERPRISE)
    comp = get_comp(ctx, period_id, org)
    if comp["status"] != "open":
        fail(Code.ALREADY_SETTLED, f"{org!r} is already settled for {period_id!r}")
    comp.update(settled_height=ctx.height, penalty_rule=period["penalty_rule"])
    if comp["verified_t"] is None:
        comp["status"] = "blocked"
        org_record["blocked"] = True
        ctx.put_record(schema.org_key(org), org_record)
        put_comp(ctx, comp)
        ctx.emit("period_settled", period=period_id, org=org, status="blocked", shortfall_t=0, penalty_fen=0)
        return
    carry = get_carry(ctx, org)
    obligation = comp["verified_t"] + carry["owed_t"]
    credit_t = comp["surrendered_allowances_t"] + comp["surrendered_offsets_t"] + carry["banked_t"]
    balance = credit_t - obligation
    comp["banked_in_t"], comp["owed_in_t"] = carry["banked_t"], carry["owed_t"]
    if balance >= 0:
        comp["status"] = "compliant" if balance == 0 else "surplus"
        comp["surplus_t"] = balance
        carry["banked_t"], carry["owed_t"] = balance, 0
    else:
        shortfall = -balance
        penalty = shortfall * period["penalty_fen_per_t"]
        if penalty > BALANCE_MAX:  # 10^12 t short at 10^9 fen/t would not even encode (2^64)
            fail(Code.OVERFLOW, f"a penalty of {penalty} fen exceeds 2**62")
        comp["status"] = "shortfall"
        comp["shortfall_t"] = shortfall
        comp["penalty_fen"] = penalty
        carry["banked_t"] = 0
        if period["penalty_rule"] == "eu":
            carry["owed_t"] = shortfall  # make-good: still owed at the next settlement
        else:
            carry["owed_t"] = 0
            carry["deduct_t"] += shortfall  # China: deducted from the next allocation
    ctx.put_record(schema.carry_key(org), carry)
    put_comp(ctx, comp)
    ctx.emit(
        "period_settled",
        period=period_id,
        org=org,
        status=comp["status"],
        shortfall_t=comp["shortfall_t"],
        penalty_fen=comp["penalty_fen"],
    )
