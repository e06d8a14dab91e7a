"""Offset projects and serialised offsets: issuance, transfer, split, surrender, retirement, freeze, cancel.

Every issuance takes a fresh range of global serial numbers, so serials never overlap across projects. A
serial block is a record for a consecutive range [first, last] with one holder and one status:
  active (held, may move) | buffer (withheld at issuance) | surrendered | retired | cancelled (final).
Blocks are keyed by their LAST serial (`offset/<last>`), so the block holding serial s is the first key at
or after s: one seek, no reverse iteration. Operations name an exact serial range [first, last] inside one
block; the block is cut into at most three pieces that exactly partition it (never just counts that add
up), and only the middle piece changes. Pieces are never merged back.

Verra-style serial string of a block: <issuance>-<first>-<last>-<standard>-<project>-<vintage>.
"""

from __future__ import annotations

from typing import Any

from chaincode import schema
from chaincode.compliance import require_surrender_window
from chaincode.context import TxContext
from chaincode.ledger import (
    Code,
    add_supply,
    fail,
    get_params,
    next_counter,
    put_comp,
    require_org_role,
    require_unrestricted,
)
from core.genesis import Role

HOLDER_ROLES = (Role.ENTERPRISE.value, Role.OFFSET_DEVELOPER.value)


def compute_serial_string(block: dict[str, Any]) -> str:
    return (
        f"{block['issuance']}-{block['first']}-{block['last']}-{block['standard']}-"
        f"{block['project']}-{block['vintage']}"
    )


def find_block(ctx: TxContext, serial: int) -> dict[str, Any]:
    """The block holding `serial`; fails with unknown_serial when no block does."""
    for _, record in ctx.iterate_records(schema.OFFSET_PREFIX, start_after=schema.offset_key(serial - 1)):
        if record["first"] <= serial:
            return record
        break
    fail(Code.UNKNOWN_SERIAL, f"no offset block holds serial {serial}")


def put_block(ctx: TxContext, block: dict[str, Any]) -> None:
    ctx.put_record(schema.offset_key(block["last"]), block)
    if block["status"] == "active":
        ctx.put(schema.holding_key(block["holder"], block["last"]), schema.EMPTY_MAP)


def remove_block(ctx: TxContext, block: dict[str, Any]) -> None:
    ctx.delete(schema.offset_key(block["last"]))
    if block["status"] == "active":
        ctx.delete(schema.holding_key(block["holder"], block["last"]))


def find_range(ctx: TxContext, first: int, last: int) -> dict[str, Any]:
    if last < first:
        fail(Code.RANGE_NOT_IN_BLOCK, f"last serial {last} is below first serial {first}")
    block = find_block(ctx, first)
    if last > block["last"]:
        fail(Code.RANGE_NOT_IN_BLOCK, f"serials {first}..{last} are not inside one block")
    return block


def carve(ctx: TxContext, block: dict[str, Any], first: int, last: int) -> dict[str, Any]:
    """Cut [first, last] out of `block`: writes the untouched pieces, returns the middle piece (unwritten)."""
    remove_block(ctx, block)
    if block["first"] < first:
        put_block(ctx, {**block, "last": first - 1})
    if last < block["last"]:
        put_block(ctx, {**block, "first": last + 1})
    return {**block, "first": first, "last": last}


def require_movable(ctx: TxContext, block: dict[str, Any], owner: str) -> None:
    if block["status"] != "active":
        fail(Code.SERIAL_FINAL, f"serials {block['first']}..{block['last']} are {block['status']}")
    if block["holder"] != owner:
        fail(Code.NOT_HOLDER, f"{owner!r} does not hold serials {block['first']}..{block['last']}")
    if block["frozen"]:
        fail(Code.SERIAL_FROZEN, f"serials {block['first']}..{block['last']} are frozen")
    require_not_held(block)


def require_not_held(block: dict[str, Any]) -> None:
    if block["held"] is not None:
        fail(
            Code.SERIAL_HELD,
            f"serials {block['first']}..{block['last']} are held by four-eyes request {block['held']}",
        )


# --- projects and issuance -----------------------------------------------------------------------------------


