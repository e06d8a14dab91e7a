"""Builders of real blocks, transactions and certificates for the storage tests, the crash writer and the
benchmark (imported by path: tests/storage is on sys.path in conftest.py and in crash_writer.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache

from core.block import (
    EMPTY_ROOT,
    RESULT_OK,
    Block,
    BlockHeader,
    CommitCertificate,
    TxResult,
    compute_commit_digest,
    compute_tx_root,
)
from core.hashing import Domain, tagged_hash
from core.keys import SigningKey
from core.tx import SignedTx, TxBody, sign_transaction
from storage.store import Store

CHAIN_ID = "test-devnet"
GENESIS_HASH = tagged_hash(Domain.GENESIS, b"storage tests")
VALIDATORS = 4


@cache
def client_key() -> SigningKey:
    return SigningKey.from_insecure_label("org/storage-test/client-0")


@cache
def validator_key(index: int) -> SigningKey:
    return SigningKey.from_insecure_label(f"validator-{index}")


def make_tx(nonce: int, valid_until: int = 2**40) -> SignedTx:
    key = client_key()
    body = TxBody(
        chain_id=CHAIN_ID,
        chaincode="carbon",
        function="transfer",
        args={"n": nonce},
        sender_org="storage-test",
        sender_key=key.public_key,
        nonce=nonce,
        valid_until=valid_until,
    )
    return sign_transaction(body, key)


def make_block(
    store: Store, txs: Sequence[SignedTx], time_ms: int | None = None, chain_id: str = CHAIN_ID
) -> Block:
    """The next block on top of the store's head, carrying the previous block's roots (pipeline depth 1)."""
    height = store.last_height + 1
    prev_hash = store.last_block_hash
    assert prev_hash is not None
    roots = store.get_roots(height - 1)
    assert roots is not None
    header = BlockHeader(
        chain_id=chain_id,
        height=height,
        prev_hash=prev_hash,
        time_ms=1_700_000_000_000 + height if time_ms is None else time_ms,
        proposer=height % VALIDATORS,
        tx_count=len(txs),
        tx_root=compute_tx_root(txs),
        state_height=height - 1,
        state_root=roots[0],
        results_root=roots[1],
        validators_hash=EMPTY_ROOT,
        next_validators_hash=EMPTY_ROOT,
    )
    return Block(header, tuple(txs))


def make_certificate(block: Block, votes: int = 3, view: int = 0) -> CommitCertificate:
    digest = compute_commit_digest(CHAIN_ID, view, block.header.height, block.block_hash)
    signed = tuple((i, validator_key(i).sign(digest)) for i in range(votes))
    return CommitCertificate(view, block.header.height, block.block_hash, signed)


def make_results(tx_writes: Sequence[Mapping[bytes, bytes | None]]) -> list[TxResult]:
    """ok for a transaction that wrote something, a failure code for one that wrote nothing."""
    return [
        TxResult(RESULT_OK, "", ({"type": "wrote", "keys": len(w)},)) if w else TxResult("rejected", "no-op")
        for w in tx_writes
    ]


def commit_writes(
    store: Store,
    tx_writes: Sequence[Mapping[bytes, bytes | None]],
    *,
    certificate: bool = True,
    nonce_base: int | None = None,
    end_writes: Mapping[bytes, bytes | None] | None = None,
) -> Block:
    """Commit a block with one real signed transaction per write set (and the end-of-block step's)."""
    height = store.last_height + 1
    base = height * 100_000 if nonce_base is None else nonce_base
    txs = [make_tx(base + i) for i in range(len(tx_writes))]
    block = make_block(store, txs)
    cert = make_certificate(block) if certificate else None
    store.commit_block(block, make_results(tx_writes), tx_writes, cert, end_writes=end_writes)
    return block


def apply_to(state: dict[bytes, bytes], tx_writes: Sequence[Mapping[bytes, bytes | None]]) -> None:
    for writes in tx_writes:
        for key, value in writes.items():
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
