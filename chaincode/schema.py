"""Every world-state key and record of the chaincodes, declared once, with the schema version.

Keys are printable ASCII: a readable prefix, then ids separated by "/" (ids never contain "/"). Numbers
inside keys are zero-padded decimal of a fixed width, so byte order equals numeric order; prefix iteration
is the only way anything is enumerated. Every value is the canonical msgpack encoding (core.codec) of a map
with exactly the declared fields (index entries: the empty map, the one byte `80`).

RECORDS and SHAPES are the declarations: the key functions below are built from their templates,
docs/CHAINCODE.md's key and record tables are generated from them (chaincode.docgen), and the tests check
every entry the chaincode writes against them. A new record is added by declaring it here.

Schema history (the version is in `meta/schema`; any change of what is stored is a new version):
1. the first layout.
2. index entries hold the empty map instead of zero bytes; compliance rows and allocation entries have a
   fixed field set; allowances bought today ("fresh") are debited last and move with a transfer;
   counters stop at the width of their keys.
3. governance (chaincode.schema_gov): members, policies, proposals, four-eyes requests with their locks,
   per-organisation four-eyes thresholds, the validator set with its pending change, every node key ever
   used, evidence; key records gain `node` (a validator's node key, enrolled at genesis), serial blocks
   `held` (the four-eyes request that locks them); balances' `locked` also counts four-eyes locks.
"""

from __future__ import annotations

from chaincode import schema_gov
from chaincode.layout import Field, KeyTemplate, Record, Shape
from chaincode.params import PARAMETERS
from core import codec
from core.errors import CodecError

SCHEMA_VERSION = 3
PRICE_PAD_MAX = 10**16 - 1  # prices are stored inverted for the buy side: PRICE_PAD_MAX - price
SERIAL_MAX = 10**15  # highest serial (serial arguments go up to here)
SEQ_MAX = 10**16 - 1  # highest order and trade id (16-digit keys)
ISSUANCE_MAX = 2**62  # highest issuance id

UNIT_ALLOWANCE = "allowance"
UNIT_CASH = "cash"

F = Field

# --- nested maps ------------------------------------------------------------------------------------------

ALLOC_ENTRY = Shape(
    "alloc_entry",
    (
        F("method", "enum(explicit,benchmark)", "`explicit`: amount_t was given; `benchmark`: the formula"),
        F("amount_t", "int|nil", "the explicit amount (nil for benchmark)"),
        F("benchmark_kg_per_unit", "int|nil", "formula input (nil for explicit)"),
        F("output_units", "int|nil", "formula input (nil for explicit)"),
        F("correction_bps", "int|nil", "formula input (nil for explicit)"),
        F("share_bps", "int|nil", "formula input (nil for explicit)"),
        F("computed_t", "int", "amount_t, or the formula's result"),
        F("deducted_t", "int", "taken from a China-rule deduction carried in (`carry.deduct_t`)"),
        F("granted_t", "int", "computed_t - deducted_t: what was credited"),
        F("height", "int", "height of the allocating block"),
    ),
    "one allocation of `alloc.entries`",
)
VERIFICATION = Shape(
    "verification",
    (
        F("verifier", "org", "the verifying organisation"),
        F("verified_t", "int", "verified emissions, t"),
        F("opinion", "enum(satisfactory,satisfactory_with_comments,not_satisfactory)", "the opinion"),
        F("evidence_hash", "hex32", "the verifier's evidence hash"),
        F("height", "int", "height of the verifying block"),
        F("time_ms", "int", "time of the verifying block"),
    ),
    "a report's verification",
)
SHAPES: dict[str, Shape] = {shape.name: shape for shape in (ALLOC_ENTRY, VERIFICATION, *schema_gov.SHAPES)}

# --- records ----------------------------------------------------------------------------------------------

