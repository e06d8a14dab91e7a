"""The one check of a certified successor block: each check fails alone, with its name, in the documented order."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.block import (
    EMPTY_ROOT,
    Block,
    BlockHeader,
    CommitCertificate,
    compute_commit_digest,
    compute_tx_root,
)
from core.devkeys import dev_node_key
from core.genesis import ConsensusParams
from core.hashing import Domain, tagged_hash
from core.keys import SigningKey
from core.successor import ChainTip, SuccessorError, validate_certified_successor
from core.tx import SignedTx, TxBody, sign_transaction
from core.validators import ValidatorSet

CHAIN = "succ-devnet"
KEYS = [dev_node_key("validator", i) for i in range(4)]
PUBLIC = tuple(k.public_key for k in KEYS)
VSET = ValidatorSet.of_keys(PUBLIC)
PARAMS = ConsensusParams(block_txs_max=2, pipeline_depth=2)
TIP = ChainTip(4, tagged_hash(Domain.BLOCK_HEADER, b"block 4"), 1_000)
ROOTS = {3: (b"\x03" * 32, b"\x13" * 32)}
CLIENT = SigningKey.from_insecure_label("succ-client")


def tx(nonce: int) -> SignedTx:
    return sign_transaction(TxBody(CHAIN, "carbon", "noop", {}, "org", CLIENT.public_key, nonce, 10), CLIENT)


def successor(**changes: object) -> Block:
    txs = (tx(1),)
    header = BlockHeader(
        chain_id=CHAIN,
        height=5,
        prev_hash=TIP.block_hash,
        time_ms=1_001,
        proposer=1,
        tx_count=1,
        tx_root=compute_tx_root(txs),
        state_height=3,
        state_root=ROOTS[3][0],
        results_root=ROOTS[3][1],
        validators_hash=VSET.set_hash,
        next_validators_hash=VSET.set_hash,
    )
    return Block(replace(header, **changes), txs)  # type: ignore[arg-type]


def certify(block: Block, signers: tuple[int, ...] = (0, 1, 2)) -> CommitCertificate:
    digest = compute_commit_digest(CHAIN, 0, block.header.height, block.block_hash)
    return CommitCertificate(
        0, block.header.height, block.block_hash, tuple((i, KEYS[i].sign(digest)) for i in signers)
    )


def check(block: Block, cert: CommitCertificate | None, tip: ChainTip | None = TIP) -> None:
    validate_certified_successor(
        block,
        cert,
        tip,
        chain_id=CHAIN,
        validators=VSET,
        next_validators=VSET,
        params=PARAMS,
        roots=ROOTS.get,
    )


def test_a_valid_successor_passes_with_and_without_tip_and_certificate() -> None:
    block = successor()
    check(block, certify(block))
    check(block, None)
    check(block, certify(block), tip=None)


@pytest.mark.parametrize(
    ("changes", "failed"),
    [
        ({"height": 6, "state_height": 4}, "height"),
        ({"chain_id": "other"}, "chain id"),
        ({"prev_hash": b"\x00" * 32}, "hash link"),
        ({"time_ms": 1_000}, "block time"),
        ({"proposer": 4}, "proposer"),
        ({"tx_count": 2}, "transaction count"),
        ({"tx_root": EMPTY_ROOT}, "transaction root"),
        ({"state_height": 2}, "state height"),
        ({"state_root": b"\x09" * 32}, "state root"),
        ({"results_root": b"\x09" * 32}, "results root"),
    ],
)
def test_each_check_names_itself(changes: dict[str, object], failed: str) -> None:
    block = successor(**changes)
    with pytest.raises(SuccessorError) as raised:
        check(block, certify(block))
    assert raised.value.check == failed and raised.value.height in (5, 6)


def test_too_many_transactions_and_a_weak_certificate_fail() -> None:
    txs = (tx(1), tx(2), tx(3))
    crowded = Block(replace(successor().header, tx_count=3, tx_root=compute_tx_root(txs)), txs)
    with pytest.raises(SuccessorError, match="block_txs_max"):
        check(crowded, None)
    block = successor()
    with pytest.raises(SuccessorError) as raised:
        check(block, certify(block, signers=(0, 1)))
    assert raised.value.check == "commit certificate"
    with pytest.raises(SuccessorError) as raised:
        check(block, certify(successor(time_ms=1_002)))  # a certificate of another header
    assert raised.value.check == "commit certificate"


def test_the_order_of_checks_is_the_documented_one() -> None:
    block = successor(chain_id="other", proposer=9)  # two faults: the earlier check is reported
    with pytest.raises(SuccessorError) as raised:
        check(block, None)
    assert raised.value.check == "chain id"