def apply_register_project(ctx: TxContext, args: dict[str, Any]) -> None:
    project, developer = args["project"], args["developer"]
    if ctx.sender_role == Role.OFFSET_DEVELOPER.value and developer != ctx.sender_org:
        fail(Code.FORBIDDEN, "an offset developer registers projects only for itself")
    require_org_role(ctx, developer, (Role.OFFSET_DEVELOPER.value,))
    if ctx.get(schema.project_key(project)) is not None:
        fail(Code.PROJECT_EXISTS, f"project {project!r} is already registered")
    record = {
        "id": project,
        "developer": developer,
        "name": args["name"],
        "methodology": args["methodology"],
        "standard": args["standard"],
        "registered_height": ctx.height,
        "issuances": 0,
    }
    ctx.put_record(schema.project_key(project), record)
    ctx.emit("project_registered", project=project, org=developer)


def apply_issue_offsets(ctx: TxContext, args: dict[str, Any]) -> None:
    project_id = args["project"]
    project = ctx.get_record(schema.project_key(project_id))
    if project is None:
        fail(Code.UNKNOWN_PROJECT, f"project {project_id!r} is not registered")
    start, end = args["monitoring_start_ms"], args["monitoring_end_ms"]
    if start >= end:
        fail(Code.BAD_AMOUNT, "monitoring_start_ms must be before monitoring_end_ms")
    for _, issued in ctx.iterate_records(schema.issuance_prefix(project_id)):
        if issued["monitoring_start_ms"] < end and start < issued["monitoring_end_ms"]:
            fail(
                Code.OVERLAPPING_ISSUANCE,
                f"monitoring period overlaps issuance {issued['id']} of project {project_id!r}",
            )
    params = get_params(ctx)
    if project["issuances"] >= params["issuances_per_project_max"]:
        fail(Code.LIMIT_EXCEEDED, f"at most {params['issuances_per_project_max']} issuances per project")
    amount = args["amount_t"]
    buffer_bps = args["buffer_bps"] if args["buffer_bps"] is not None else params["buffer_bps"]
    buffer = amount * buffer_bps // 10_000  # rounded down: the developer never gets less than its share
    issuance_id = next_counter(ctx, schema.COUNTER_ISSUANCE)
    first = next_counter(ctx, schema.COUNTER_SERIAL, amount)
    common = {
        "issuance": issuance_id,
        "project": project_id,
        "vintage": args["vintage"],
        "standard": project["standard"],
        "frozen": False,
        "held": None,
        "period": None,
        "receipt": None,
    }
    if amount > buffer:
        put_block(
            ctx,
            {
                **common,
                "first": first,
                "last": first + amount - buffer - 1,
                "holder": project["developer"],
                "status": "active",
            },
        )
    if buffer:
        put_block(
            ctx,
            {
                **common,
                "first": first + amount - buffer,
                "last": first + amount - 1,
                "holder": "",
                "status": "buffer",
            },
        )
    ctx.put_record(
        schema.issuance_key(project_id, start),
        {
            "id": issuance_id,
            "project": project_id,
            "vintage": args["vintage"],
            "monitoring_start_ms": start,
            "monitoring_end_ms": end,
            "amount_t": amount,
            "buffer_t": buffer,
            "first": first,
            "last": first + amount - 1,
            "height": ctx.height,
        },
    )
    project["issuances"] += 1
    ctx.put_record(schema.project_key(project_id), project)
    add_supply(ctx, schema.SUPPLY_OFFSET, "issued", amount)
    add_supply(ctx, schema.SUPPLY_OFFSET, "buffer", buffer)
    ctx.emit(
        "offsets_issued",
        project=project_id,
        org=project["developer"],
        issuance=issuance_id,
        first=first,
        last=first + amount - 1,
        buffer_t=buffer,
    )


# --- holder operations ---------------------------------------------------------------------------------------


def apply_transfer_offsets(ctx: TxContext, args: dict[str, Any]) -> None:
    first, last, to = args["first"], args["last"], args["to"]
    if to == ctx.sender_org:
        fail(Code.SELF_TRANSFER, "cannot transfer to yourself")
    require_unrestricted(require_org_role(ctx, to, HOLDER_ROLES))
    block = find_range(ctx, first, last)
    require_movable(ctx, block, ctx.sender_org)
    piece = carve(ctx, block, first, last)
    piece["holder"] = to
    put_block(ctx, piece)
    ctx.emit("offsets_transferred", first=first, last=last, to=to, quantity_t=last - first + 1)


def apply_split_offsets(ctx: TxContext, args: dict[str, Any]) -> None:
    first, last = args["first"], args["last"]
    block = find_range(ctx, first, last)
    require_movable(ctx, block, ctx.sender_org)
    if block["first"] == first and block["last"] == last:
        fail(Code.BAD_SPLIT, f"serials {first}..{last} already form a whole block")
    put_block(ctx, carve(ctx, block, first, last))
    ctx.emit("offsets_split", first=first, last=last)