_COUNTERS = ("order", "trade", "serial", "issuance", "proposal", "request")
_HEIGHT = F("height", "int", "height of the writing block")
_TIME = F("time_ms", "int", "time of the writing block")

SCHEMA_RECORD = Record(
    "schema",
    KeyTemplate("meta/schema"),
    (F("version", "int", f"the chaincode state schema version ({SCHEMA_VERSION})"),),
    "the version of this layout",
)
COUNTER_RECORDS = tuple(
    Record(
        f"{name} counter",
        KeyTemplate(f"meta/counter/{name}"),
        (F("next", "int", f"the next {name} number; absent record: 1"),),
        f"allocates {name} numbers, starting at 1",
    )
    for name in _COUNTERS
)
PARAMS_RECORD = Record(
    "parameters",
    KeyTemplate("param/carbon"),
    tuple(
        F(p.name, f"enum({','.join(p.choices)})" if p.choices else "int", p.description) for p in PARAMETERS
    ),
    "the carbon parameters: the defaults overridden by genesis `chaincode.carbon`",
)
MARKET_RECORD = Record(
    "market",
    KeyTemplate("market/allowance"),
    (
        F("reference_price_fen", "int", "the stored reference price"),
        F("last_price_fen", "int|nil", "price of the last trade (nil: none since genesis or the last set)"),
        F("last_day", "int|nil", "trading day of that trade"),
    ),
    "the allowance market's prices",
)
SUPPLY_ALLOWANCE_RECORD = Record(
    "allowance totals",
    KeyTemplate("supply/allowance"),
    (
        F("allocated", "int", "allowances ever granted by allocate, t"),
        F("surrendered", "int", "allowances ever surrendered, t"),
    ),
    "running totals for conservation checks",
)
SUPPLY_OFFSET_RECORD = Record(
    "offset totals",
    KeyTemplate("supply/offset"),
    (
        F("issued", "int", "offsets ever issued (including the buffer), t"),
        F("surrendered", "int", "offsets surrendered, t"),
        F("retired", "int", "offsets retired, t"),
        F("cancelled", "int", "offsets cancelled (held or buffer), t"),
        F("buffer", "int", "offsets currently in buffer blocks, t"),
    ),
    "running totals for conservation checks",
)
SUPPLY_CASH_RECORD = Record(
    "cash totals",
    KeyTemplate("supply/cash"),
    (
        F("deposited", "int", "cash ever deposited, fen"),
        F("withdrawn", "int", "cash ever withdrawn, fen"),
    ),
    "running totals for conservation checks",
)
ORG_RECORD = Record(
    "organisation",
    KeyTemplate("org/{org:org}"),
    (
        F("id", "org", "the organisation id"),
        F("name", "str", "legal name"),
        F(
            "role",
            "enum(regulator,enterprise,verifier,offset_developer,settlement_bank,auditor)",
            "its one role",
        ),
        F("frozen", "bool", "frozen by the regulator (freeze_account)"),
        F("blocked", "bool", "blocked by a settlement without verified emissions"),
        F("accredited", "bool", "an accredited verifier (true at registration for role verifier)"),
        F("open_orders", "int", "its resting orders"),
        F("registered_height", "int", "0 for genesis organisations"),
    ),
    "a member organisation",
)
KEY_RECORD = Record(
    "key",
    KeyTemplate("key/{org:org}/{public_key:hex32}"),
    (
        F("org", "org", "the organisation"),
        F("public_key", "hex32", "the Ed25519 public key"),
        F("admin", "bool", "may administer the organisation"),
        F("node", "bool", "a validator's node key: it signs only report_evidence (never admin)"),
        F("status", "enum(active,revoked)", "revocation is final"),
        F("enrolled_height", "int", "0 for genesis admin keys"),
        F("revoked_height", "int|nil", "nil while active"),
    ),
    "a key enrolled for an organisation",
)
PERIOD_RECORD = Record(
    "period",
    KeyTemplate("period/{period:id}"),
    (
        F("id", "id", "the period id"),
        F("reporting_deadline_ms", "int", "last block time for reports"),
        F("surrender_deadline_ms", "int", "last block time for surrenders"),
        F("offset_cap_bps", "int", "the argument, or the parameter"),
        F("penalty_rule", "enum(china,eu)", "the argument, or the parameter"),
        F("penalty_fen_per_t", "int", "the argument, or the parameter"),
        F("status", "enum(open,closed)", "closed by close_period"),
        F("opened_height", "int", "height of open_period"),
        F("closed_height", "int|nil", "height of close_period"),
    ),
    "a compliance period",
)
ALLOC_RECORD = Record(
    "allocation",
    KeyTemplate("alloc/{period:id}/{org:org}"),
    (
        F("period", "id", "the period"),
        F("org", "org", "the enterprise"),
        F("total_t", "int", "sum of the entries' granted_t"),
        F("entries", "list(alloc_entry)", "every allocation, oldest first (at most 16)"),
    ),
    "an enterprise's allocations in a period",
)
REPORT_RECORD = Record(
    "report",
    KeyTemplate("report/{period:id}/{org:org}"),
    (
        F("period", "id", "the period"),
        F("org", "org", "the reporting enterprise"),
        F("emissions_kg", "int", "as reported"),
        F("emissions_t", "int", "(emissions_kg + 500) // 1000"),
        F("evidence_hash", "hex32", "the enterprise's evidence hash"),
        F("status", "enum(submitted,verified,rejected)", "rejected: opinion not_satisfactory"),
        F("version", "int", "1, then +1 per resubmission"),
        F("submitted_height", "int", "height of the latest submission"),
        F("verification", "verification|nil", "nil until verified"),
    ),
    "an emission report",
)
COMP_RECORD = Record(
    "compliance row",
    KeyTemplate("comp/{period:id}/{org:org}"),
    (
        F("period", "id", "the period"),
        F("org", "org", "the enterprise"),
        F("allocated_t", "int", "granted by allocate in this period"),
        F("verified_t", "int|nil", "verified emissions (nil until a satisfactory verification)"),
        F("surrendered_allowances_t", "int", "surrendered for this period"),
        F("surrendered_offsets_t", "int", "surrendered for this period"),
        F("status", "enum(open,compliant,surplus,shortfall,blocked)", "open until settled"),
        F("banked_in_t", "int", "settlement: carry.banked_t taken in"),
        F("owed_in_t", "int", "settlement: carry.owed_t taken in"),
        F("shortfall_t", "int", "settlement: tonnes short"),
        F("surplus_t", "int", "settlement: tonnes over"),
        F("penalty_fen", "int", "settlement: shortfall_t * penalty_fen_per_t"),
        F("penalty_rule", "enum(china,eu)|nil", "settlement: the period's rule (nil before)"),
        F("settled_height", "int|nil", "settlement: its height (nil before)"),
    ),
    "an enterprise's compliance in a period (the settlement fields are 0 / nil until settled)",
)
CARRY_RECORD = Record(
    "carry",
    KeyTemplate("carry/{org:org}"),
    (
        F("banked_t", "int", "surplus banked into the next settlement"),
        F("owed_t", "int", "EU make-good: shortfall owed at the next settlement"),
        F("deduct_t", "int", "China rule: shortfall deducted from the next allocations"),
    ),
    "what an enterprise carries forward (absent record: all 0)",
)
BAL_ALLOWANCE_RECORD = Record(
    "allowance balance",
    KeyTemplate("bal/{org:org}/allowance"),
    (
        F("available", "int", "allowances held and not locked, t"),
        F("locked", "int", "allowances locked in resting sell orders and pending four-eyes requests, t"),
        F("fresh", "int", "of `available`, bought on trading day fresh_day (<= available)"),
        F("fresh_day", "int", "the trading day of `fresh` (0 before any purchase)"),
    ),
    "an organisation's allowances (absent record: all 0)",
)
BAL_CASH_RECORD = Record(
    "cash balance",
    KeyTemplate("bal/{org:org}/cash"),
    (
        F("available", "int", "cash, fen"),
        F("locked", "int", "cash locked in resting buy orders and pending four-eyes requests, fen"),
    ),
    "an organisation's cash (absent record: all 0)",
)
BANKREF_RECORD = Record(
    "bank reference",
    KeyTemplate("bankref/{bank:org}/{reference:id}"),
    (_HEIGHT, F("tx_id", "hex32", "the deposit or withdrawal")),
    "a settlement bank's payment reference, used once",
)
PROJECT_RECORD = Record(
    "project",
    KeyTemplate("project/{project:id}"),
    (
        F("id", "id", "the project id"),
        F("developer", "org", "the offset developer owning it"),
        F("name", "str", "project name"),
        F("methodology", "str", "methodology"),
        F("standard", "id", "standard, e.g. CCER"),
        F("registered_height", "int", "height of register_project"),
        F("issuances", "int", "number of issuances (at most 1000)"),
    ),
    "an offset project",
)
ISSUANCE_RECORD = Record(
    "issuance",
    KeyTemplate("issuance/{project:id}/{monitoring_start_ms:u20}"),
    (
        F("id", "int", "issuance number (meta/counter/issuance)"),
        F("project", "id", "the project"),
        F("vintage", "int", "vintage year"),
        F("monitoring_start_ms", "int", "monitoring period start, inclusive"),
        F("monitoring_end_ms", "int", "monitoring period end, exclusive"),
        F("amount_t", "int", "offsets issued, including the buffer"),
        F("buffer_t", "int", "withheld in the buffer block"),
        F("first", "int", "first serial"),
        F("last", "int", "last serial (first + amount_t - 1)"),
        F("height", "int", "height of issue_offsets"),
    ),
    "one issuance of a project",
)
OFFSET_RECORD = Record(
    "serial block",
    KeyTemplate("offset/{last:u20}"),
    (
        F("first", "int", "first serial of the block"),
        F("last", "int", "last serial (the key)"),
        F("issuance", "int", "issuance number"),
        F("project", "id", "project id"),
        F("vintage", "int", "vintage year"),
        F("standard", "id", "the project's standard at issuance"),
        F("holder", 'org|""', "the holding organisation; the empty string for a buffer block"),
        F(
            "status",
            "enum(active,buffer,surrendered,retired,cancelled)",
            "all but active and buffer are final",
        ),
        F("frozen", "bool", "frozen by the regulator"),
        F("held", "int|nil", "the pending four-eyes request that locks it (nil: none)"),
        F("period", "id|nil", "the period it was surrendered for"),
        F("receipt", "hex32|nil", "the retirement receipt id"),
    ),
    "a block of consecutive offset serials, keyed by its last serial",
)
HOLDING_RECORD = Record(
    "holding index",
    KeyTemplate("holding/{org:org}/{last:u20}"),
    (),
    "present exactly while `offset/<last>` is active and held by org",
)
RETIRE_RECORD = Record(
    "retirement receipt",
    KeyTemplate("retire/{receipt:hex32}"),
    (
        F("id", "hex32", "receipt id: the retiring transaction id"),
        F("org", "org", "the retiring holder"),
        F("beneficiary", "str", "on whose behalf"),
        F("reason", "str", "why"),
        F("first", "int", "first serial retired"),
        F("last", "int", "last serial retired"),
        F("quantity_t", "int", "last - first + 1"),
        F("serial", "str", "`<issuance>-<first>-<last>-<standard>-<project>-<vintage>`"),
        F("project", "id", "project id"),
        F("vintage", "int", "vintage year"),
        F("standard", "id", "standard"),
        F("issuance", "int", "issuance number"),
        _HEIGHT,
        _TIME,
        F("tx_id", "hex32", "the retiring transaction id (= id)"),
    ),
    "a voluntary retirement",
)
ORDER_RECORD = Record(
    "order",
    KeyTemplate("order/{order:u16}"),
    (
        F("id", "int", "order number (meta/counter/order)"),
        F("org", "org", "the placing enterprise"),
        F("side", "enum(buy,sell)", "side"),
        F("price_fen", "int", "limit price per tonne"),
        F("quantity_t", "int", "quantity placed"),
        F("remaining_t", "int", "quantity not yet traded"),
        F("status", "enum(open,filled,cancelled)", "open while resting"),
        F("height", "int", "height of place_order"),
        F("time_ms", "int", "time of place_order"),
    ),
    "a limit order (kept after it is filled or cancelled)",
)
BOOK_BUY_RECORD = Record(
    "buy book entry",
    KeyTemplate("book/buy/{inverted_price:u16}/{order:u16}"),
    (),
    "a resting buy order; inverted_price = 9999999999999999 - price_fen, so the best price sorts first",
)
BOOK_SELL_RECORD = Record(
    "sell book entry",
    KeyTemplate("book/sell/{price:u16}/{order:u16}"),
    (),
    "a resting sell order; the lowest price sorts first",
)
ORG_ORDER_RECORD = Record(
    "resting order index",
    KeyTemplate("orgorder/{org:org}/{order:u16}"),
    (),
    "present exactly while the organisation's order rests in the book",
)
TRADE_RECORD = Record(
    "trade",
    KeyTemplate("trade/{trade:u16}"),
    (
        F("id", "int", "trade number (meta/counter/trade)"),
        F("buyer", "org", "buying enterprise"),
        F("seller", "org", "selling enterprise"),
        F("buy_order", "int", "the buy order"),
        F("sell_order", "int", "the sell order"),
        F("quantity_t", "int", "quantity"),
        F("price_fen", "int", "price per tonne: the resting order's price"),
        _HEIGHT,
        _TIME,
    ),
    "one match of the order book",
)

