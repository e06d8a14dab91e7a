"""Four-eyes: large outgoing transfers, orders, withdrawals, allocations and freezes wait for a second key.

The lesson of the 2011 EU registry thefts: one hijacked key must not be enough to move large amounts. A
function with a FourEyesRule (the function table, chaincode.carbon) runs first as it always would, in a
fork of the transaction's state: a call that would fail fails with its own code. If the rule says the call
needs a second key (its amount is above the sender organisation's threshold: its own, `foureyes/<org>`, or
the consortium's parameter), what it did is dropped and a *request* is recorded instead: the units the
call would take are locked (moved from `available` to `locked`, or the serial range marked `held`), and
another active key of the same organisation may approve it (`approve_request`) until `expires_height`.
A rule that does not look at the call's events is asked before the call runs; when one key is enough (the
common case), the call runs directly, with the same outcome and no fork.

Approving releases the lock and runs the function then, for the organisation, as if just called (every
check again: the state may have changed): it succeeds and the request ends `executed`, or it fails and the
request ends `failed` with the code (the approval itself succeeds: it did happen, once). Any key of the
organisation may reject it; at the end of its last block an unapproved request expires. In every ending
the lock comes back exactly: the units are conserved throughout (docs/CHAINCODE.md section 13).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chaincode import schema, schema_gov
from chaincode.base import ChaincodeFailure, FourEyesRule, FunctionSpec
from chaincode.context import TxContext
from chaincode.ledger import (
    Code,
    compute_day,
    fail,
    get_balance,
    get_fresh,
    get_params,
    next_counter,
    put_balance,
    reduce_available,
)
from chaincode.offsets import carve, find_block, find_range, put_block
from core.errors import InvariantBroken

ALLOWANCE, CASH = schema.UNIT_ALLOWANCE, schema.UNIT_CASH
THRESHOLD_FIELDS = {  # field of foureyes/<org> -> the parameter it overrides
    "allowance_t": "four_eyes_allowance_t",
    "offset_t": "four_eyes_offset_t",
    "cash_fen": "four_eyes_cash_fen",
    "order_t": "four_eyes_order_t",
    "allocation_t": "four_eyes_allocation_t",
}
Run = Callable[[TxContext, FunctionSpec, dict[str, Any]], None]


def get_thresholds(ctx: TxContext, org: str) -> dict[str, Any]:
    """An organisation's own thresholds (nil: the parameter), as stored."""
    return ctx.get_record(schema_gov.thresholds_key(org)) or dict.fromkeys(THRESHOLD_FIELDS)


def compute_threshold(ctx: TxContext, org: str, field: str) -> int:
    own = get_thresholds(ctx, org)[field]
    return int(get_params(ctx)[THRESHOLD_FIELDS[field]] if own is None else own)


# --- locks -------------------------------------------------------------------------------------------------


def _lock_record(unit: str, org: str, amount: int, day: int, **extra: Any) -> dict[str, Any]:
    return {"unit": unit, "org": org, "amount": amount, "fresh_t": 0, "fresh_day": day, "first": None,
            "last": None, **extra}  # fmt: skip


def lock_allowances(ctx: TxContext, org: str, amount: int) -> dict[str, Any]:
    day = compute_day(ctx, get_params(ctx))
    balance = get_balance(ctx, org, ALLOWANCE)
    fresh_before = get_fresh(balance, day)
    reduce_available(balance, amount)
    balance["locked"] += amount
    put_balance(ctx, org, ALLOWANCE, balance)
    return _lock_record(ALLOWANCE, org, amount, day, fresh_t=fresh_before - get_fresh(balance, day))


def lock_cash(ctx: TxContext, org: str, amount: int) -> dict[str, Any]:
    balance = get_balance(ctx, org, CASH)
    balance["available"] -= amount
    balance["locked"] += amount
    put_balance(ctx, org, CASH, balance)
    return _lock_record(CASH, org, amount, compute_day(ctx, get_params(ctx)))


def lock_offsets(ctx: TxContext, org: str, first: int, last: int, request: int) -> dict[str, Any]:
    piece = carve(ctx, find_range(ctx, first, last), first, last)
    put_block(ctx, {**piece, "held": request})
    day = compute_day(ctx, get_params(ctx))
    return _lock_record("offset", org, last - first + 1, day, first=first, last=last)


