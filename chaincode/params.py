"""Carbon chaincode parameters: defaults, and validation of genesis `chaincode.carbon` overrides.

Parameters are written to state at genesis (`param/carbon`) so that every node executes with the same
values; a period may override the compliance ones when it is opened (open_period arguments).
"""

from __future__ import annotations

from typing import Any

from core.errors import GenesisError

PENALTY_RULES = ("china", "eu")

# name -> (default, minimum, maximum); all integers except penalty_rule.
_INT_PARAMS: dict[str, tuple[int, int, int]] = {
    # compliance defaults for open_period
    "offset_cap_bps": (500, 0, 10_000),  # offsets may cover at most 5% of verified emissions (China CCER)
    "penalty_fen_per_t": (10_000, 0, 10**9),  # recorded penalty per tonne of shortfall (CNY 100/t)
    # allowance market
    "reference_price_fen": (5_000, 1, 10**9),  # reference price before any trade (CNY 50/t)
    "price_band_bps": (1_000, 0, 10_000),  # listed trades: +-10% of the reference price
    "block_trade_band_bps": (3_000, 0, 10_000),  # block trades: +-30%
    "block_trade_min_t": (100_000, 1, 10**15),  # quantity from which an order is a block trade
    "trading_day_ms": (86_400_000, 1, 10**12),  # length of a trading "day" in block time
    "trading_day_offset_ms": (28_800_000, 0, 10**12),  # UTC+8: days start at 00:00 China Standard Time
    "match_max": (100, 1, 10_000),  # most resting orders one placement may match (bounds tx cost)
    "open_orders_max": (200, 1, 100_000),  # most resting orders per organisation
    # offsets
    "buffer_bps": (0, 0, 5_000),  # default share of an issuance withheld in the buffer
}

DEFAULT_PENALTY_RULE = "china"


def compute_params(overrides: dict[str, Any]) -> dict[str, Any]:
    """Defaults merged with genesis overrides; raises GenesisError naming an unknown or out-of-range value."""
    params: dict[str, Any] = {name: spec[0] for name, spec in _INT_PARAMS.items()}
    params["penalty_rule"] = DEFAULT_PENALTY_RULE
    for name in sorted(overrides):
        value = overrides[name]
        if name == "penalty_rule":
            if value not in PENALTY_RULES:
                raise GenesisError(f"chaincode.carbon.penalty_rule must be one of {list(PENALTY_RULES)}")
            params[name] = value
            continue
        if name not in _INT_PARAMS:
            raise GenesisError(f"chaincode.carbon.{name} is not a carbon parameter")
        _, low, high = _INT_PARAMS[name]
        if type(value) is not int or not low <= value <= high:
            raise GenesisError(f"chaincode.carbon.{name} must be an integer in [{low}, {high}]")
        params[name] = value
    return params


def describe_params() -> list[dict[str, Any]]:
    """Parameter table for docs: name, default, range."""
    rows = [
        {"name": name, "default": default, "minimum": low, "maximum": high}
        for name, (default, low, high) in _INT_PARAMS.items()
    ]
    rows.append({"name": "penalty_rule", "default": DEFAULT_PENALTY_RULE, "choices": list(PENALTY_RULES)})
    return rows
