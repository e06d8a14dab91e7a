"""Carbon chaincode parameters: defaults, and validation of genesis `chaincode.carbon` overrides.

Parameters are written to state at genesis (`param/carbon`, every parameter present) so that every node
executes with the same values; a period may override the compliance ones when it is opened (open_period
arguments). PARAMETERS is the declaration docs/CHAINCODE.md's parameter table is generated from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.errors import GenesisError

PENALTY_RULES = ("china", "eu")


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    default: int | str
    minimum: int  # inclusive bounds of an integer parameter (unused for choices)
    maximum: int
    description: str
    choices: tuple[str, ...] = ()  # a string parameter's allowed values


PARAMETERS: tuple[Parameter, ...] = (
    # compliance defaults for open_period
    Parameter(
        "offset_cap_bps",
        500,
        0,
        10_000,
        "offsets may cover at most this share of verified emissions (5%: CCER)",
    ),
    Parameter("penalty_fen_per_t", 10_000, 0, 10**9, "penalty recorded per tonne of shortfall (CNY 100/t)"),
    # allowance market
    Parameter(
        "reference_price_fen", 5_000, 1, 10**9, "reference price before any trade or set_reference_price"
    ),
    Parameter("price_band_bps", 1_000, 0, 10_000, "listed orders: price within +-10% of the reference"),
    Parameter("block_trade_band_bps", 3_000, 0, 10_000, "block-trade orders: price within +-30%"),
    Parameter("block_trade_min_t", 100_000, 1, 10**15, "an order of at least this quantity is a block trade"),
    Parameter("trading_day_ms", 86_400_000, 1, 10**12, "length of a trading day in block time"),
    Parameter(
        "trading_day_offset_ms", 28_800_000, 0, 10**12, "added to block time before dividing (UTC+8: China)"
    ),
    Parameter("match_max", 100, 1, 10_000, "most resting orders one placement trades with"),
    Parameter(
        "match_skip_max", 50, 1, 10_000, "most resting orders (own or frozen) one placement passes over"
    ),
    Parameter("open_orders_max", 200, 1, 100_000, "most resting orders per organisation"),
    # offsets
    Parameter("buffer_bps", 0, 0, 5_000, "default share of an issuance withheld in the buffer"),
    # bounds on what one record may hold
    Parameter("keys_per_org_max", 64, 1, 1_000, "most keys an organisation may have, revoked ones included"),
    Parameter("allocations_per_period_max", 16, 1, 256, "most allocations per enterprise and period"),
    Parameter("issuances_per_project_max", 1_000, 1, 10_000, "most issuances per offset project"),
    Parameter("penalty_rule", "china", 0, 0, "default settlement rule of a period", choices=PENALTY_RULES),
)
_BY_NAME = {parameter.name: parameter for parameter in PARAMETERS}


def compute_params(overrides: dict[str, Any]) -> dict[str, Any]:
    """Defaults merged with genesis overrides; raises GenesisError naming an unknown or out-of-range value."""
    params: dict[str, Any] = {parameter.name: parameter.default for parameter in PARAMETERS}
    for name in sorted(overrides):
        value = overrides[name]
        parameter = _BY_NAME.get(name)
        if parameter is None:
            raise GenesisError(f"chaincode.carbon.{name} is not a carbon parameter")
        if parameter.choices:
            if value not in parameter.choices:
                raise GenesisError(f"chaincode.carbon.{name} must be one of {list(parameter.choices)}")
        elif type(value) is not int or not parameter.minimum <= value <= parameter.maximum:
            raise GenesisError(
                f"chaincode.carbon.{name} must be an integer in [{parameter.minimum}, {parameter.maximum}]"
            )
        params[name] = value
    return params