def release(ctx: TxContext, request: dict[str, Any]) -> None:
    """Give back what a request holds, exactly."""
    lock = request["lock"]
    if lock is None:
        return
    org, amount = lock["org"], lock["amount"]
    if lock["unit"] == "offset":
        serial = lock["first"]
        while serial <= lock["last"]:  # the range may have been cut since (a freeze of part of it)
            block = find_block(ctx, serial)
            if block["held"] != request["id"]:
                raise InvariantBroken(f"serials {block['first']}..{block['last']} lost their hold")
            put_block(ctx, {**block, "held": None})
            serial = block["last"] + 1
        return
    balance = get_balance(ctx, org, lock["unit"])
    balance["locked"] -= amount
    balance["available"] += amount
    if lock["fresh_t"]:
        day = compute_day(ctx, get_params(ctx))
        if day == lock["fresh_day"]:  # bought today: still not resellable today
            balance["fresh"] = get_fresh(balance, day) + lock["fresh_t"]
            balance["fresh_day"] = day
    put_balance(ctx, org, lock["unit"], balance)


# --- the requests -------------------------------------------------------------------------------------------


def apply_guarded(ctx: TxContext, spec: FunctionSpec, args: dict[str, Any]) -> None:
    """Run a four-eyes function: at once when one key is enough, else as a request for a second key."""
    rule = spec.four_eyes
    assert rule is not None
    if not rule.reads_events and not rule.needs_second(ctx, args, []):
        spec.handler(ctx, args)  # what the trial below would do and keep, without forking for it
        return
    trial = ctx.fork()
    spec.handler(trial, args)  # a call that would fail fails now, with its own code
    if rule.reads_events and not rule.needs_second(ctx, args, trial.events):
        ctx.absorb(trial)
        return
    params = get_params(ctx)
    pending = sum(1 for _ in ctx.iterate(schema_gov.org_request_prefix(ctx.sender_org)))
    if pending >= params["open_requests_max"]:
        fail(Code.LIMIT_EXCEEDED, f"at most {params['open_requests_max']} pending four-eyes requests")
    number = next_counter(ctx, schema.COUNTER_REQUEST)
    expires = ctx.height + params["four_eyes_window_blocks"]
    request = {
        "id": number,
        "org": ctx.sender_org,
        "function": spec.name,
        "args": args,
        "key": ctx.sender_key.hex(),
        "created_height": ctx.height,
        "expires_height": expires,
        "status": "pending",
        "lock": rule.lock(ctx, args, number),
        "closed_height": None,
        "closed_by": None,
        "failure": None,
    }
    ctx.put_record(schema_gov.request_key(number), request)
    ctx.put(schema_gov.org_request_key(ctx.sender_org, number), schema.EMPTY_MAP)
    ctx.put(schema_gov.request_expiry_key(expires, number), schema.EMPTY_MAP)
    ctx.emit("request_created", request=number, function=spec.name, expires_height=expires)


def _pending_request(ctx: TxContext, number: int) -> dict[str, Any]:
    request = ctx.get_record(schema_gov.request_key(number))
    if request is None:
        fail(Code.UNKNOWN_REQUEST, f"request {number} does not exist")
    if request["status"] != "pending":
        fail(Code.REQUEST_CLOSED, f"request {number} is {request['status']}")
    if request["org"] != ctx.sender_org:
        fail(Code.FORBIDDEN, f"request {number} belongs to {request['org']!r}")
    return request


def approve_request(
    ctx: TxContext, args: dict[str, Any], spec_of: Callable[[str], FunctionSpec], run: Run
) -> None:
    """A second key approves: release the lock, run the function (`run` makes the caller checks too)."""
    request = _pending_request(ctx, args["request"])
    if ctx.sender_key.hex() == request["key"]:
        fail(Code.SAME_KEY, "the second approval must come from another key of the organisation")
    spec = spec_of(request["function"])
    if spec.admin_only and not ctx.sender_is_admin:
        fail(Code.NOT_ADMIN, f"{spec.name} needs an admin key, so does its second approval")
    first_key = ctx.get_record(schema.key_key(request["org"], bytes.fromhex(request["key"])))
    if first_key is None or first_key["status"] != "active":
        fail(Code.KEY_REVOKED, "the key that made the request has been revoked since")
    release(ctx, request)
    trial = ctx.fork()
    try:
        run(trial, spec, request["args"])
    except ChaincodeFailure as failure:
        request["failure"] = failure.code
        _close(ctx, request, "failed", ctx.sender_key.hex())
        ctx.emit("request_failed", request=request["id"], function=spec.name, code=failure.code)
        return
    _close(ctx, request, "executed", ctx.sender_key.hex())
    ctx.emit("request_approved", request=request["id"], function=spec.name)
    ctx.absorb(trial)


def apply_reject_request(ctx: TxContext, args: dict[str, Any]) -> None:
    request = _pending_request(ctx, args["request"])
    release(ctx, request)
    _close(ctx, request, "rejected", ctx.sender_key.hex())
    ctx.emit("request_rejected", request=request["id"], function=request["function"])


