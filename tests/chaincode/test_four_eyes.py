"""Four-eyes requests (docs/CHAINCODE.md section 13): large transfers, orders, withdrawals, allocations and
freezes wait for a second key of the same organisation; the units are locked meanwhile and come back
exactly on rejection, expiry or a failed approval."""

from __future__ import annotations

from typing import Any

from chainkit import DAY_MS, Chain

from core.block import TxResult


def make_chain(**params: Any) -> Chain:
    chain = Chain({"four_eyes_allowance_t": 100, "four_eyes_offset_t": 10, "four_eyes_cash_fen": 10_000,
                   "four_eyes_order_t": 50, "four_eyes_allocation_t": 5_000, "four_eyes_freezes": "on",
                   "four_eyes_window_blocks": 20, **params})  # fmt: skip
    chain.open_period()
    for org in ("mee", "bank", "ent1", "ent2", "dev1"):
        chain.ok(org, "enrol_key", public_key=chain.client_key(org).public_key.hex(), admin=True)
    chain.ok("mee", "allocate", period="2025", org="ent1", amount_t=1000)
    chain.ok("bank", "deposit_cash", org="ent1", amount_fen=1_000_000, bank_ref="in-1")
    chain.ok(
        "mee", "register_project", project="p", developer="dev1", name="P", methodology="M", standard="VCS"
    )
    chain.ok("mee", "issue_offsets", project="p", vintage=2024, monitoring_start_ms=0, monitoring_end_ms=1,
             amount_t=100)  # fmt: skip
    return chain


def request_of(result: TxResult) -> int:
    assert result.code == "ok" and result.events[-1]["type"] == "request_created", result
    return int(result.events[-1]["request"])


def second(chain: Chain, org: str, function: str, /, **args: Any) -> TxResult:
    return chain.call(org, function, key=chain.client_key(org), **args)


def balance(chain: Chain, org: str, unit: str = "allowances_t") -> tuple[int, int]:
    holding = chain.query("holdings", org=org)[unit]
    return holding["available"], holding["locked"]


def test_a_large_transfer_waits_locked_and_moves_on_the_second_key() -> None:
    chain = make_chain()
    chain.ok("ent1", "transfer_allowances", to="ent2", amount_t=100)  # at the threshold: one key is enough
    number = request_of(chain.call("ent1", "transfer_allowances", to="ent2", amount_t=101))
    assert balance(chain, "ent1") == (799, 101) and balance(chain, "ent2") == (100, 0)
    assert chain.query("supply")["allowance"]["allocated"] == 1000  # conserved: held + locked
    request = chain.query("request", request=number)
    assert (request["status"], request["lock"]["amount"], request["expires_height"]) == (
        "pending",
        101,
        request["created_height"] + 20,
    )
    chain.fails("same_key", "ent1", "approve_request", request=number)
    chain.fails("forbidden", "ent2", "approve_request", request=number)
    result = second(chain, "ent1", "approve_request", request=number)
    assert [e["type"] for e in result.events] == ["request_approved", "allowances_transferred"]
    assert balance(chain, "ent1") == (799, 0) and balance(chain, "ent2") == (201, 0)
    assert chain.query("request", request=number)["status"] == "executed"
    chain.fails("request_closed", "ent1", "approve_request", key=chain.client_key("ent1"), request=number)
    chain.fails("unknown_request", "ent1", "approve_request", request=99)


def test_a_call_that_would_fail_fails_with_its_own_code_on_either_side_of_the_threshold() -> None:
    chain = make_chain()
    chain.fails("insufficient_balance", "ent1", "transfer_allowances", to="ent2", amount_t=5_000)  # above
    chain.fails("self_transfer", "ent1", "transfer_allowances", to="ent1", amount_t=50)  # below
    chain.fails("insufficient_cash", "bank", "withdraw_cash", org="ent1", amount_fen=10**8, bank_ref="x")
    # (`fails` also checks that nothing was written: no request, no lock)


def test_rejection_and_expiry_give_the_units_back() -> None:
    chain = make_chain()
    rejected = request_of(chain.call("ent1", "transfer_allowances", to="ent2", amount_t=500))
    chain.ok("ent1", "reject_request", request=rejected)  # its own key withdraws it
    assert balance(chain, "ent1") == (1000, 0)
    expiring = request_of(chain.call("ent1", "transfer_allowances", to="ent2", amount_t=500))
    last = chain.query("request", request=expiring)["expires_height"]
    while chain.height < last - 1:
        chain.run_block([])
    assert balance(chain, "ent1") == (500, 500)
    chain.run_block([])  # its last block: expired at the end of it
    request = chain.query("request", request=expiring)
    assert (request["status"], request["closed_height"], request["closed_by"]) == ("expired", last, None)
    assert balance(chain, "ent1") == (1000, 0) and balance(chain, "ent2") == (0, 0)
    chain.fails("request_closed", "ent1", "approve_request", key=chain.client_key("ent1"), request=expiring)