RECORDS: tuple[Record, ...] = (
    SCHEMA_RECORD,
    *COUNTER_RECORDS,
    PARAMS_RECORD,
    MARKET_RECORD,
    SUPPLY_ALLOWANCE_RECORD,
    SUPPLY_OFFSET_RECORD,
    SUPPLY_CASH_RECORD,
    ORG_RECORD,
    KEY_RECORD,
    PERIOD_RECORD,
    ALLOC_RECORD,
    REPORT_RECORD,
    COMP_RECORD,
    CARRY_RECORD,
    BAL_ALLOWANCE_RECORD,
    BAL_CASH_RECORD,
    BANKREF_RECORD,
    PROJECT_RECORD,
    ISSUANCE_RECORD,
    OFFSET_RECORD,
    HOLDING_RECORD,
    RETIRE_RECORD,
    ORDER_RECORD,
    BOOK_BUY_RECORD,
    BOOK_SELL_RECORD,
    ORG_ORDER_RECORD,
    TRADE_RECORD,
    *schema_gov.RECORDS,
)


def find_record(key: bytes) -> tuple[Record, dict[str, str | int]] | None:
    """The record a state key belongs to, with its segment values (None for a key of no record)."""
    for record in RECORDS:
        if key.startswith(record.key.prefix):
            values = record.key.parse(key)
            if values is not None:
                return record, values
    return None


