"""Allowance transfers, bank cash, and the order book (band, locks, priority, DvP, same-day resale)."""

from __future__ import annotations

from chainkit import DAY_MS, Chain


def _funded() -> Chain:
    chain = Chain()
    chain.open_period()
    for org in ("ent1", "ent2", "ent3"):
        chain.ok("mee", "allocate", period="2025", org=org, amount_t=200_000)
        chain.ok("bank", "deposit_cash", org=org, amount_fen=10**10, bank_ref=f"in-{org}")
    return chain


def test_transfer_allowances() -> None:
    chain = _funded()
    chain.fails("self_transfer", "ent1", "transfer_allowances", to="ent1", amount_t=1)
    chain.fails("wrong_role", "ent1", "transfer_allowances", to="dev1", amount_t=1)
    chain.fails("unknown_org", "ent1", "transfer_allowances", to="ghost", amount_t=1)
    chain.fails("insufficient_balance", "ent1", "transfer_allowances", to="ent2", amount_t=200_001)
    chain.ok("ent1", "transfer_allowances", to="ent2", amount_t=1000)
    assert (chain.allowances("ent1"), chain.allowances("ent2")) == (199_000, 201_000)


def test_cash_deposit_and_withdrawal() -> None:
    chain = Chain()
    chain.fails("forbidden", "ent1", "deposit_cash", org="ent1", amount_fen=5, bank_ref="r")
    chain.fails("wrong_role", "bank", "deposit_cash", org="ver1", amount_fen=5, bank_ref="r")
    chain.ok("bank", "deposit_cash", org="ent1", amount_fen=500, bank_ref="r1")
    chain.fails("duplicate_reference", "bank", "deposit_cash", org="ent1", amount_fen=5, bank_ref="r1")
    chain.fails("insufficient_cash", "bank", "withdraw_cash", org="ent1", amount_fen=501, bank_ref="w1")
    chain.ok("bank", "withdraw_cash", org="ent1", amount_fen=200, bank_ref="w1")
    assert chain.cash("ent1") == 300
    chain.ok("mee", "freeze_account", org="ent1", reason="x")
    chain.fails("frozen", "bank", "withdraw_cash", org="ent1", amount_fen=1, bank_ref="w2")
    chain.ok("bank", "deposit_cash", org="ent1", amount_fen=1, bank_ref="r2")  # incoming money is accepted


def test_price_band() -> None:
    chain = _funded()  # reference 5000 fen
    chain.fails("price_out_of_band", "ent1", "place_order", side="sell", quantity_t=10, price_fen=5501)
    chain.fails("price_out_of_band", "ent1", "place_order", side="buy", quantity_t=10, price_fen=4499)
    chain.ok("ent1", "place_order", side="sell", quantity_t=10, price_fen=5500)
    chain.ok("ent1", "place_order", side="buy", quantity_t=10, price_fen=4500)
    chain.ok("ent1", "place_order", side="sell", quantity_t=100_000, price_fen=6500)  # block trade: +-30%
    chain.fails("price_out_of_band", "ent1", "place_order", side="sell", quantity_t=100_000, price_fen=6501)
    chain.ok("mee", "set_reference_price", price_fen=8000)
    chain.ok("ent2", "place_order", side="sell", quantity_t=10, price_fen=8800)


def test_locks_matching_priority_and_dvp() -> None:
    chain = _funded()
    chain.fails(
        "insufficient_balance", "ent1", "place_order", side="sell", quantity_t=200_001, price_fen=5000
    )
    chain.ok("ent1", "place_order", side="sell", quantity_t=100, price_fen=5100)  # order 1
    chain.ok("ent2", "place_order", side="sell", quantity_t=100, price_fen=5000)  # order 2: better price
    chain.ok("ent1", "place_order", side="sell", quantity_t=100, price_fen=5000)  # order 3: same price, later
    holdings = chain.query("holdings", org="ent1")
    assert holdings["allowances_t"] == {"available": 199_800, "locked": 200}
    result = chain.ok("ent3", "place_order", side="buy", quantity_t=250, price_fen=5100)
    trades = [(e["seller"], e["quantity_t"], e["price_fen"]) for e in result.events if e["type"] == "trade"]
    assert trades == [("ent2", 100, 5000), ("ent1", 100, 5000), ("ent1", 50, 5100)]
    cost = 100 * 5000 + 100 * 5000 + 50 * 5100
    assert chain.query("holdings", org="ent3")["cash_fen"] == {"available": 10**10 - cost, "locked": 0}
    assert chain.cash("ent2") == 10**10 + 500_000
    assert chain.query("holdings", org="ent1")["allowances_t"] == {"available": 199_800, "locked": 50}
    book = chain.query("order_book")
    assert [(o["id"], o["remaining_t"]) for o in book["sell"]] == [(1, 50)]
    assert chain.query("order", order=2)["status"] == "filled"
    assert chain.query("market")["last_price_fen"] == 5100
    assert len(chain.query("trades")["items"]) == 3


def test_buy_rests_with_cash_lock_and_cancel_returns_it() -> None:
    chain = _funded()
    chain.fails("insufficient_cash", "ent1", "place_order", side="buy", quantity_t=10**7, price_fen=5000)
    chain.ok("ent1", "place_order", side="buy", quantity_t=100, price_fen=4900)
    assert chain.query("holdings", org="ent1")["cash_fen"] == {
        "available": 10**10 - 490_000,
        "locked": 490_000,
    }
    assert [o["id"] for o in chain.query("orders", org="ent1")["items"]] == [1]
    chain.fails("forbidden", "ent2", "cancel_order", order=1)
    chain.fails("unknown_order", "ent1", "cancel_order", order=99)
    chain.ok("ent1", "cancel_order", order=1)
    chain.fails("order_closed", "ent1", "cancel_order", order=1)
    assert chain.query("holdings", org="ent1")["cash_fen"] == {"available": 10**10, "locked": 0}
    assert chain.query("order_book") == {"buy": [], "sell": []}


