"""`carbonchain status`, `carbonchain block`, `carbonchain tx show`: what a node says about itself and the chain.

status [--json]               the node: chain, height, view, peers, checkpoint, and whether it is ready
                              (exit 0 ready, 1 not ready or unreachable; the reason is printed)
block <height|latest> [--json]  a committed block: header, certificate, transactions with results
tx show <tx id> [--json]      a transaction: pending, or committed with its block, result and events
                              (exit 0 committed ok, 1 failed on chain or unknown, 3 still pending)
"""

from __future__ import annotations

import sys
from typing import Any

import click

from client import ApiError, CarbonClient
from commands.common import echo_json
from commands.query import format_cell, format_table, node_option, run_async
from core.units import format_time_ms

EXIT_PENDING = 3


def short(hex_text: str | None, chars: int = 16) -> str:
    return "" if not hex_text else hex_text[:chars] + "…"


@click.command("status")
@node_option()
@click.option("--json", "as_json", is_flag=True, help="Print the status and readiness as JSON.")
def status_command(node: str, as_json: bool) -> None:
    """The node's status: chain, height, view and primary, links, checkpoint, and whether it is ready.

    Exit status 0 when the node is ready (GET /readyz), 1 when it is not (the reason is printed) or
    cannot be reached.
    """

    async def fetch() -> tuple[dict[str, Any], dict[str, Any]]:
        async with CarbonClient(node) as client:
            return await client.status(), await client.readiness()

    status, ready = run_async(fetch())
    if as_json:
        echo_json({"status": status, "ready": ready})
    else:
        click.echo(format_status(status, ready))
    sys.exit(0 if ready["ready"] else 1)


def format_status(status: dict[str, Any], ready: dict[str, Any]) -> str:
    lines = [
        f"{status['node_id']} ({status['role']}) on chain {status['chain_id']}, genesis {short(status['genesis_hash'])}",
        f"height {status['height']}, last block {short(status['last_block_hash']) or '(none)'}, "
        f"state root {short(status['state_root'])}",
    ]
    if status["role"] == "validator":
        lines.append(f"view {status['view']}, primary validator-{status['primary']}")
    lines.append(
        f"{status['peers']} peers linked, {status['mempool_txs']} transactions pending"
        + (", catching up" if status["catching_up"] else "")
    )
    checkpoint = status.get("checkpoint")
    if checkpoint is not None:
        stable = checkpoint["stable_height"]
        where = f"height {stable} (root {short(checkpoint['stable_state_root'])})" if stable else "none yet"
        lines.append(
            f"checkpoint: {where}, every {checkpoint['interval']} blocks; {checkpoint['log_records']} "
            "consensus log records kept"
        )
    for peer, why in status.get("unlinked_peers", {}).items():
        lines.append(f"not linked to {peer}: {why}")
    if status.get("halted"):
        lines.append(f"HALTED: {status['halted']}")
    lines.append("ready: yes" if ready["ready"] else f"ready: no: {ready['reason']}")
    return "\n".join(lines)


@click.command("block")
@click.argument("height", metavar="HEIGHT|latest")
@node_option()
@click.option("--json", "as_json", is_flag=True, help="Print the block as the API returns it.")
def block_command(height: str, node: str, as_json: bool) -> None:
    """A committed block: header, commit certificate and every transaction with its result."""
    if height != "latest" and (not height.isdigit() or int(height) < 1):
        raise click.BadParameter("a height (1, 2, ...) or 'latest'", param_hint="HEIGHT")

    async def fetch() -> dict[str, Any]:
        async with CarbonClient(node) as client:
            try:
                return await client.block(None if height == "latest" else int(height))
            except ApiError as exc:
                if exc.status != 404:
                    raise
                tip = (await client.status())["height"]
                what = "no block committed yet" if tip == 0 else f"the chain is at height {tip}"
                raise ApiError(404, "not_found", f"no block {height}: {what}") from None

    block = run_async(fetch())
    if as_json:
        echo_json(block)
    else:
        click.echo(format_block(block))


def format_block(block: dict[str, Any]) -> str:
    header = block["header"]
    certificate = block.get("certificate")
    lines = [
        f"block {block['height']}  {block['hash']}",
        f"  time:         {format_time_ms(header['time_ms'])} ({header['time_ms']} ms)",
        f"  proposer:     validator-{header['proposer']}",
        f"  previous:     {header['prev_hash']}",
        f"  tx root:      {header['tx_root']} ({header['tx_count']} transactions)",
        f"  certifies:    state of height {header['state_height']}: root {header['state_root']}",
        f"  state after:  {block['state_root_after']}",
    ]
    if certificate is not None:
        signers = ", ".join(str(vote["validator"]) for vote in certificate["votes"])
        lines.append(f"  certificate:  view {certificate['view']}, signed by validators {signers}")
    rows = [
        {
            "index": index,
            "tx_id": tx["tx_id"],
            "sender": tx["sender_org"],
            "function": tx["function"],
            "code": tx["result"]["code"],
        }
        for index, tx in enumerate(block["txs"])
    ]
    if rows:
        lines += ["", format_table(rows)]
    return "\n".join(lines)


@click.command("show")
@click.argument("tx_id")
@node_option()
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON: the status, and once committed the transaction."
)
def tx_show(tx_id: str, node: str, as_json: bool) -> None:
    """Look a transaction up by id: pending, or committed with block, result, events, sender and arguments.

    Exit status 0 when it committed with code ok, 1 when it failed on chain or the node does not know it,
    3 while it is pending.
    """
    tx_id = tx_id.strip().lower()

    async def fetch() -> dict[str, Any]:
        async with CarbonClient(node) as client:
            status = await client.get_transaction(tx_id)
            document: dict[str, Any] = {"tx_id": tx_id, "status": status.status}
            if status.is_committed and status.height is not None and status.index is not None:
                block = await client.block(status.height)
                document.update(
                    height=status.height,
                    index=status.index,
                    time_ms=block["header"]["time_ms"],
                    code=status.code,
                    message=status.message,
                    transaction=block["txs"][status.index],
                )
            return document

    document = run_async(fetch())
    if as_json:
        echo_json(document)
    else:
        click.echo(format_tx(document))
    if document["status"] == "pending":
        sys.exit(EXIT_PENDING)
    sys.exit(0 if document.get("code") == "ok" else 1)


def format_tx(document: dict[str, Any]) -> str:
    tx_id = document["tx_id"]
    if document["status"] == "pending":
        return f"tx {tx_id}: pending (accepted, not committed yet; `carbonchain tx show` again later)"
    if document["status"] != "committed":
        return (
            f"tx {tx_id}: unknown to this node (neither pending here nor committed); if it was just "
            "submitted elsewhere, ask that node, or check the id"
        )
    tx = document["transaction"]
    verdict = "ok" if document["code"] == "ok" else f"FAILED: {document['code']}: {document['message']}"
    lines = [
        f"tx {tx_id}: committed at height {document['height']} (index {document['index']}) at "
        f"{format_time_ms(document['time_ms'])}: {verdict}",
        f"  function:   {tx['function']} ({tx['chaincode']})",
        f"  sender:     {tx['sender_org']}, key {tx['sender_key']}",
        f"  valid:      until height {tx['valid_until']} (nonce {tx['nonce']})",
    ]
    for name, value in tx["args"].items():
        lines.append(f"  arg {name}: {format_cell(value, limit=None)}")
    for event in tx["result"]["events"]:
        attrs = " ".join(f"{k}={format_cell(v, limit=None)}" for k, v in event.items() if k != "type")
        lines.append(f"  event {event.get('type')}: {attrs}")
    return "\n".join(lines)
