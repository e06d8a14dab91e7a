"""Evidence of equivocation (docs/CHAINCODE.md section 14): real conflicting consensus messages signed with
the development validator keys are recorded once; forged, same-message and wrong-key evidence fail with a
code; a validator's node key may submit it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from chainkit import CHAIN_ID, Chain

from consensus.messages import Checkpoint, Commit, Message, Prepare, PrePrepare, compute_signing_digest
from core.block import EMPTY_ROOT, BlockHeader
from core.devkeys import dev_node_key
from node.evidence import compute_evidence_args

VALIDATOR_ORGS = ("mee", "bank", "ent1", "ver1")
HASH_A, HASH_B = b"\xaa" * 32, b"\xbb" * 32


def signed(message: Message, index: int) -> Message:
    key = dev_node_key("validator", index)
    return replace(message, signature=key.sign(compute_signing_digest(CHAIN_ID, message)))


def prepare(block_hash: bytes, index: int = 1, view: int = 2, height: int = 7) -> Message:
    return signed(Prepare(view, height, block_hash, index, b""), index)


def header(tx_count: int) -> BlockHeader:
    return BlockHeader(
        CHAIN_ID, 7, bytes(32), 1, 0, tx_count, EMPTY_ROOT, 5, EMPTY_ROOT, EMPTY_ROOT, HASH_A, HASH_A
    )


def args_of(first: Message, second: Message, index: int = 1) -> dict[str, Any]:
    args = compute_evidence_args(first, second, dev_node_key("validator", index).public_key)
    assert args is not None
    return args


@pytest.fixture
def chain() -> Chain:
    return Chain(validator_orgs=VALIDATOR_ORGS)


@pytest.mark.parametrize(
    "pair",
    [
        (prepare(HASH_A), prepare(HASH_B)),
        (signed(Commit(2, 7, HASH_A, 1, b""), 1), signed(Commit(2, 7, HASH_B, 1, b""), 1)),
        (
            signed(PrePrepare(2, 7, header(0), (), 1, b""), 1),
            signed(PrePrepare(2, 7, header(1), (), 1, b""), 1),
        ),
        (
            signed(Checkpoint(100, HASH_A, HASH_A, 1, b""), 1),
            signed(Checkpoint(100, HASH_A, HASH_B, 1, b""), 1),  # one block, two states
        ),
    ],
)
def test_conflicting_signed_messages_are_recorded_once(chain: Chain, pair: tuple[Message, Message]) -> None:
    args = args_of(*pair)
    result = chain.ok("ent2", "report_evidence", **args)
    assert result.events[0]["type"] == "evidence_recorded" and result.events[0]["org"] == "bank"
    chain.fails("duplicate_evidence", "ent2", "report_evidence", **args)
    swapped = args_of(pair[1], pair[0])  # the same pair the other way round is the same evidence
    chain.fails("duplicate_evidence", "mee", "report_evidence", **swapped)
    items = chain.query("evidence")["items"]
    assert len(items) == 1 and items[0]["validator"] == dev_node_key("validator", 1).public_key.hex()
    assert items[0]["reporter"] == "ent2" and items[0]["recorded_height"] == chain.height - 2
    assert chain.query("evidence", validator=dev_node_key("validator", 0).public_key.hex())["items"] == []


def test_forged_same_message_and_wrong_key_evidence_fail_with_a_code(chain: Chain) -> None:
    first, second = prepare(HASH_A), prepare(HASH_B)
    forged = {**args_of(first, second), "signature_2": "00" * 64}
    chain.fails("invalid_signature", "ent2", "report_evidence", **forged)
    flipped = bytearray(second.signature)
    flipped[0] ^= 1
    chain.fails("invalid_signature", "ent2", "report_evidence", **{**forged, "signature_2": flipped.hex()})
    chain.fails("same_message", "ent2", "report_evidence", **args_of(first, first))
    # signed by validator 2, named as validator 1: the signatures do not verify with 1's key
    other = (prepare(HASH_A, index=2), prepare(HASH_B, index=2))
    wrong_key = {**args_of(*other, index=2), "validator": dev_node_key("validator", 1).public_key.hex()}
    chain.fails("invalid_signature", "ent2", "report_evidence", **wrong_key)
    not_validator = {**args_of(first, second), "validator": dev_node_key("observer", 0).public_key.hex()}
    chain.fails("unknown_validator", "ent2", "report_evidence", **not_validator)
    # the same messages in another view or height are other messages: their signatures do not verify
    chain.fails("invalid_signature", "ent2", "report_evidence", **{**args_of(first, second), "view": 3})
    chain.fails("invalid_args", "ent2", "report_evidence", **{**args_of(first, second), "view": None})
    chain.fails(
        "invalid_args", "ent2", "report_evidence", **{**args_of(first, second), "state_root_1": "ab" * 32}
    )
    assert chain.query("evidence")["items"] == []


def test_a_validator_reports_with_its_node_key(chain: Chain) -> None:
    reporter = dev_node_key("validator", 0)  # enrolled for mee at genesis as a node key
    args = args_of(prepare(HASH_A), prepare(HASH_B))
    assert chain.call("mee", "report_evidence", key=reporter, **args).code == "ok"
    assert chain.query("evidence")["items"][0]["reporter_key"] == reporter.public_key.hex()


def test_only_same_kind_same_slot_pairs_are_evidence() -> None:
    key = dev_node_key("validator", 1).public_key
    assert compute_evidence_args(prepare(HASH_A), prepare(HASH_B, view=3), key) is None
    assert compute_evidence_args(prepare(HASH_A), prepare(HASH_B, height=8), key) is None
    commit = signed(Commit(2, 7, HASH_B, 1, b""), 1)
    assert compute_evidence_args(prepare(HASH_A), commit, key) is None
