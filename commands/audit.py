"""`carbonchain audit`: verify what a node serves, trusting only the genesis file.

    audit verify  --node URL --genesis FILE   walk and re-execute the whole chain (audit/chain.py)
    audit history KEY --node URL              every version of a state key: height, transaction, signer
    audit proof   KEY --node URL --genesis F  a state proof checked against a certified header
    audit receipt FILE --genesis FILE         a retirement receipt (report retirement --out) checked offline

The checks live in audit/chain.py; this module only fetches, shows progress and prints verdicts.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import click

from audit import (
    AuditFailure,
    ChainAuditor,
    ProvenValue,
    decode_served_block,
    verify_key_proof,
    verify_receipt_document,
    verify_state_proof_document,
)
from audit.handovers import Handover, handover_heights
from client import ApiError, CarbonClient, CommitTimeout
from commands.common import echo_json
from commands.query import format_cell, format_table, node_option, run_async
from core.block import CertifiedBlock
from core.genesis import Genesis, load_genesis
from core.validators import ValidatorSet
from node.views import state_value_json

PREFETCH_BLOCKS = 16  # block downloads in flight while earlier blocks are verified
PROGRESS_INTERVAL_S = 0.5  # on a terminal; every PROGRESS_LOG_INTERVAL_S when stderr is a file
PROGRESS_LOG_INTERVAL_S = 5.0


def genesis_option() -> Any:
    return click.option(
        "--genesis",
        "genesis_path",
        default="genesis.json",
        show_default=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="The genesis file you trust (its validator set is the only authority).",
    )


def parse_state_key(text: str) -> bytes:
    """State keys as the API takes them: UTF-8 text, or hex with a 0x prefix."""
    if text.startswith("0x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            raise click.BadParameter("a state key after 0x must be hex") from None
    return text.encode("utf-8")


async def check_same_chain(client: CarbonClient, genesis: Genesis) -> dict[str, Any]:
    status = await client.status()
    if status.get("genesis_hash") != genesis.genesis_hash.hex():
        raise AuditFailure(
            0,
            "genesis",
            f"the node runs chain {status.get('chain_id')!r} with genesis hash {status.get('genesis_hash')}, "
            f"the genesis file is {genesis.chain_id!r} {genesis.genesis_hash.hex()}",
        )
    return status


async def fetch_certified_block(client: CarbonClient, genesis: Genesis, height: int) -> CertifiedBlock:
    try:
        raw = await client.block_bytes(height)
    except ApiError as exc:
        if exc.status == 0:
            raise
        raise AuditFailure(height, "block fetch", f"the node did not serve the block: {exc}") from None
    return decode_served_block(height, raw, tx_bytes_max=genesis.consensus.tx_bytes_max)


@click.group("audit")
def audit_group() -> None:
    """Verify the chain, state proofs and receipts independently of the node."""


# --- verify ------------------------------------------------------------------------------------------------


class Progress:
    """A progress line on stderr: rewritten in place on a terminal, one line every few seconds otherwise."""

    def __init__(self, stream: TextIO, target: int, *, enabled: bool) -> None:
        self.stream = stream
        self.target = target
        self.enabled = enabled
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.shown = 0.0

    def update(self, height: int, txs: int, *, final: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        interval = PROGRESS_INTERVAL_S if self.tty else PROGRESS_LOG_INTERVAL_S
        if not final and now - self.shown < interval:
            return
        self.shown = now
        elapsed = max(now - self.started, 1e-9)
        line = (
            f"verified {height}/{self.target} blocks, {txs} transactions "
            f"({height / elapsed:.1f} blocks/s, {txs / elapsed:.0f} tx/s)"
        )
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


@audit_group.command("verify")
@node_option()
@genesis_option()
@click.option("--to", "to_height", type=click.IntRange(1), default=None, help="Stop at this height.")
@click.option("--quiet", is_flag=True, help="No progress line.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def audit_verify(node: str, genesis_path: Path, to_height: int | None, quiet: bool, as_json: bool) -> None:
    """Walk the chain from genesis and re-execute every block; verdict and exit status 0 only if all holds.

    Checks hash links, transaction roots, every commit certificate against the genesis validator set, every
    transaction signature and admissibility, re-executes every block through the chaincode in a temporary
    store and compares every state and results root the validators certified, and the final state root with
    the node's. On the first discrepancy it names the height, the check and what differs.
    """
    genesis = load_genesis(genesis_path)
    started = time.monotonic()
    report = run_async(_verify_chain(node, genesis, to_height, Progress(sys.stderr, 0, enabled=not quiet)))
    report["seconds"] = round(time.monotonic() - started, 3)
    seconds = max(report["seconds"], 1e-9)
    report["blocks_per_s"] = round(report["blocks"] / seconds, 1)
    report["txs_per_s"] = round(report["txs"] / seconds, 1)
    if as_json:
        echo_json(report)
    else:
        _print_verdict(report)
    sys.exit(0 if report["ok"] else 1)


async def _verify_chain(
    node: str, genesis: Genesis, to_height: int | None, progress: Progress
) -> dict[str, Any]:
    from storage import Store  # plyvel only where a store is needed

    report: dict[str, Any] = {"ok": False, "chain_id": genesis.chain_id, "blocks": 0, "txs": 0}
    async with CarbonClient(node, timeout_s=120) as client:
        with tempfile.TemporaryDirectory(prefix="carbonchain-audit-") as tmp:
            store = Store.open(Path(tmp))
            auditor: ChainAuditor | None = None
            try:
                status = await check_same_chain(client, genesis)
                target = int(status["height"]) if to_height is None else min(to_height, int(status["height"]))
                progress.target = target
                auditor = ChainAuditor(genesis, store)
                await _walk(client, genesis, auditor, target, progress)
                progress.update(auditor.height, auditor.totals.txs, final=True)
                await _certify_tail(client, genesis, auditor, report)
                report["ok"] = True
            except AuditFailure as failure:
                report.update(failed_height=failure.height, failed_check=failure.check, detail=failure.detail)
            finally:
                if auditor is not None:
                    totals = auditor.totals
                    report.update(
                        height=auditor.height,
                        blocks=totals.blocks,
                        txs=totals.txs,
                        failed_txs=totals.failed_txs,
                        authorisation_refusals=totals.authorisation_refusals,
                        certified_height=totals.certified_height,
                        certifying_headers=totals.headers,
                        result_codes=dict(sorted(totals.codes.items())),
                        state_root=auditor.state_root.hex(),
                    )
                store.close()
    return report


async def _walk(
    client: CarbonClient, genesis: Genesis, auditor: ChainAuditor, target: int, progress: Progress
) -> None:
    """Verify blocks 1..target in order while up to PREFETCH_BLOCKS later ones download."""
    pending: dict[int, asyncio.Task[CertifiedBlock]] = {}
    next_fetch = 1
    try:
        for height in range(1, target + 1):
            while next_fetch <= target and next_fetch < height + PREFETCH_BLOCKS:
                pending[next_fetch] = asyncio.create_task(fetch_certified_block(client, genesis, next_fetch))
                next_fetch += 1
            certified = await pending.pop(height)
            auditor.verify_block(certified)
            progress.update(height, auditor.totals.txs)
            await asyncio.sleep(0)  # let downloads progress between CPU-bound blocks
    finally:
        for task in pending.values():
            task.cancel()
        await asyncio.gather(*pending.values(), return_exceptions=True)


async def _certify_tail(
    client: CarbonClient, genesis: Genesis, auditor: ChainAuditor, report: dict[str, Any]
) -> None:
    """The last pipeline_depth heights are certified by later headers, if the node has them by now."""
    status = await client.status()
    node_height = int(status["height"])
    last = min(node_height, auditor.height + genesis.consensus.pipeline_depth)
    for height in range(auditor.height + 1, last + 1):
        auditor.verify_certifying_header(await fetch_certified_block(client, genesis, height))
    if auditor.verify_final_state(node_height, str(status.get("state_root"))):
        report["final_state"] = f"matches the node's state root at height {node_height}"
    else:
        report["final_state"] = f"not compared (the node is at height {node_height})"


def _print_verdict(report: dict[str, Any]) -> None:
    lines = [
        f"chain {report['chain_id']}: verified {report.get('blocks', 0)} blocks with {report.get('txs', 0)} "
        f"transactions from genesis ({report.get('failed_txs', 0)} failed on chain, "
        f"{report.get('authorisation_refusals', 0)} of them refused for sender authorisation)",
    ]
    if "certified_height" in report:
        lines.append(
            "  hash links, transaction roots, commit certificates, signatures: checked for every block; "
            f"state and results roots certified up to height {report['certified_height']} match re-execution"
        )
    if report["ok"]:
        lines.append(f"  final state root {report.get('state_root')}: {report.get('final_state')}")
        lines.append(
            f"VERDICT: OK ({report['seconds']:.1f} s, {report['blocks_per_s']} blocks/s, {report['txs_per_s']} tx/s)"
        )
    else:
        lines.append(
            f"VERDICT: FAILED at height {report['failed_height']}: {report['failed_check']}: {report['detail']}"
        )
    click.echo("\n".join(lines))


# --- history -----------------------------------------------------------------------------------------------


@audit_group.command("history")
@click.argument("key")
@node_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def audit_history(key: str, node: str, as_json: bool) -> None:
    """Every version of state KEY (e.g. bal/ent-a/allowance): height, transaction, signer and value."""

    async def fetch() -> list[dict[str, Any]]:
        async with CarbonClient(node) as client:
            return await client.key_history_all(key)

    versions = run_async(fetch())
    if as_json:
        echo_json({"key": key, "versions": versions})
        return
    rows = []
    for version in versions:
        signer = version.get("signer") or {}
        rows.append(
            {
                "height": version["height"],
                "time (UTC)": format_block_time(version.get("time_ms")),
                "tx": "genesis" if version.get("tx_index") is None else version["tx_index"],
                "tx_id": version.get("tx_id") or "",
                "signer": signer.get("org", ""),
                "function": signer.get("function", ""),
                "value": "(deleted)" if version.get("deleted") else format_cell(version.get("value")),
            }
        )
    click.echo(f"{key}: {len(rows)} versions")
    click.echo(format_table(rows, ["height", "time (UTC)", "tx", "tx_id", "signer", "function", "value"]))


def format_block_time(time_ms: int | None) -> str:
    """A block time to the second, UTC: `2026-03-01 09:30:12`."""
    if time_ms is None:
        return ""
    return datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


# --- proofs ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyProof:
    proven: ProvenValue
    document: dict[str, Any]  # the node's proof document
    certified: CertifiedBlock  # the block whose header certifies the proof's root
    handovers: list[Handover]  # the validator-set changes before it, from the genesis set


async def fetch_handovers(client: CarbonClient, genesis: Genesis, below: int) -> list[Handover]:
    """The handovers of every set that ended below height `below` (none while the genesis set is in force):
    the node says at which heights; each header and certificate is then checked (audit/handovers.py)."""
    view = await client.query("validators")
    handovers = []
    for last, members in handover_heights(view["history"], below):
        certified = await fetch_certified_block(client, genesis, last)
        try:
            next_set = ValidatorSet(tuple((int(number), bytes.fromhex(key)) for number, key in members))
        except ValueError as exc:
            raise AuditFailure(
                last, "validator-set handover", f"the node's set is malformed: {exc}"
            ) from None
        handovers.append(Handover(certified.block.header, certified.certificate, next_set))
    return handovers


async def prove_key(
    client: CarbonClient, genesis: Genesis, key: bytes, key_text: str, *, timeout_s: float
) -> KeyProof:
    """Fetch a key's proof, check it, wait (bounded) for the block that certifies its root and check that
    against the set in force at its height."""
    await check_same_chain(client, genesis)
    document = await client.key_proof(key_text)
    height, _, _ = verify_state_proof_document(key, document)
    certified_by = int(document["certified_by_height"])
    try:
        await client.wait_for_height(certified_by, timeout_s=timeout_s)
    except CommitTimeout:
        raise CommitTimeout(
            f"the proof is against the state at height {height}, which block {certified_by} certifies, and the "
            f"node has not committed that block within {timeout_s:.0f} s (blocks are made only when transactions "
            "arrive): retry after more transactions, or pass a longer --timeout"
        ) from None
    certified = await fetch_certified_block(client, genesis, certified_by)
    handovers = []
    if certified.block.header.validators_hash != genesis.validator_set.set_hash:
        handovers = await fetch_handovers(client, genesis, certified_by)
    proven = verify_key_proof(genesis, key, document, certified, handovers)
    return KeyProof(proven, document, certified, handovers)


@audit_group.command("proof")
@click.argument("key")
@node_option()
@genesis_option()
@click.option(
    "--timeout",
    "timeout_s",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0, 3600),
    help="Seconds to wait for the block that certifies the proof's state root.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def audit_proof(key: str, node: str, genesis_path: Path, timeout_s: float, as_json: bool) -> None:
    """Fetch state KEY's proof and check it against a header certified by the validators in force at its height
    (the genesis set, or the sets the chain's handovers prove from it)."""
    genesis = load_genesis(genesis_path)

    async def prove() -> KeyProof:
        async with CarbonClient(node) as client:
            return await prove_key(client, genesis, parse_state_key(key), key, timeout_s=timeout_s)

    proof = run_async(prove())
    proven, certified = proof.proven, proof.certified
    header = proven.certified_by
    result = {
        "key": key,
        "present": proven.value is not None,
        "value": state_value_json(proven.value),
        "state_height": proven.state_height,
        "state_root": proven.state_root.hex(),
        "certified_by_height": header.height,
        "certified_by_block": header.block_hash.hex(),
        "certificate_votes": len(certified.certificate.votes),
        "validators": proof.handovers[-1].next_set.n if proof.handovers else len(genesis.validators),
        "validator_set_changes": len(proof.handovers),
        "verified": True,
    }
    if as_json:
        echo_json(result)
        return
    shown = "absent (proven)" if proven.value is None else format_cell(result["value"], limit=None)
    click.echo(f"key:          {key}")
    click.echo(f"value:        {shown}")
    click.echo(f"state root:   {result['state_root']} (state at height {proven.state_height})")
    click.echo(
        f"certified by: block {header.height} {result['certified_by_block']}, "
        f"{result['certificate_votes']} of {result['validators']} validators signed"
    )
    click.echo("VERDICT: OK (the proof leads to the root a certified header commits to)")


@audit_group.command("receipt")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@genesis_option()
def audit_receipt(path: Path, genesis_path: Path) -> None:
    """Verify a retirement receipt file (from `report retirement --out`) offline, with the genesis file only."""
    import json

    genesis = load_genesis(genesis_path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from None
    record = verify_receipt_document(genesis, document)
    click.echo(
        f"receipt {record.get('id')}: {record.get('quantity_t')} t retired by {record.get('org')} for "
        f"{record.get('beneficiary')!r}, serials {record.get('serial')}"
    )
    click.echo(
        f"VERDICT: OK (proven in the state at height {document['state_height']}, certified by "
        f"{len(genesis.validators)}-validator genesis {genesis.genesis_hash.hex()[:16]}…)"
    )