def apply_retire_offsets(ctx: TxContext, args: dict[str, Any]) -> None:
    first, last, org = args["first"], args["last"], ctx.sender_org
    block = find_range(ctx, first, last)
    require_movable(ctx, block, org)
    piece = carve(ctx, block, first, last)
    receipt_id = ctx.tx_id.hex()
    piece["status"] = "retired"
    piece["receipt"] = receipt_id
    put_block(ctx, piece)
    quantity = last - first + 1
    ctx.put_record(
        schema.retire_key(receipt_id),
        {
            "id": receipt_id,
            "org": org,
            "beneficiary": args["beneficiary"],
            "reason": args["reason"],
            "first": first,
            "last": last,
            "quantity_t": quantity,
            "serial": compute_serial_string(piece),
            "project": piece["project"],
            "vintage": piece["vintage"],
            "standard": piece["standard"],
            "issuance": piece["issuance"],
            "height": ctx.height,
            "time_ms": ctx.block_time_ms,
            "tx_id": receipt_id,
        },
    )
    add_supply(ctx, schema.SUPPLY_OFFSET, "retired", quantity)
    ctx.emit("offsets_retired", org=org, receipt=receipt_id, first=first, last=last, quantity_t=quantity)


def apply_surrender_offsets(ctx: TxContext, args: dict[str, Any]) -> None:
    period_id, first, last, org = args["period"], args["first"], args["last"], ctx.sender_org
    period, comp = require_surrender_window(ctx, period_id, org)
    if comp["verified_t"] is None:
        fail(Code.NO_VERIFIED_EMISSIONS, "offsets count against verified emissions; none are verified yet")
    block = find_range(ctx, first, last)
    require_movable(ctx, block, org)
    quantity = last - first + 1
    cap = comp["verified_t"] * period["offset_cap_bps"] // 10_000
    if comp["surrendered_offsets_t"] + quantity > cap:
        fail(
            Code.OFFSET_CAP_EXCEEDED,
            f"offsets would reach {comp['surrendered_offsets_t'] + quantity} t, the cap is {cap} t "
            f"({period['offset_cap_bps']} bps of {comp['verified_t']} t verified)",
        )
    piece = carve(ctx, block, first, last)
    piece["status"] = "surrendered"
    piece["period"] = period_id
    put_block(ctx, piece)
    comp["surrendered_offsets_t"] += quantity
    put_comp(ctx, comp)
    add_supply(ctx, schema.SUPPLY_OFFSET, "surrendered", quantity)
    ctx.emit("offsets_surrendered", period=period_id, org=org, first=first, last=last, quantity_t=quantity)


# --- regulator operations ------------------------------------------------------------------------------------


def apply_freeze_offsets(ctx: TxContext, args: dict[str, Any]) -> None:
    _set_frozen(ctx, args, True)


def apply_unfreeze_offsets(ctx: TxContext, args: dict[str, Any]) -> None:
    _set_frozen(ctx, args, False)


def _set_frozen(ctx: TxContext, args: dict[str, Any], frozen: bool) -> None:
    first, last = args["first"], args["last"]
    block = find_range(ctx, first, last)
    if block["status"] not in ("active", "buffer"):
        fail(Code.SERIAL_FINAL, f"serials {first}..{last} are {block['status']}")
    piece = carve(ctx, block, first, last)
    piece["frozen"] = frozen
    put_block(ctx, piece)
    ctx.emit(
        "offsets_frozen" if frozen else "offsets_unfrozen", first=first, last=last, reason=args["reason"]
    )


def apply_cancel_offsets(ctx: TxContext, args: dict[str, Any]) -> None:
    """Regulator cancels held or buffer serials (e.g. invalid issuance, or a reversal drawn on the buffer)."""
    first, last = args["first"], args["last"]
    block = find_range(ctx, first, last)
    if block["status"] not in ("active", "buffer"):
        fail(Code.SERIAL_FINAL, f"serials {first}..{last} are {block['status']}")
    require_not_held(block)  # a request holds them: it must end first (a final block never changes)
    was_buffer = block["status"] == "buffer"
    piece = carve(ctx, block, first, last)
    piece["status"] = "cancelled"
    put_block(ctx, piece)
    quantity = last - first + 1
    if was_buffer:
        add_supply(ctx, schema.SUPPLY_OFFSET, "buffer", -quantity)
    add_supply(ctx, schema.SUPPLY_OFFSET, "cancelled", quantity)
    ctx.emit("offsets_cancelled", first=first, last=last, quantity_t=quantity, reason=args["reason"])
