"""Allowances and cash: transfers, bank deposits and withdrawals, and the allowance order book.

Order book (allowances only; offsets change hands by serial-range transfer):
- Limit orders: side, quantity (t), price (fen per tonne). Locks at placement: a sell locks the allowances,
  a buy locks quantity x limit price in cash. Cancelling returns what is still locked.
- Price band: reference price +-price_band_bps (+-block_trade_band_bps for quantity >= block_trade_min_t);
  bounds are low = ceil(ref x (10000 - band) / 10000), high = floor(ref x (10000 + band) / 10000). The
  reference is the previous trading day's last trade price (the "previous close"); before any trade, or
  after the regulator sets it, the stored reference price.
- Matching happens at placement against resting orders in price-time priority: book keys sort buys by
  highest price and sells by lowest, then by a sequence number from state. Trades execute at the resting
  order's price. At most match_max resting orders are matched per placement; resting orders of the same
  organisation (self-trade prevention) or of a frozen/blocked organisation are skipped, not cancelled,
  and after match_skip_max skips the placement stops looking.
- Settlement is delivery versus payment inside the same transaction: each match moves allowances and cash
  together, and a failure anywhere discards the whole transaction.
- Allowances bought on a trading day (block_time + trading_day_offset_ms) // trading_day_ms cannot be
  offered for sale on that same day; they may still be surrendered or transferred.
"""

from __future__ import annotations

from typing import Any, NoReturn

from chaincode import schema
from chaincode.context import TxContext
from chaincode.ledger import (
    Code,
    add_supply,
    compute_day,
    credit,
    debit,
    fail,
    get_balance,
    get_fresh,
    get_org,
    get_params,
    is_org_restricted,
    next_counter,
    put_balance,
    reduce_available,
    require_org_role,
    require_unrestricted,
)
from core.errors import InvariantBroken
from core.genesis import Role

ALLOWANCE, CASH = schema.UNIT_ALLOWANCE, schema.UNIT_CASH
CASH_HOLDERS = (Role.ENTERPRISE.value, Role.OFFSET_DEVELOPER.value)
ENTERPRISE = (Role.ENTERPRISE.value,)


# --- allowance transfers and cash ----------------------------------------------------------------------------


def apply_transfer_allowances(ctx: TxContext, args: dict[str, Any]) -> None:
    """Allowances bought today leave last; those that do leave stay fresh at the recipient (no resale today)."""
    to, amount = args["to"], args["amount_t"]
    if to == ctx.sender_org:
        fail(Code.SELF_TRANSFER, "cannot transfer to yourself")
    require_unrestricted(require_org_role(ctx, to, ENTERPRISE))
    day = compute_day(ctx, get_params(ctx))
    before = debit(ctx, ctx.sender_org, ALLOWANCE, amount)
    fresh_moved = max(0, amount - (before["available"] - get_fresh(before, day)))
    recipient = get_balance(ctx, to, ALLOWANCE)
    recipient["available"] += amount
    if fresh_moved:
        recipient["fresh"] = get_fresh(recipient, day) + fresh_moved
        recipient["fresh_day"] = day
    put_balance(ctx, to, ALLOWANCE, recipient)
    ctx.emit("allowances_transferred", to=to, amount_t=amount)


def _claim_reference(ctx: TxContext, reference: str) -> None:
    key = schema.bankref_key(ctx.sender_org, reference)
    if ctx.get(key) is not None:
        fail(Code.DUPLICATE_REFERENCE, f"bank reference {reference!r} was already used")
    ctx.put_record(key, {"height": ctx.height, "tx_id": ctx.tx_id.hex()})


def apply_deposit_cash(ctx: TxContext, args: dict[str, Any]) -> None:
    org, amount = args["org"], args["amount_fen"]
    require_org_role(ctx, org, CASH_HOLDERS)
    _claim_reference(ctx, args["bank_ref"])
    credit(ctx, org, CASH, amount)
    add_supply(ctx, schema.SUPPLY_CASH, "deposited", amount)
    ctx.emit("cash_deposited", org=org, amount_fen=amount, bank_ref=args["bank_ref"])


def apply_withdraw_cash(ctx: TxContext, args: dict[str, Any]) -> None:
    org, amount = args["org"], args["amount_fen"]
    require_unrestricted(require_org_role(ctx, org, CASH_HOLDERS))
    _claim_reference(ctx, args["bank_ref"])
    debit(ctx, org, CASH, amount)
    add_supply(ctx, schema.SUPPLY_CASH, "withdrawn", amount)
    ctx.emit("cash_withdrawn", org=org, amount_fen=amount, bank_ref=args["bank_ref"])


# --- reference price ------------------------------------------------------------------------------------------


def get_market(ctx: TxContext) -> dict[str, Any]:
    record = ctx.get_record(schema.MARKET)
    if record is None:
        raise InvariantBroken("the market record is missing from state (genesis not applied?)")
    return record


