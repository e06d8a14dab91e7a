"""Build the conformance chain of conformance.script and write or check docs/protocol/vectors/.

    python -m conformance.vectors --write     regenerate the files
    python -m conformance.vectors --check     exit 1 unless the files are what the chaincode computes today

The chain is built the way validators build one: each block's header links to the previous one, carries
the roots of the height `pipeline_depth` below it and names the validator sets in force at its height and
the next (the genesis set, then the five validators the script's governance adds: consensus.membership
over the changes the chaincode approves); the development keys of the lowest-numbered members of its set
(a quorum) sign its commit certificate in view 0; transactions are signed with the organisations'
development keys; everything is deterministic (Ed25519 signatures are), so the files regenerate byte for
byte. After the script's blocks come empty blocks until the new set has certified a block and a header
certifies the roots of every height that changed state.

Files (docs/protocol/vectors/README.md describes them for implementers): genesis.json; chain.json (the
genesis hash and the roots of every height); blocks/NNNN.msgpack, the certified block bytes of each height
(what GET /v1/blocks/{h}?format=msgpack serves); heights/NNNN.json per height with the results (code and
events), the roots and the full state after it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaincode import build_registry, execute_block, genesis_writes, get_validator_change
from chaincode.carbon import check_result
from chaincode.schema import check_state_entry
from conformance.genesis import make_genesis_document
from conformance.script import build_script
from conformance.script_blocks import Call, ScriptBlock
from consensus.membership import Membership
from core.block import (
    EMPTY_ROOT,
    Block,
    BlockHeader,
    CertifiedBlock,
    CommitCertificate,
    TxResult,
    compute_commit_digest,
    compute_results_root,
    compute_tx_root,
    encode_certified_block,
)
from core.devkeys import dev_admin_key, dev_client_key, dev_node_key
from core.errors import InvariantBroken
from core.genesis import Genesis, parse_genesis
from core.state import DictState
from core.tx import SignedTx, TxBody, sign_transaction
from core.validators import ValidatorSet
from storage.trie import compute_state_root

VECTORS_DIR = Path(__file__).resolve().parents[1] / "docs" / "protocol" / "vectors"
VALID_FOR_BLOCKS = 100


@dataclass(frozen=True)
class Height:
    """Everything about one height of the conformance chain."""

    height: int
    certified: CertifiedBlock | None  # None for height 0 (genesis)
    calls: tuple[Call, ...]  # the script's calls of this block (empty for genesis and trailing blocks)
    state: dict[bytes, bytes]  # the full state after this height
    state_root: bytes
    results_root: bytes


def sign_call(call: Call, nonce: int) -> SignedTx:
    if call.key == "admin":
        key = dev_admin_key(call.org)
    elif call.key.startswith("node-"):
        key = dev_node_key("validator", int(call.key.removeprefix("node-")))
    else:
        key = dev_client_key(call.org, int(call.key.removeprefix("client-")))
    body = TxBody(
        chain_id=make_genesis_document()["chain_id"],
        chaincode=call.chaincode,
        function=call.function,
        args=call.args,
        sender_org=call.org,
        sender_key=key.public_key,
        nonce=nonce,
        valid_until=VALID_FOR_BLOCKS,
    )
    return sign_transaction(body, key)


def build_chain() -> tuple[Genesis, list[Height]]:
    """The genesis and every height of the chain; refuses a call whose result code is not the expected one."""
    genesis = parse_genesis(make_genesis_document())
    registry = build_registry()
    depth = genesis.consensus.pipeline_depth
    state = DictState({k: v for k, v in genesis_writes(genesis, registry).items() if v is not None})
    root = compute_state_root(state.items().items())
    heights = [Height(0, None, (), state.items(), root, EMPTY_ROOT)]
    committed: set[bytes] = set()
    previous_hash = genesis.genesis_hash
    script: list[ScriptBlock] = build_script()
    script += [ScriptBlock(script[-1].offset_ms + 1_000 * (i + 1)) for i in range(depth)]
    membership = Membership(
        genesis.validator_set,
        checkpoint_interval=genesis.consensus.checkpoint_interval,
        pipeline_depth=depth,
    )
    last_change = 0  # the first height of the last set put in force
    nonce = 0
    number = 0
    while number < len(script) or number < last_change + depth:
        number += 1
        if number > len(script):
            script.append(ScriptBlock(script[-1].offset_ms + 1_000))
        planned = script[number - 1]
        txs = []
        for call in planned.calls:
            nonce += 1
            txs.append(sign_call(call, nonce))
        certified_heights = heights[max(0, number - depth)]
        header = BlockHeader(
            chain_id=genesis.chain_id,
            height=number,
            prev_hash=previous_hash,
            time_ms=genesis.genesis_time_ms + planned.offset_ms,
            proposer=membership.at(number).numbers[(number - 1) % membership.at(number).n],
            tx_count=len(txs),
            tx_root=compute_tx_root(tuple(txs)),
            state_height=certified_heights.height,
            state_root=certified_heights.state_root,
            validators_hash=membership.at(number).set_hash,
            next_validators_hash=membership.at(number + 1).set_hash,
            results_root=certified_heights.results_root,
        )
        block = Block(header, tuple(txs))
        execution = execute_block(state, block, registry, is_committed=committed.__contains__)
        _require_expected(number, planned.calls, execution.results)
        for tx, result in zip(txs, execution.results, strict=True):
            check_result(tx.body.function, result)  # as docs/CHAINCODE.md declares
        for key, value in execution.writes.items():
            if value is not None:
                check_state_entry(key, value)
        state.apply(execution.writes)
        committed.update(tx.tx_id for tx in txs)
        certified = CertifiedBlock(block, _certify(genesis, header, membership.at(number)), execution.results)
        change = get_validator_change(execution.writes, number)
        membership.note_executed(number, None if change is None else change.validator_set)
        if change is not None:
            last_change = change.activation_height + 1
        heights.append(
            Height(
                number,
                certified,
                tuple(planned.calls),
                state.items(),
                compute_state_root(state.items().items()),
                compute_results_root(execution.results),
            )
        )
        previous_hash = header.block_hash
    return genesis, heights


def _certify(genesis: Genesis, header: BlockHeader, validators: ValidatorSet) -> CommitCertificate:
    """A quorum of the set in force, its lowest numbers first (every validator key is development key i)."""
    digest = compute_commit_digest(genesis.chain_id, 0, header.height, header.block_hash)
    signers = validators.numbers[: validators.quorum]
    assert all(validators.key(i) == dev_node_key("validator", i).public_key for i in signers)
    votes = tuple((i, dev_node_key("validator", i).sign(digest)) for i in signers)
    return CommitCertificate(view=0, height=header.height, block_hash=header.block_hash, votes=votes)


def _require_expected(height: int, calls: list[Call], results: tuple[TxResult, ...]) -> None:
    for index, (call, result) in enumerate(zip(calls, results, strict=True)):
        if result.code != call.expect:
            raise InvariantBroken(
                f"conformance script, block {height} call {index} ({call.org} {call.function}): expected "
                f"{call.expect}, got {result.code}: {result.message}"
            )


# --- files -----------------------------------------------------------------------------------------------------


def render_files(genesis: Genesis, heights: list[Height]) -> dict[str, bytes]:
    """Path (relative to VECTORS_DIR) -> file bytes."""
    files = {"genesis.json": _dump(make_genesis_document(), indent=2)}
    summary = {
        "chain_id": genesis.chain_id,
        "genesis_hash": genesis.genesis_hash.hex(),
        "heights": [
            {"height": h.height, "state_root": h.state_root.hex(), "results_root": h.results_root.hex()}
            for h in heights
        ],
    }
    files["chain.json"] = _dump(summary, indent=1)
    for h in heights:
        if h.certified is not None:
            files[f"blocks/{h.height:04d}.msgpack"] = encode_certified_block(h.certified)
        document: dict[str, Any] = {
            "height": h.height,
            "state_root": h.state_root.hex(),
            "results_root": h.results_root.hex(),
            "results": [] if h.certified is None else [_result_json(r) for r in h.certified.results],
            "state": {key.decode("ascii"): value.hex() for key, value in sorted(h.state.items())},
        }
        files[f"heights/{h.height:04d}.json"] = _dump(document, indent=0)
    return files


def _result_json(result: TxResult) -> dict[str, Any]:
    """What the results root commits to; the message is only in the certified block."""
    return {"code": result.code, "events": list(result.events)}


def _dump(document: Any, *, indent: int) -> bytes:
    text = json.dumps(document, indent=indent, ensure_ascii=False, separators=(",", ": "))
    return (text + "\n").encode("utf-8")


def _generated_paths(directory: Path) -> list[Path]:
    """Files in the directory that the generator owns (everything but README.md)."""
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != "README.md")


def iter_stale(files: dict[str, bytes], directory: Path = VECTORS_DIR) -> Iterator[str]:
    """Files that differ from `files`, are missing, or should not be there."""
    for name, data in files.items():
        path = directory / name
        if not path.is_file() or path.read_bytes() != data:
            yield name
    for path in _generated_paths(directory):
        if path.relative_to(directory).as_posix() not in files:
            yield path.relative_to(directory).as_posix()


def write_files(files: dict[str, bytes], directory: Path = VECTORS_DIR) -> None:
    for path in _generated_paths(directory):
        if path.relative_to(directory).as_posix() not in files:
            path.unlink()
    for name, data in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)


def main(argv: list[str]) -> int:
    if argv not in (["--write"], ["--check"]):
        print("usage: python -m conformance.vectors --write | --check", file=sys.stderr)
        return 2
    files = render_files(*build_chain())
    if argv == ["--write"]:
        write_files(files)
        print(f"{VECTORS_DIR}: {len(files)} files, {sum(len(d) for d in files.values()):,} bytes")
        return 0
    stale = list(iter_stale(files))
    if stale:
        print(
            f"{VECTORS_DIR}: out of date: {', '.join(stale[:10])}; run python -m conformance.vectors --write"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
