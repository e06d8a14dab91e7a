"""Read-only queries over a StateReader, returning plain JSON-able data (QUERIES registry).

Every query is a pure function of state and parameters. Lists are paginated: `limit` (1..1000, default
100) and `start_after` (the last id of the previous page); a page carries `next` (the start_after for the
following page, or null). Parameters may arrive as strings (HTTP query strings) and are converted by
`run_query` according to each QuerySpec; unknown names raise UnknownFunction, missing objects NotFound.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import islice
from typing import Any

from chaincode import schema
from chaincode.base import Arg, InvalidArgs, NotFound, QuerySpec, UnknownFunction, validate_value
from chaincode.context import decode_record
from chaincode.gov_queries import GOVERNANCE_QUERIES
from chaincode.market import compute_reference_price
from chaincode.offsets import compute_serial_string
from chaincode.query_kit import LIMIT_ARG, PAGE_MAX, after_arg, get_or_not_found, iter_records, page
from core.state import StateReader

_limit = LIMIT_ARG
_org = Arg("org", "org", "organisation id")
_period = Arg("period", "id", "compliance period id")
_after = after_arg
_records = iter_records
_page = page
_get = get_or_not_found


# --- identity ----------------------------------------------------------------------------------------------


def query_organisations(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    start = None if p["start_after"] is None else schema.org_key(p["start_after"])
    items = [record for _, record in islice(_records(state, schema.ORG_PREFIX, start), p["limit"] + 1)]
    return _page(items, p["limit"], lambda record: record["id"])


def query_organisation(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    return _get(state, schema.org_key(p["org"]), f"organisation {p['org']!r}")


def query_keys(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    _get(state, schema.org_key(p["org"]), f"organisation {p['org']!r}")
    prefix = schema.key_prefix(p["org"])
    start = None if p["start_after"] is None else prefix + p["start_after"].encode()
    items = [record for _, record in islice(_records(state, prefix, start), p["limit"] + 1)]
    return _page(items, p["limit"], lambda record: record["public_key"])


# --- holdings and offsets ----------------------------------------------------------------------------------


def _balance(state: StateReader, org: str, unit: str) -> dict[str, Any]:
    raw = state.get(schema.bal_key(org, unit))
    record = {"available": 0, "locked": 0} if raw is None else decode_record(raw)
    return {"available": record["available"], "locked": record["locked"]}


def _block_json(block: dict[str, Any]) -> dict[str, Any]:
    return {**block, "quantity_t": block["last"] - block["first"] + 1, "serial": compute_serial_string(block)}


def query_holdings(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    """Allowances and cash (available and locked in orders) and the active offset blocks held."""
    org = p["org"]
    _get(state, schema.org_key(org), f"organisation {org!r}")
    prefix = schema.holding_prefix(org)
    start = None if p["start_after"] is None else schema.holding_key(org, p["start_after"])
    blocks = []
    for key, _ in islice(state.iterate(prefix, start_after=start), p["limit"] + 1):
        last = int(key[len(prefix) :])
        blocks.append(_block_json(_get(state, schema.offset_key(last), f"offset block {last}")))
    page = _page(blocks, p["limit"], lambda block: block["last"])
    return {
        "org": org,
        "allowances_t": _balance(state, org, schema.UNIT_ALLOWANCE),
        "cash_fen": _balance(state, org, schema.UNIT_CASH),
        "offset_blocks": page["items"],
        "offsets_held_t": sum(block["quantity_t"] for block in page["items"]),
        "next": page["next"],
    }


def query_offset_block(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    serial = p["serial"]
    for _, record in _records(state, schema.OFFSET_PREFIX, schema.offset_key(serial - 1)):
        if record["first"] <= serial:
            return _block_json(record)
        break
    raise NotFound(f"no offset block holds serial {serial}")


def query_offset_blocks(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    """All serial blocks in serial order (any status); start_after is a last serial."""
    start = None if p["start_after"] is None else schema.offset_key(p["start_after"])
    items = [_block_json(r) for _, r in islice(_records(state, schema.OFFSET_PREFIX, start), p["limit"] + 1)]
    return _page(items, p["limit"], lambda block: block["last"])


def query_project(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    project = _get(state, schema.project_key(p["project"]), f"project {p['project']!r}")
    issuances = [record for _, record in _records(state, schema.issuance_prefix(p["project"]), None)]
    return {**project, "issuance_records": issuances}


def query_projects(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    start = None if p["start_after"] is None else schema.project_key(p["start_after"])
    items = [record for _, record in islice(_records(state, schema.PROJECT_PREFIX, start), p["limit"] + 1)]
    return _page(items, p["limit"], lambda record: record["id"])


def query_retirement(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    """A retirement receipt; a third party checks it with the state proof of key retire/<id>."""
    receipt = _get(state, schema.retire_key(p["receipt"]), f"retirement receipt {p['receipt']!r}")
    return {**receipt, "state_key": schema.retire_key(p["receipt"]).decode()}


# --- compliance ----------------------------------------------------------------------------------------------


def query_period(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    return _get(state, schema.period_key(p["period"]), f"period {p['period']!r}")


def query_periods(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    start = None if p["start_after"] is None else schema.period_key(p["start_after"])
    items = [record for _, record in islice(_records(state, schema.PERIOD_PREFIX, start), p["limit"] + 1)]
    return _page(items, p["limit"], lambda record: record["id"])


def query_report(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    """An emission report with its verification (null until verified)."""
    return _get(
        state, schema.report_key(p["period"], p["org"]), f"report of {p['org']!r} for {p['period']!r}"
    )


def query_allocation(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    """An enterprise's allocations for a period, with their inputs."""
    return _get(state, schema.alloc_key(p["period"], p["org"]), f"allocation of {p['org']!r}")