# --- keys, as the chaincode builds them ---------------------------------------------------------------------

SCHEMA = SCHEMA_RECORD.key.format()
PARAMS = PARAMS_RECORD.key.format()
MARKET = MARKET_RECORD.key.format()
COUNTER_ORDER, COUNTER_TRADE, COUNTER_SERIAL, COUNTER_ISSUANCE, COUNTER_PROPOSAL, COUNTER_REQUEST = (
    r.key.format() for r in COUNTER_RECORDS
)
COUNTER_MAX = {COUNTER_ORDER: SEQ_MAX, COUNTER_TRADE: SEQ_MAX, COUNTER_SERIAL: SERIAL_MAX}
COUNTER_MAX.update({COUNTER_ISSUANCE: ISSUANCE_MAX, COUNTER_PROPOSAL: SEQ_MAX, COUNTER_REQUEST: SEQ_MAX})
SUPPLY_ALLOWANCE = SUPPLY_ALLOWANCE_RECORD.key.format()
SUPPLY_OFFSET = SUPPLY_OFFSET_RECORD.key.format()
SUPPLY_CASH = SUPPLY_CASH_RECORD.key.format()
EMPTY_MAP = b"\x80"  # the value of every index entry (holding/, book/, orgorder/)

ORG_PREFIX = ORG_RECORD.key.prefix
KEY_PREFIX = KEY_RECORD.key.prefix
PERIOD_PREFIX = PERIOD_RECORD.key.prefix
PROJECT_PREFIX = PROJECT_RECORD.key.prefix
OFFSET_PREFIX = OFFSET_RECORD.key.prefix
ORDER_PREFIX = ORDER_RECORD.key.prefix
TRADE_PREFIX = TRADE_RECORD.key.prefix
BOOK_BUY = BOOK_BUY_RECORD.key.prefix
BOOK_SELL = BOOK_SELL_RECORD.key.prefix

