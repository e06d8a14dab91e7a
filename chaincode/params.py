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
SWITCH = ("on", "off")
AMOUNT_LIMIT = 10**15  # a threshold this high is never exceeded: no argument carries more


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
    Parameter(
        "keys_per_org_max",
        64,
        1,
        1_000,
        "most keys an organisation enrols, revoked ones included (not node keys)",
    ),
    Parameter("allocations_per_period_max", 16, 1, 256, "most allocations per enterprise and period"),
    Parameter("issuances_per_project_max", 1_000, 1, 10_000, "most issuances per offset project"),
    Parameter("penalty_rule", "china", 0, 0, "default settlement rule of a period", choices=PENALTY_RULES),
    # four-eyes: a second key of the same organisation approves these (docs/CHAINCODE.md section 13)
    Parameter(
        "four_eyes_allowance_t", 10_000, 0, AMOUNT_LIMIT, "transfer_allowances above this needs a second key"
    ),
    Parameter("four_eyes_offset_t", 10_000, 0, AMOUNT_LIMIT, "transfer_offsets above this many serials"),
    Parameter("four_eyes_cash_fen", 100_000_000, 0, AMOUNT_LIMIT, "withdraw_cash above this (CNY 1 million)"),
    Parameter("four_eyes_order_t", 100_000, 0, AMOUNT_LIMIT, "place_order above this quantity"),
    Parameter(
        "four_eyes_allocation_t", 10_000_000, 0, AMOUNT_LIMIT, "allocate above this (a large allocation)"
    ),
    Parameter(
        "four_eyes_freezes",
        "on",
        0,
        0,
        "freeze_account and unfreeze_account need a second key",
        choices=SWITCH,
    ),
    Parameter("four_eyes_window_blocks", 1_000, 1, 1_000_000, "blocks a request waits for its second key"),
    Parameter("open_requests_max", 16, 1, 1_000, "most pending four-eyes requests per organisation"),
    # governance proposals (section 12)
    Parameter("proposal_blocks_max", 100_000, 1, 10_000_000, "longest a proposal may stay open, in blocks"),
    Parameter("open_proposals_max", 8, 1, 1_000, "most open proposals per proposing organisation"),
)
_BY_NAME = {parameter.name: parameter for parameter in PARAMETERS}


def get_parameter(name: str) -> Parameter | None:
    return _BY_NAME.get(name)


def validate_parameter_value(name: str, value: Any) -> str:
    """'' when `value` is allowed for the parameter, else why not."""
    parameter = _BY_NAME.get(name)
    if parameter is None:
        return f"{name} is not a carbon parameter"
    if parameter.choices:
        if value not in parameter.choices:
            return f"{name} must be one of {list(parameter.choices)}"
    elif type(value) is not int or not parameter.minimum <= value <= parameter.maximum:
        return f"{name} must be an integer in [{parameter.minimum}, {parameter.maximum}]"
    return ""


def compute_params(overrides: dict[str, Any]) -> dict[str, Any]:
    """Defaults merged with genesis overrides; raises GenesisError naming an unknown or out-of-range value."""
    params: dict[str, Any] = {parameter.name: parameter.default for parameter in PARAMETERS}
    for name in sorted(overrides):
        value = overrides[name]
        problem = validate_parameter_value(name, value)
        if problem:
            raise GenesisError(f"chaincode.carbon.{problem}")
        params[name] = value
    return params