def test_self_trade_and_frozen_orders_are_skipped() -> None:
    chain = _funded()
    chain.ok("ent1", "place_order", side="sell", quantity_t=10, price_fen=5000)  # 1
    chain.ok("ent2", "place_order", side="sell", quantity_t=10, price_fen=5000)  # 2
    chain.ok("mee", "freeze_account", org="ent2", reason="x")
    result = chain.ok("ent1", "place_order", side="buy", quantity_t=10, price_fen=5000)
    assert not [e for e in result.events if e["type"] == "trade"]
    chain.ok("ent2", "cancel_order", order=2)  # a frozen account may still cancel


def test_bought_allowances_not_resellable_same_day() -> None:
    chain = Chain()
    chain.open_period()
    chain.ok("mee", "allocate", period="2025", org="ent1", amount_t=100)
    chain.ok("bank", "deposit_cash", org="ent2", amount_fen=10**9, bank_ref="r")
    chain.ok("ent1", "place_order", side="sell", quantity_t=100, price_fen=5000)
    chain.ok("ent2", "place_order", side="buy", quantity_t=100, price_fen=5000)
    chain.fails("not_tradable_today", "ent2", "place_order", side="sell", quantity_t=1, price_fen=5000)
    chain.ok("ent2", "transfer_allowances", to="ent3", amount_t=1)  # transfers are not resales
    chain.advance_to(chain.time_ms + DAY_MS)
    chain.ok("ent2", "place_order", side="sell", quantity_t=99, price_fen=5000)


def test_reference_rolls_to_previous_close() -> None:
    chain = _funded()
    chain.ok("ent1", "place_order", side="sell", quantity_t=10, price_fen=5400)
    chain.ok("ent2", "place_order", side="buy", quantity_t=10, price_fen=5400)
    chain.ok("ent1", "place_order", side="sell", quantity_t=10, price_fen=5500)  # still against 5000 today
    chain.fails("price_out_of_band", "ent1", "place_order", side="sell", quantity_t=10, price_fen=5600)
    chain.advance_to(chain.time_ms + DAY_MS)
    chain.ok("ent1", "place_order", side="sell", quantity_t=10, price_fen=5940)  # band around 5400 close


def test_open_orders_limit() -> None:
    chain = Chain({"open_orders_max": 2})
    chain.open_period()
    chain.ok("mee", "allocate", period="2025", org="ent1", amount_t=100)
    chain.ok("ent1", "place_order", side="sell", quantity_t=1, price_fen=5000)
    chain.ok("ent1", "place_order", side="sell", quantity_t=1, price_fen=5000)
    chain.fails("limit_exceeded", "ent1", "place_order", side="sell", quantity_t=1, price_fen=5000)
    chain.ok("ent1", "cancel_order", order=1)
    chain.ok("ent1", "place_order", side="sell", quantity_t=1, price_fen=5000)


def test_bought_allowances_stay_unsellable_at_the_recipient_of_a_transfer() -> None:
    chain = Chain()
    chain.open_period()
    chain.ok("mee", "allocate", period="2025", org="ent1", amount_t=100)
    chain.ok("mee", "allocate", period="2025", org="ent2", amount_t=30)
    chain.ok("bank", "deposit_cash", org="ent2", amount_fen=10**9, bank_ref="r")
    chain.ok("ent1", "place_order", side="sell", quantity_t=100, price_fen=5000)
    chain.ok("ent2", "place_order", side="buy", quantity_t=100, price_fen=5000)  # ent2: 30 own + 100 fresh
    chain.ok("ent2", "transfer_allowances", to="ent3", amount_t=50)  # its 30 own leave first, then 20 fresh
    assert chain.allowances("ent3") == 50
    chain.fails("not_tradable_today", "ent3", "place_order", side="sell", quantity_t=31, price_fen=5000)
    chain.ok("ent3", "place_order", side="sell", quantity_t=30, price_fen=5000)
    chain.fails("not_tradable_today", "ent2", "place_order", side="sell", quantity_t=1, price_fen=5000)
    chain.advance_to(chain.time_ms + DAY_MS)
    chain.ok("ent3", "place_order", side="sell", quantity_t=20, price_fen=5000)


def test_allowances_returned_from_a_sell_order_are_sellable_after_fresh_ones_left() -> None:
    chain = Chain()
    chain.open_period()
    for org in ("ent1", "ent2"):
        chain.ok("mee", "allocate", period="2025", org=org, amount_t=100)
    chain.ok("bank", "deposit_cash", org="ent2", amount_fen=10**9, bank_ref="r")
    chain.ok("ent2", "place_order", side="sell", quantity_t=40, price_fen=5500)  # order 1 locks 40 own
    chain.ok("ent1", "place_order", side="sell", quantity_t=10, price_fen=5000)
    chain.ok("ent2", "place_order", side="buy", quantity_t=10, price_fen=5000)  # ent2: 60 own + 10 fresh
    chain.ok("ent2", "surrender_allowances", period="2025", amount_t=70)  # the fresh ones leave last
    chain.ok("ent2", "cancel_order", order=1)  # 40 own allowances come back
    chain.ok("ent2", "place_order", side="sell", quantity_t=40, price_fen=5500)