def test_held_serials_do_not_move_and_come_back_whole_after_a_failed_approval() -> None:
    chain = make_chain()
    number = request_of(chain.call("dev1", "transfer_offsets", first=1, last=20, to="ent1"))
    block = chain.query("offset_block", serial=5)
    assert (block["first"], block["last"], block["held"], block["holder"]) == (1, 20, number, "dev1")
    chain.fails("serial_held", "dev1", "transfer_offsets", first=1, last=5, to="ent2")
    chain.fails("serial_held", "dev1", "split_offsets", first=1, last=5)
    chain.fails("serial_held", "dev1", "retire_offsets", first=1, last=5, beneficiary="b", reason="r")
    chain.fails("serial_held", "mee", "cancel_offsets", first=1, last=5, reason="r")
    chain.ok("mee", "freeze_offsets", first=5, last=5, reason="disputed")  # freezing does not move them
    result = second(chain, "dev1", "approve_request", request=number)  # the range is cut in three now
    assert result.events == ({"type": "request_failed", "request": number, "function": "transfer_offsets",
                              "code": "range_not_in_block"},)  # fmt: skip
    for serial in (1, 5, 20):
        block = chain.query("offset_block", serial=serial)
        assert (block["holder"], block["held"], block["status"]) == ("dev1", None, "active")
    assert chain.query("request", request=number)["failure"] == "range_not_in_block"


def test_withdrawals_orders_allocations_and_freezes_wait_for_a_second_key() -> None:
    chain = make_chain()
    withdrawal = request_of(
        chain.call("bank", "withdraw_cash", org="ent1", amount_fen=10_001, bank_ref="out-1")
    )
    assert balance(chain, "ent1", "cash_fen") == (1_000_000 - 10_001, 10_001)  # the member's cash is locked
    second(chain, "bank", "approve_request", request=withdrawal)
    assert balance(chain, "ent1", "cash_fen") == (1_000_000 - 10_001, 0)
    assert chain.query("supply")["cash"]["withdrawn"] == 10_001
    sell = request_of(chain.call("ent1", "place_order", side="sell", quantity_t=51, price_fen=5000))
    assert balance(chain, "ent1") == (949, 51) and chain.query("order_book")["sell"] == []
    second(chain, "ent1", "approve_request", request=sell)
    assert balance(chain, "ent1") == (949, 51) and chain.query("order_book")["sell"][0]["remaining_t"] == 51
    allocation = request_of(chain.call("mee", "allocate", period="2025", org="ent2", amount_t=5_001))
    assert chain.query("request", request=allocation)["lock"] is None and balance(chain, "ent2") == (0, 0)
    second(chain, "mee", "approve_request", request=allocation)
    assert balance(chain, "ent2") == (5_001, 0)
    freeze = request_of(chain.call("mee", "freeze_account", org="ent2", reason="theft"))
    assert chain.query("organisation", org="ent2")["frozen"] is False
    second(chain, "mee", "approve_request", request=freeze)
    assert chain.query("organisation", org="ent2")["frozen"] is True


def test_a_failed_approval_ends_the_request_and_returns_the_lock() -> None:
    chain = make_chain(four_eyes_freezes="off")
    number = request_of(chain.call("ent1", "transfer_allowances", to="ent2", amount_t=300))
    chain.ok("mee", "freeze_account", org="ent2", reason="investigation")
    result = second(chain, "ent1", "approve_request", request=number)
    assert result.events[0]["code"] == "frozen"
    assert balance(chain, "ent1") == (1000, 0)
    assert chain.query("request", request=number)["status"] == "failed"


def test_allowances_bought_today_stay_unsellable_after_a_rejection() -> None:
    chain = make_chain(four_eyes_allowance_t=10)
    chain.ok("bank", "deposit_cash", org="ent2", amount_fen=1_000_000, bank_ref="in-2")
    chain.ok("ent1", "place_order", side="sell", quantity_t=40, price_fen=5000)
    chain.ok("ent2", "place_order", side="buy", quantity_t=40, price_fen=5000)  # ent2 holds 40 bought today
    number = request_of(chain.call("ent2", "transfer_allowances", to="ent1", amount_t=40))
    assert chain.query("request", request=number)["lock"]["fresh_t"] == 40
    chain.ok("ent2", "reject_request", request=number)
    assert balance(chain, "ent2") == (40, 0)
    chain.fails("not_tradable_today", "ent2", "place_order", side="sell", quantity_t=40, price_fen=5000)
    chain.advance_to(chain.time_ms + DAY_MS)
    chain.ok("ent2", "place_order", side="sell", quantity_t=5, price_fen=5000)  # the next trading day


def test_own_thresholds_lower_at_once_and_raise_only_with_a_second_key() -> None:
    chain = make_chain()
    chain.ok("ent1", "set_four_eyes_thresholds", allowance_t=10)  # stricter: one key
    assert chain.query("four_eyes", org="ent1")["effective"]["allowance_t"] == 10
    request_of(chain.call("ent1", "transfer_allowances", to="ent2", amount_t=11))
    number = request_of(chain.call("ent1", "set_four_eyes_thresholds", allowance_t=1_000))  # looser
    assert chain.query("four_eyes", org="ent1")["effective"]["allowance_t"] == 10
    second(chain, "ent1", "approve_request", request=number)
    assert chain.query("four_eyes", org="ent1")["own"]["allowance_t"] == 1_000
    chain.ok("ent1", "transfer_allowances", to="ent2", amount_t=500)


def test_a_request_of_a_revoked_key_cannot_be_approved_and_requests_are_bounded() -> None:
    chain = make_chain(open_requests_max=2)
    third = chain.client_key("ent1", 1)
    chain.ok("ent1", "enrol_key", public_key=third.public_key.hex())
    number = request_of(chain.call("ent1", "transfer_allowances", key=third, to="ent2", amount_t=200))
    chain.ok("ent1", "revoke_key", org="ent1", public_key=third.public_key.hex())
    chain.fails("key_revoked", "ent1", "approve_request", request=number)
    request_of(chain.call("ent1", "transfer_allowances", to="ent2", amount_t=200))
    chain.fails("limit_exceeded", "ent1", "transfer_allowances", to="ent2", amount_t=200)
    assert balance(chain, "ent1") == (600, 400)
