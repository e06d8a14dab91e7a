"""A compliance year end to end, asserting the compliance table and balances exactly."""

from __future__ import annotations

from chainkit import Chain
from scenario import run_compliance_year


def test_compliance_year() -> None:
    chain = Chain()
    run_compliance_year(chain)
    table = chain.query("compliance", period="2025")
    assert table["period"]["status"] == "closed"
    rows = {row["org"]: row for row in table["rows"]}
    common = {"banked_in_t": 0, "owed_in_t": 0}
    assert rows["ent1"] == {
        "org": "ent1",
        "allocated_t": 1000,
        "verified_t": 1050,
        "surrendered_allowances_t": 1000,
        "surrendered_offsets_t": 50,
        "shortfall_t": 0,
        "surplus_t": 0,
        "penalty_fen": 0,
        "status": "compliant",
        **common,
    }
    assert rows["ent2"] == {
        "org": "ent2",
        "allocated_t": 713,
        "verified_t": 900,
        "surrendered_allowances_t": 813,
        "surrendered_offsets_t": 0,
        "shortfall_t": 87,
        "surplus_t": 0,
        "penalty_fen": 870_000,
        "status": "shortfall",
        **common,
    }
    assert rows["ent3"] == {
        "org": "ent3",
        "allocated_t": 2000,
        "verified_t": 1500,
        "surrendered_allowances_t": 1600,
        "surrendered_offsets_t": 0,
        "shortfall_t": 0,
        "surplus_t": 100,
        "penalty_fen": 0,
        "status": "surplus",
        **common,
    }
    assert chain.query("carry", org="ent2")["deduct_t"] == 87  # China rule: off the next allocation
    assert chain.query("carry", org="ent3")["banked_t"] == 100
    # the trade executed at the resting price and settled both legs
    trade = chain.query("trades")["items"][0]
    assert (trade["buyer"], trade["seller"], trade["quantity_t"], trade["price_fen"]) == (
        "ent2",
        "ent3",
        100,
        5050,
    )
    assert chain.cash("ent2") == 1_000_000 - 505_000 and chain.cash("ent3") == 1_000_000 + 505_000
    assert chain.allowances("ent2") == 0 and chain.allowances("ent3") == 300
    supply = chain.query("supply")
    assert supply["allowance"] == {"allocated": 3713, "surrendered": 3413}
    assert supply["offset"] == {"issued": 200, "surrendered": 50, "retired": 10, "cancelled": 0, "buffer": 20}
