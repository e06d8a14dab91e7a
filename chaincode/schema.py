"""Every world-state key the chaincodes use, in one place, with the schema version.

Keys are printable ASCII: a readable prefix, then ids separated by "/" (ids never contain "/": organisation
ids match [a-z0-9][a-z0-9_.-]*, other ids [A-Za-z0-9][A-Za-z0-9_.:-]*). Numbers inside keys are zero-padded
decimal so that byte order equals numeric order; prefix iteration is the only way anything is enumerated.
Values are canonical msgpack maps (core.codec). docs/CHAINCODE.md lists each record's fields.
"""

from __future__ import annotations

SCHEMA_VERSION = 1
PRICE_PAD_MAX = 10**16 - 1  # prices are stored inverted for the buy side: PRICE_PAD_MAX - price

# --- platform (identity) ----------------------------------------------------------------------------------
SCHEMA = b"meta/schema"  # {"version": SCHEMA_VERSION}
ORG_PREFIX = b"org/"
KEY_PREFIX = b"key/"


def org_key(org: str) -> bytes:
    return b"org/" + org.encode()


def key_key(org: str, public_key: bytes) -> bytes:
    return b"key/" + org.encode() + b"/" + public_key.hex().encode()


def key_prefix(org: str) -> bytes:
    return b"key/" + org.encode() + b"/"


# --- carbon: parameters, counters, totals -------------------------------------------------------------------
PARAMS = b"param/carbon"  # chaincode parameters from genesis (chaincode.params)
MARKET = b"market/allowance"  # reference and last trade price of the allowance market
COUNTER_ORDER = b"meta/counter/order"
COUNTER_TRADE = b"meta/counter/trade"
COUNTER_SERIAL = b"meta/counter/serial"
COUNTER_ISSUANCE = b"meta/counter/issuance"
SUPPLY_ALLOWANCE = b"supply/allowance"  # {"allocated", "surrendered"}
SUPPLY_OFFSET = b"supply/offset"  # {"issued", "surrendered", "retired", "cancelled", "buffer"}
SUPPLY_CASH = b"supply/cash"  # {"deposited", "withdrawn"}

# --- carbon: periods, allocation, reports, compliance --------------------------------------------------------
PERIOD_PREFIX = b"period/"


def period_key(period: str) -> bytes:
    return b"period/" + period.encode()


def alloc_key(period: str, org: str) -> bytes:
    return b"alloc/" + period.encode() + b"/" + org.encode()


def report_key(period: str, org: str) -> bytes:
    return b"report/" + period.encode() + b"/" + org.encode()


def comp_key(period: str, org: str) -> bytes:
    return b"comp/" + period.encode() + b"/" + org.encode()


def comp_prefix(period: str) -> bytes:
    return b"comp/" + period.encode() + b"/"


def carry_key(org: str) -> bytes:
    return b"carry/" + org.encode()


# --- balances and cash ------------------------------------------------------------------------------------
UNIT_ALLOWANCE = "allowance"
UNIT_CASH = "cash"


def bal_key(org: str, unit: str) -> bytes:
    return b"bal/" + org.encode() + b"/" + unit.encode()


def bankref_key(bank: str, reference: str) -> bytes:
    return b"bankref/" + bank.encode() + b"/" + reference.encode()


# --- offsets ----------------------------------------------------------------------------------------------
PROJECT_PREFIX = b"project/"
OFFSET_PREFIX = b"offset/"


def project_key(project: str) -> bytes:
    return b"project/" + project.encode()


def issuance_key(project: str, monitoring_start_ms: int) -> bytes:
    return b"issuance/" + project.encode() + b"/%020d" % monitoring_start_ms


def issuance_prefix(project: str) -> bytes:
    return b"issuance/" + project.encode() + b"/"


def offset_key(last_serial: int) -> bytes:
    """A serial block is keyed by its LAST serial: the block holding serial s is the first key >= s."""
    return b"offset/%020d" % last_serial


def holding_key(org: str, last_serial: int) -> bytes:
    return b"holding/" + org.encode() + b"/%020d" % last_serial


def holding_prefix(org: str) -> bytes:
    return b"holding/" + org.encode() + b"/"


def retire_key(receipt_id: str) -> bytes:
    return b"retire/" + receipt_id.encode()


# --- order book and trades --------------------------------------------------------------------------------
ORDER_PREFIX = b"order/"
TRADE_PREFIX = b"trade/"
BOOK_BUY = b"book/buy/"
BOOK_SELL = b"book/sell/"


def order_key(seq: int) -> bytes:
    return b"order/%016d" % seq


def book_key(side: str, price_fen: int, seq: int) -> bytes:
    """Book entries in matching order: buys by highest price, sells by lowest, then by sequence (time)."""
    if side == "buy":
        return BOOK_BUY + b"%016d/%016d" % (PRICE_PAD_MAX - price_fen, seq)
    return BOOK_SELL + b"%016d/%016d" % (price_fen, seq)


def org_order_key(org: str, seq: int) -> bytes:
    return b"orgorder/" + org.encode() + b"/%016d" % seq


def org_order_prefix(org: str) -> bytes:
    return b"orgorder/" + org.encode() + b"/"


def trade_key(seq: int) -> bytes:
    return b"trade/%016d" % seq
