"""`carbonchain tx submit-file FILE`: submit many transactions at once, in batches of 100 per request.

FILE holds JSON Lines: one JSON object per line (blank lines and lines starting with `#` are skipped), each
either a call to sign here with --key and --as, or a transaction someone already signed (the JSON form of
docs/protocol/core.md §5.5, e.g. from another organisation's offline signer):

    {"function": "transfer_allowances", "args": {"to": "ent-b", "amount": 5}}
    {"body": {"chain_id": ..., "nonce": ..., ...}, "signature": "..."}

The whole file is read and checked first (JSON, the function's argument spec, the transaction's encoding),
so a bad line fails the command with `FILE:LINE: what is wrong` before anything is sent. Then the
transactions go out in order, 100 per request (POST /v1/txs with a msgpack array), and each line gets the
node's answer: accepted, or the rejection code and message. With --wait the command then waits for every
accepted transaction's commit.

Exit status: 0 when every transaction was accepted (with --wait: committed with code "ok"); 1 otherwise.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from chaincode import FUNCTIONS
from chaincode.base import validate_arg_map
from client import DEFAULT_VALIDITY_BLOCKS, CarbonClient, CommitTimeout
from client.carbon_client import BATCH_MAX, Signer
from commands.common import echo_json, open_key, passphrase_file_option
from commands.query import node_option, run_async
from core.errors import CarbonchainError
from core.tx import SignedTx, TransactionError, transaction_from_json

FILE_BYTES_MAX = 64 * 1024 * 1024
LINES_MAX = 100_000


class BadFile(CarbonchainError):
    """The file cannot be submitted as it is: names the line."""


@dataclass(frozen=True, slots=True)
class Call:
    """A line that asks for a transaction to be signed here."""

    line: int
    function: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Presigned:
    line: int
    tx: SignedTx


Entry = Call | Presigned


def read_entries(path: Path) -> list[Entry]:
    """Every transaction line of the file, checked; BadFile names the first bad line."""
    try:
        size = path.stat().st_size
        if size > FILE_BYTES_MAX:
            raise BadFile(f"{path}: {size} bytes, more than the limit of {FILE_BYTES_MAX}")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadFile(f"{path}: cannot read it: {exc}") from None
    entries: list[Entry] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if len(entries) == LINES_MAX:
            raise BadFile(f"{path}:{number}: more than {LINES_MAX} transactions in one file")
        entries.append(_parse_line(f"{path}:{number}", number, stripped))
    if not entries:
        raise BadFile(f"{path}: no transactions in the file")
    return entries


def _parse_line(where: str, number: int, text: str) -> Entry:
    try:
        document = json.loads(text, parse_float=_refuse_float, parse_constant=_refuse_float)
    except ValueError as exc:
        raise BadFile(f"{where}: not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadFile(f"{where}: a line is a JSON object")
    if set(document) == {"body", "signature"}:
        try:
            return Presigned(number, transaction_from_json(document))
        except TransactionError as exc:
            raise BadFile(f"{where}: {exc}") from None
    if set(document) - {"function", "args"} or "function" not in document:
        raise BadFile(
            f'{where}: a line is {{"function", "args"}} or a signed transaction {{"body", "signature"}}'
        )
    function, args = document["function"], document.get("args", {})
    spec = FUNCTIONS.get(function) if isinstance(function, str) else None
    if spec is None:
        raise BadFile(f"{where}: unknown function {function!r}")
    if not isinstance(args, dict):
        raise BadFile(f"{where}: args is a JSON object")
    try:
        validate_arg_map(spec.name, spec.args, args)
    except CarbonchainError as exc:
        raise BadFile(f"{where}: {exc}") from None
    return Call(number, function, args)


def _refuse_float(text: str) -> Any:
    raise ValueError(f"{text} is not an integer (amounts are integers in the smallest unit)")


def sign_entries(entries: list[Entry], signer: Signer | None) -> list[SignedTx]:
    txs = []
    for entry in entries:
        if isinstance(entry, Presigned):
            txs.append(entry.tx)
        else:
            assert signer is not None  # the command asks for a key when a line needs one
            txs.append(signer.build(entry.function, entry.args))
    return txs


@click.command("submit-file")
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--key",
    "key_path",
    envvar="CARBONCHAIN_KEY",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Signing key file for the lines to sign here (or $CARBONCHAIN_KEY).",
)
@click.option("--as", "sender", envvar="CARBONCHAIN_ORG", help="The organisation the key is enrolled for.")
@passphrase_file_option()
@node_option()
@click.option("--wait", is_flag=True, help="Wait for every accepted transaction's commit.")
@click.option(
    "--timeout",
    "timeout_s",
    default=120.0,
    show_default=True,
    type=click.FloatRange(0.1, 86_400),
    help="Seconds to wait for all commits (with --wait).",
)
@click.option(
    "--validity-blocks",
    default=DEFAULT_VALIDITY_BLOCKS,
    show_default=True,
    type=click.IntRange(1, 10**6),
    help="Transactions signed here may be included up to this many blocks from now.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document with a result per line.")
def submit_file(
    path: Path,
    key_path: Path | None,
    sender: str | None,
    passphrase_file: Path | None,
    node: str,
    wait: bool,
    timeout_s: float,
    validity_blocks: int,
    as_json: bool,
) -> None:
    """Submit the transactions of a JSON Lines file, 100 per request (see `carbonchain tx submit-file
    --help` and docs/TUTORIAL.md)."""
    entries = read_entries(path)
    needs_key = any(isinstance(entry, Call) for entry in entries)
    if needs_key and (key_path is None or sender is None):
        raise click.UsageError("lines with a function are signed here: pass --key FILE and --as ORG")
    key = open_key(key_path, passphrase_file) if needs_key and key_path is not None else None

    async def run() -> int:
        async with CarbonClient(node) as client:
            signer = None
            if key is not None and sender is not None:
                signer = await client.signer(org=sender, key=key, validity_blocks=validity_blocks)
            txs = sign_entries(entries, signer)
            submissions = await client.submit_many(txs, batch_max=BATCH_MAX)
            results: list[dict[str, Any]] = [
                {"line": entry.line, "tx_id": s.tx_id, "status": "pending" if s.accepted else "rejected"}
                | ({} if s.accepted else {"code": s.error, "message": s.message})
                for entry, s in zip(entries, submissions, strict=True)
            ]
            if wait:
                await _wait_for_commits(client, results, timeout_s)
            _print(results, as_json=as_json, waited=wait)
            wanted = "committed" if wait else "pending"
            return 0 if all(r["status"] == wanted and r.get("code", "ok") == "ok" for r in results) else 1

    sys.exit(run_async(run()))


async def _wait_for_commits(client: CarbonClient, results: list[dict[str, Any]], timeout_s: float) -> None:
    pending = [r["tx_id"] for r in results if r["status"] == "pending"]
    try:
        statuses = await client.wait_for_commits(pending, timeout_s=timeout_s)
    except CommitTimeout:  # say which did commit
        statuses = {}
        for tx_id in pending:
            status = await client.get_transaction(tx_id)
            if status.is_committed:
                statuses[tx_id] = status
    for result in results:
        final = statuses.get(result["tx_id"])
        if final is not None and result["status"] == "pending":
            result.update(status="committed", height=final.height, code=final.code, message=final.message)


def _print(results: list[dict[str, Any]], *, as_json: bool, waited: bool) -> None:
    if as_json:
        echo_json({"results": results})
        return
    counts: dict[str, int] = {}
    for r in results:
        where = f"line {r['line']}: tx {r['tx_id']}"
        if r["status"] == "rejected":
            click.echo(f"{where}: rejected: {r['code']}: {r['message']}")
        elif r["status"] == "committed":
            outcome = "ok" if r["code"] == "ok" else f"FAILED: {r['code']}: {r['message']}"
            click.echo(f"{where}: committed at height {r['height']}: {outcome}")
        elif waited:
            click.echo(f"{where}: not committed in time (still pending)")
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    click.echo(f"{len(results)} transactions: {summary}")