def expire_request(ctx: TxContext, number: int) -> None:
    """End-of-block expiry of a pending request whose last height this block is: the lock comes back."""
    request = ctx.get_record(schema_gov.request_key(number))
    if request is None or request["status"] != "pending":
        raise InvariantBroken(f"the expiry index names request {number}, which is not pending")
    release(ctx, request)
    _close(ctx, request, "expired", None)


def _close(ctx: TxContext, request: dict[str, Any], status: str, by: str | None) -> None:
    number = request["id"]
    request.update(status=status, closed_height=ctx.height, closed_by=by)
    ctx.put_record(schema_gov.request_key(number), request)
    ctx.delete(schema_gov.org_request_key(request["org"], number))
    ctx.delete(schema_gov.request_expiry_key(request["expires_height"], number))


def apply_set_four_eyes_thresholds(ctx: TxContext, args: dict[str, Any]) -> None:
    key = schema_gov.thresholds_key(ctx.sender_org)
    record = {field: args[field] for field in THRESHOLD_FIELDS}
    if all(value is None for value in record.values()):
        ctx.delete(key)  # all the consortium's parameters again: the absent record
    else:
        ctx.put_record(key, record)
    ctx.emit("four_eyes_thresholds_set", org=ctx.sender_org)


# --- the rules ------------------------------------------------------------------------------------------------


def _above(field: str, measure: Callable[[dict[str, Any], list[dict[str, Any]]], int]) -> Any:
    def needs_second(ctx: TxContext, args: dict[str, Any], events: list[dict[str, Any]]) -> bool:
        return measure(args, events) > compute_threshold(ctx, ctx.sender_org, field)

    return needs_second


def _freezes_need_two(ctx: TxContext, args: dict[str, Any], events: list[dict[str, Any]]) -> bool:
    return bool(get_params(ctx)["four_eyes_freezes"] == "on")


def _loosens(ctx: TxContext, args: dict[str, Any], events: list[dict[str, Any]]) -> bool:
    """Raising any of one's own thresholds above what is in force needs a second key; lowering does not."""
    params, own = get_params(ctx), get_thresholds(ctx, ctx.sender_org)
    for field, parameter in THRESHOLD_FIELDS.items():
        before = params[parameter] if own[field] is None else own[field]
        after = params[parameter] if args[field] is None else args[field]
        if after > before:
            return True
    return False


def _granted(args: dict[str, Any], events: list[dict[str, Any]]) -> int:
    return sum(int(e["amount_t"]) for e in events if e["type"] == "allowances_allocated")


def _nothing(ctx: TxContext, args: dict[str, Any], request: int) -> None:
    return None


def _lock_order(ctx: TxContext, args: dict[str, Any], request: int) -> dict[str, Any]:
    if args["side"] == "sell":
        return lock_allowances(ctx, ctx.sender_org, args["quantity_t"])
    return lock_cash(ctx, ctx.sender_org, args["quantity_t"] * args["price_fen"])


RULES: dict[str, FourEyesRule] = {
    "transfer_allowances": FourEyesRule(
        "above `four_eyes_allowance_t` t (or the sender's `allowance_t`); locks the allowances",
        _above("allowance_t", lambda a, e: int(a["amount_t"])),
        lambda ctx, a, n: lock_allowances(ctx, ctx.sender_org, a["amount_t"]),
    ),
    "transfer_offsets": FourEyesRule(
        "above `four_eyes_offset_t` serials (or the sender's `offset_t`); holds the range",
        _above("offset_t", lambda a, e: int(a["last"] - a["first"] + 1)),
        lambda ctx, a, n: lock_offsets(ctx, ctx.sender_org, a["first"], a["last"], n),
    ),
    "withdraw_cash": FourEyesRule(
        "above `four_eyes_cash_fen` (or the bank's `cash_fen`); locks the member's cash",
        _above("cash_fen", lambda a, e: int(a["amount_fen"])),
        lambda ctx, a, n: lock_cash(ctx, a["org"], a["amount_fen"]),
    ),
    "place_order": FourEyesRule(
        "above `four_eyes_order_t` t (or the sender's `order_t`); locks what the order would lock",
        _above("order_t", lambda a, e: int(a["quantity_t"])),
        _lock_order,
    ),
    "allocate": FourEyesRule(
        "granting above `four_eyes_allocation_t` t (or the regulator's `allocation_t`); nothing to lock",
        _above("allocation_t", _granted),
        _nothing,
        reads_events=True,
    ),
    "freeze_account": FourEyesRule(
        "while `four_eyes_freezes` is `on`; nothing to lock", _freezes_need_two, _nothing
    ),
    "unfreeze_account": FourEyesRule(
        "while `four_eyes_freezes` is `on`; nothing to lock", _freezes_need_two, _nothing
    ),
    "set_four_eyes_thresholds": FourEyesRule(
        "when it raises a threshold in force (lowering needs one key); nothing to lock", _loosens, _nothing
    ),
}