def compute_reference_price(market: dict[str, Any], day: int) -> int:
    """The previous trading day's close once the day has turned, else the stored reference."""
    if market["last_day"] is not None and market["last_day"] < day:
        return int(market["last_price_fen"])
    return int(market["reference_price_fen"])


def compute_band(reference: int, band_bps: int) -> tuple[int, int]:
    low = -(-reference * (10_000 - band_bps) // 10_000)  # ceiling
    high = reference * (10_000 + band_bps) // 10_000  # floor
    return low, high


def apply_set_reference_price(ctx: TxContext, args: dict[str, Any]) -> None:
    market = {"reference_price_fen": args["price_fen"], "last_price_fen": None, "last_day": None}
    ctx.put_record(schema.MARKET, market)
    ctx.emit("reference_price_set", price_fen=args["price_fen"])


# --- orders ------------------------------------------------------------------------------------------------------


def apply_place_order(ctx: TxContext, args: dict[str, Any]) -> None:
    org, side, quantity, price = ctx.sender_org, args["side"], args["quantity_t"], args["price_fen"]
    org_record = get_org(ctx, org)
    params = get_params(ctx)
    if org_record["open_orders"] >= params["open_orders_max"]:
        fail(Code.LIMIT_EXCEEDED, f"at most {params['open_orders_max']} resting orders per organisation")
    day = compute_day(ctx, params)
    market = get_market(ctx)
    reference = compute_reference_price(market, day)
    is_block = quantity >= params["block_trade_min_t"]
    low, high = compute_band(reference, params["block_trade_band_bps" if is_block else "price_band_bps"])
    if not low <= price <= high:
        fail(
            Code.PRICE_OUT_OF_BAND,
            f"price {price} fen is outside [{low}, {high}] around reference {reference} fen",
        )
    if side == "sell":
        holding = get_balance(ctx, org, ALLOWANCE)
        tradable = holding["available"] - get_fresh(holding, day)
        if tradable < quantity:
            code = Code.INSUFFICIENT_BALANCE if holding["available"] < quantity else Code.NOT_TRADABLE_TODAY
            fail(
                code,
                f"{tradable} t tradable today (allowances bought today cannot be resold), needs {quantity}",
            )
        reduce_available(holding, quantity)
        holding["locked"] += quantity
        put_balance(ctx, org, ALLOWANCE, holding)
    else:
        cash = get_balance(ctx, org, CASH)
        cost = quantity * price
        if cash["available"] < cost:
            fail(Code.INSUFFICIENT_CASH, f"{cash['available']} fen available, the order locks {cost}")
        cash["available"] -= cost
        cash["locked"] += cost
        put_balance(ctx, org, CASH, cash)
    seq = next_counter(ctx, schema.COUNTER_ORDER)
    order = {
        "id": seq,
        "org": org,
        "side": side,
        "price_fen": price,
        "quantity_t": quantity,
        "remaining_t": quantity,
        "status": "open",
        "height": ctx.height,
        "time_ms": ctx.block_time_ms,
    }
    ctx.emit("order_placed", order=seq, side=side, quantity_t=quantity, price_fen=price)
    _match(ctx, order, params, market, day)
    if order["remaining_t"] == 0:
        order["status"] = "filled"
    else:
        ctx.put(schema.book_key(side, price, seq), schema.EMPTY_MAP)
        ctx.put(schema.org_order_key(org, seq), schema.EMPTY_MAP)
        org_record = get_org(ctx, org)  # re-read: matching may have updated its open order count
        org_record["open_orders"] += 1
        ctx.put_record(schema.org_key(org), org_record)
    ctx.put_record(schema.order_key(seq), order)


def _match(
    ctx: TxContext, incoming: dict[str, Any], params: dict[str, Any], market: dict[str, Any], day: int
) -> None:
    """Match an incoming order against the opposite side of the book, best price first, then oldest."""
    is_buy = incoming["side"] == "buy"
    book = schema.BOOK_SELL if is_buy else schema.BOOK_BUY
    matched = skipped = 0
    cursor: bytes | None = None
    while (
        incoming["remaining_t"] > 0 and matched < params["match_max"] and skipped < params["match_skip_max"]
    ):
        # One fresh seek per entry (not one long-lived iterator): matching deletes entries as it goes.
        key = next((k for k, _ in ctx.iterate(book, start_after=cursor)), None)
        if key is None:
            break
        cursor = key
        seq = int(key.rsplit(b"/", 1)[1])
        resting = ctx.get_record(schema.order_key(seq))
        if resting is None:
            raise_missing(seq)
        crosses = (
            resting["price_fen"] <= incoming["price_fen"]
            if is_buy
            else resting["price_fen"] >= incoming["price_fen"]
        )
        if not crosses:
            break  # the book is sorted: no later entry crosses either
        owner = get_org(ctx, resting["org"])
        if resting["org"] == incoming["org"] or is_org_restricted(owner):
            skipped += 1
            continue
        quantity = min(incoming["remaining_t"], resting["remaining_t"])
        buy, sell = (incoming, resting) if is_buy else (resting, incoming)
        _settle(ctx, buy, sell, quantity, resting["price_fen"], day)
        matched += 1
        incoming["remaining_t"] -= quantity
        resting["remaining_t"] -= quantity
        if resting["remaining_t"] == 0:
            resting["status"] = "filled"
            ctx.delete(key)
            ctx.delete(schema.org_order_key(resting["org"], seq))
            owner["open_orders"] -= 1
            ctx.put_record(schema.org_key(resting["org"]), owner)
        ctx.put_record(schema.order_key(seq), resting)
        _record_trade(ctx, buy, sell, quantity, resting["price_fen"], market, day)


def raise_missing(seq: int) -> NoReturn:
    raise InvariantBroken(f"book entry points to missing order {seq}")


def _settle(
    ctx: TxContext, buy: dict[str, Any], sell: dict[str, Any], quantity: int, price: int, day: int
) -> None:
    """Delivery versus payment for one match: both legs are written in the same transaction overlay."""
    seller_holding = get_balance(ctx, sell["org"], ALLOWANCE)
    seller_holding["locked"] -= quantity
    put_balance(ctx, sell["org"], ALLOWANCE, seller_holding)
    buyer_holding = get_balance(ctx, buy["org"], ALLOWANCE)
    buyer_holding["available"] += quantity
    buyer_holding["fresh"] = get_fresh(buyer_holding, day) + quantity
    buyer_holding["fresh_day"] = day
    put_balance(ctx, buy["org"], ALLOWANCE, buyer_holding)
    buyer_cash = get_balance(ctx, buy["org"], CASH)
    buyer_cash["locked"] -= quantity * buy["price_fen"]  # the buy locked at its own limit price
    buyer_cash["available"] += quantity * (buy["price_fen"] - price)  # price improvement comes back
    put_balance(ctx, buy["org"], CASH, buyer_cash)
    credit(ctx, sell["org"], CASH, quantity * price)


def _record_trade(
    ctx: TxContext,
    buy: dict[str, Any],
    sell: dict[str, Any],
    quantity: int,
    price: int,
    market: dict[str, Any],
    day: int,
) -> None:
    seq = next_counter(ctx, schema.COUNTER_TRADE)
    trade = {
        "id": seq,
        "buyer": buy["org"],
        "seller": sell["org"],
        "buy_order": buy["id"],
        "sell_order": sell["id"],
        "quantity_t": quantity,
        "price_fen": price,
        "height": ctx.height,
        "time_ms": ctx.block_time_ms,
    }
    ctx.put_record(schema.trade_key(seq), trade)
    if market["last_day"] is not None and market["last_day"] < day:
        market["reference_price_fen"] = market["last_price_fen"]  # roll: yesterday's close
    market["last_price_fen"] = price
    market["last_day"] = day
    ctx.put_record(schema.MARKET, market)
    ctx.emit("trade", trade=seq, buyer=buy["org"], seller=sell["org"], quantity_t=quantity, price_fen=price)


def apply_cancel_order(ctx: TxContext, args: dict[str, Any]) -> None:
    seq = args["order"]
    order = ctx.get_record(schema.order_key(seq))
    if order is None:
        fail(Code.UNKNOWN_ORDER, f"order {seq} does not exist")
    if order["org"] != ctx.sender_org:
        fail(Code.FORBIDDEN, f"order {seq} belongs to another organisation")
    if order["status"] != "open":
        fail(Code.ORDER_CLOSED, f"order {seq} is {order['status']}")
    remaining = order["remaining_t"]
    if order["side"] == "sell":
        holding = get_balance(ctx, order["org"], ALLOWANCE)
        holding["locked"] -= remaining
        holding["available"] += remaining
        put_balance(ctx, order["org"], ALLOWANCE, holding)
    else:
        cash = get_balance(ctx, order["org"], CASH)
        cash["locked"] -= remaining * order["price_fen"]
        cash["available"] += remaining * order["price_fen"]
        put_balance(ctx, order["org"], CASH, cash)
    order["status"] = "cancelled"
    ctx.put_record(schema.order_key(seq), order)
    ctx.delete(schema.book_key(order["side"], order["price_fen"], seq))
    ctx.delete(schema.org_order_key(order["org"], seq))
    owner = get_org(ctx, order["org"])
    owner["open_orders"] -= 1
    ctx.put_record(schema.org_key(order["org"]), owner)
    ctx.emit("order_cancelled", order=seq, remaining_t=remaining)