def query_compliance(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    """Per enterprise: allocated, verified emissions, surrendered, and after settlement shortfall/penalty."""
    period = _get(state, schema.period_key(p["period"]), f"period {p['period']!r}")
    prefix = schema.comp_prefix(p["period"])
    start = None if p["start_after"] is None else prefix + p["start_after"].encode()
    rows = []
    for _, comp in islice(_records(state, prefix, start), p["limit"] + 1):
        rows.append(
            {
                "org": comp["org"],
                "allocated_t": comp["allocated_t"],
                "verified_t": comp["verified_t"],
                "surrendered_allowances_t": comp["surrendered_allowances_t"],
                "surrendered_offsets_t": comp["surrendered_offsets_t"],
                "banked_in_t": comp.get("banked_in_t", 0),
                "owed_in_t": comp.get("owed_in_t", 0),
                "shortfall_t": comp.get("shortfall_t", 0),
                "surplus_t": comp.get("surplus_t", 0),
                "penalty_fen": comp.get("penalty_fen", 0),
                "status": comp["status"],
            }
        )
    page = _page(rows, p["limit"], lambda row: row["org"])
    return {"period": period, "rows": page["items"], "next": page["next"]}


def query_carry(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    """What an enterprise carries into its next settlement / allocation."""
    raw = state.get(schema.carry_key(p["org"]))
    record = {"banked_t": 0, "owed_t": 0, "deduct_t": 0} if raw is None else decode_record(raw)
    return {"org": p["org"], **record}


# --- market --------------------------------------------------------------------------------------------------


def _book_side(state: StateReader, side: str, depth: int) -> list[dict[str, Any]]:
    prefix = schema.BOOK_BUY if side == "buy" else schema.BOOK_SELL
    orders = []
    for key, _ in islice(state.iterate(prefix), depth):
        seq = int(key.rsplit(b"/", 1)[1])
        order = _get(state, schema.order_key(seq), f"order {seq}")
        orders.append({k: order[k] for k in ("id", "org", "price_fen", "remaining_t", "height")})
    return orders


def query_order_book(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    """Resting orders in priority order: buys best (highest) first, sells best (lowest) first."""
    return {"buy": _book_side(state, "buy", p["depth"]), "sell": _book_side(state, "sell", p["depth"])}


def query_order(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    return _get(state, schema.order_key(p["order"]), f"order {p['order']}")


def query_orders(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    """An organisation's resting orders, oldest first."""
    prefix = schema.org_order_prefix(p["org"])
    start = None if p["start_after"] is None else schema.org_order_key(p["org"], p["start_after"])
    items = []
    for key, _ in islice(state.iterate(prefix, start_after=start), p["limit"] + 1):
        seq = int(key[len(prefix) :])
        items.append(_get(state, schema.order_key(seq), f"order {seq}"))
    return _page(items, p["limit"], lambda order: order["id"])


def query_trades(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    start = None if p["start_after"] is None else schema.trade_key(p["start_after"])
    items = [record for _, record in islice(_records(state, schema.TRADE_PREFIX, start), p["limit"] + 1)]
    return _page(items, p["limit"], lambda trade: trade["id"])


def query_market(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    """Reference price now (at day `day` if given), last trade, and market parameters."""
    market = _get(state, schema.MARKET, "market record")
    params = _get(state, schema.PARAMS, "parameters")
    result = dict(market)
    if p["day"] is not None:
        result["reference_for_day_fen"] = compute_reference_price(market, p["day"])
    for name in (
        "price_band_bps",
        "block_trade_band_bps",
        "block_trade_min_t",
        "trading_day_ms",
        "trading_day_offset_ms",
    ):
        result[name] = params[name]
    return result


def query_supply(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    """Totals: allowances allocated/surrendered, offsets issued/surrendered/retired/cancelled/buffer, cash."""
    return {
        "allowance": _get(state, schema.SUPPLY_ALLOWANCE, "allowance totals"),
        "offset": _get(state, schema.SUPPLY_OFFSET, "offset totals"),
        "cash": _get(state, schema.SUPPLY_CASH, "cash totals"),
    }


def query_params(state: StateReader, p: dict[str, Any]) -> dict[str, Any]:
    return _get(state, schema.PARAMS, "parameters")


_QUERY_LIST = (
    QuerySpec(
        "organisations", (_after("organisation id"), _limit), "Registered organisations.", query_organisations
    ),
    QuerySpec(
        "organisation", (_org,), "One organisation (role, frozen, blocked, accredited).", query_organisation
    ),
    QuerySpec(
        "keys", (_org, _after("public key hex"), _limit), "Keys of an organisation with status.", query_keys
    ),
    QuerySpec(
        "holdings",
        (_org, _after("last serial", "int"), _limit),
        "Allowances (t), cash (fen) and active offset blocks of an organisation.",
        query_holdings,
    ),
    QuerySpec(
        "offset_block",
        (Arg("serial", "int", "any serial in the block", minimum=1),),
        "The serial block holding a serial.",
        query_offset_block,
    ),
    QuerySpec(
        "offset_blocks",
        (_after("last serial", "int"), _limit),
        "All serial blocks in serial order.",
        query_offset_blocks,
    ),
    QuerySpec(
        "project", (Arg("project", "id", "project id"),), "A project with its issuances.", query_project
    ),
    QuerySpec("projects", (_after("project id"), _limit), "Registered projects.", query_projects),
    QuerySpec(
        "retirement",
        (Arg("receipt", "id", "receipt id (the retiring transaction id, hex)"),),
        "A retirement receipt.",
        query_retirement,
    ),
    QuerySpec("period", (_period,), "A compliance period and its rules.", query_period),
    QuerySpec("periods", (_after("period id"), _limit), "Compliance periods.", query_periods),
    QuerySpec("report", (_period, _org), "An emission report and its verification.", query_report),
    QuerySpec(
        "allocation", (_period, _org), "An enterprise's allocations and their inputs.", query_allocation
    ),
    QuerySpec(
        "compliance",
        (_period, _after("organisation id"), _limit),
        "A period's compliance table, one row per enterprise.",
        query_compliance,
    ),
    QuerySpec(
        "carry",
        (_org,),
        "Banked surplus, make-good owed and allocation deduction carried forward.",
        query_carry,
    ),
    QuerySpec(
        "order_book",
        (Arg("depth", "int", "orders per side", required=False, default=20, minimum=1, maximum=PAGE_MAX),),
        "Resting orders in priority order.",
        query_order_book,
    ),
    QuerySpec(
        "order", (Arg("order", "int", "order id", minimum=1, maximum=2**62),), "One order.", query_order
    ),
    QuerySpec(
        "orders", (_org, _after("order id", "int"), _limit), "An organisation's resting orders.", query_orders
    ),
    QuerySpec("trades", (_after("trade id", "int"), _limit), "Trades, oldest first.", query_trades),
    QuerySpec(
        "market",
        (Arg("day", "int", "trading day number", required=False, maximum=2**40),),
        "Reference and last price of the allowance market.",
        query_market,
    ),
    QuerySpec("supply", (), "Unit and cash totals (for conservation checks).", query_supply),
    QuerySpec("params", (), "Carbon chaincode parameters.", query_params),
    *GOVERNANCE_QUERIES,
)

QUERIES: dict[str, QuerySpec] = {spec.name: spec for spec in _QUERY_LIST}


def parse_query_params(spec: QuerySpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """Typed parameters from strings or values; raises InvalidArgs naming the parameter."""
    known = {arg.name for arg in spec.params}
    unknown = sorted(name for name in params if name not in known)
    if unknown:
        raise InvalidArgs(spec.name, ",".join(unknown), "is not a parameter of this query")
    result: dict[str, Any] = {}
    for arg in spec.params:
        value = params.get(arg.name)
        if value is None or value == "":
            if arg.required:
                raise InvalidArgs(spec.name, arg.name, "is required")
            result[arg.name] = arg.default
            continue
        if arg.kind == "int" and type(value) is str:
            if not value.isdigit() or len(value) > 19:
                raise InvalidArgs(spec.name, arg.name, "must be a non-negative integer")
            value = int(value)
        result[arg.name] = validate_value(spec.name, arg, value)
    return result


def run_query(state: StateReader, name: str, params: Mapping[str, Any]) -> Any:
    """Run a named query; raises UnknownFunction, InvalidArgs or NotFound (all InvalidInput)."""
    spec = QUERIES.get(name)
    if spec is None:
        raise UnknownFunction(f"no query named {name!r}")
    return spec.handler(state, parse_query_params(spec, params))