org_key = ORG_RECORD.key.format
period_key = PERIOD_RECORD.key.format
alloc_key = ALLOC_RECORD.key.format
report_key = REPORT_RECORD.key.format
comp_key = COMP_RECORD.key.format
carry_key = CARRY_RECORD.key.format
bankref_key = BANKREF_RECORD.key.format
project_key = PROJECT_RECORD.key.format
issuance_key = ISSUANCE_RECORD.key.format
offset_key = OFFSET_RECORD.key.format  # keyed by the LAST serial: the block holding s is the first key >= s
holding_key = HOLDING_RECORD.key.format
retire_key = RETIRE_RECORD.key.format
order_key = ORDER_RECORD.key.format
org_order_key = ORG_ORDER_RECORD.key.format
trade_key = TRADE_RECORD.key.format


def key_key(org: str, public_key: bytes) -> bytes:
    return KEY_RECORD.key.format(org, public_key.hex())


def key_prefix(org: str) -> bytes:
    return b"key/" + org.encode() + b"/"


def comp_prefix(period: str) -> bytes:
    return b"comp/" + period.encode() + b"/"


def issuance_prefix(project: str) -> bytes:
    return b"issuance/" + project.encode() + b"/"


def holding_prefix(org: str) -> bytes:
    return b"holding/" + org.encode() + b"/"


def org_order_prefix(org: str) -> bytes:
    return b"orgorder/" + org.encode() + b"/"


def bal_key(org: str, unit: str) -> bytes:
    record = BAL_ALLOWANCE_RECORD if unit == UNIT_ALLOWANCE else BAL_CASH_RECORD
    return record.key.format(org)


def book_key(side: str, price_fen: int, seq: int) -> bytes:
    """Book entries in matching order: buys by highest price, sells by lowest, then by sequence (time)."""
    if side == "buy":
        return BOOK_BUY_RECORD.key.format(PRICE_PAD_MAX - price_fen, seq)
    return BOOK_SELL_RECORD.key.format(price_fen, seq)


def check_state_entry(key: bytes, value: bytes) -> None:
    """Raise ValueError unless the entry is a declared record: key layout, canonical map, exact fields."""
    found = find_record(key)
    if found is None:
        raise ValueError(f"state key {key!r} matches no declared record")
    record, _ = found
    try:
        decoded = codec.decode(value)
    except CodecError as exc:
        raise ValueError(f"{key!r}: the value is not canonical msgpack: {exc}") from None
    record.check(decoded, SHAPES)
