"""Unit tests of the observer's relay pool bounds and the gossip batch codec (the network path is covered by
tests/integration)."""

from __future__ import annotations

import pytest

from consensus.events import REFUSED_FULL
from consensus.pool import PoolLimits
from core.errors import CodecError, InvalidInput
from core.keys import SigningKey
from core.tx import SignedTx, TxBody, sign_transaction
from node.gossip import BATCH_TXS_MAX, decode_tx_batch, encode_tx_batch
from node.relay import RelayPool
from node.verified import VerifiedCache

KEY = SigningKey.from_insecure_label("mempool-test")


def make_tx(nonce: int, valid_until: int = 100) -> SignedTx:
    body = TxBody(
        "t-devnet", "carbon", "deposit_cash", {"n": nonce}, "bank", KEY.public_key, nonce, valid_until
    )
    return sign_transaction(body, KEY)


def test_relay_pool_deduplicates_and_keeps_arrival_order() -> None:
    pool = RelayPool(PoolLimits(txs_max=10, bytes_max=1 << 20))
    txs = [make_tx(i) for i in range(3)]
    assert [pool.offer(tx) for tx in txs] == [None, None, None]
    assert pool.offer(txs[1]) is None and len(pool) == 3  # already here: taken, not twice
    assert pool.get_lingering(0.0, limit=10) == txs
    assert pool.size_bytes == sum(len(tx.raw) for tx in txs)


def test_relay_pool_refuses_past_its_count_and_byte_limits_with_a_clear_code() -> None:
    by_count = RelayPool(PoolLimits(txs_max=2, bytes_max=1 << 20))
    by_count.offer(make_tx(1))
    by_count.offer(make_tx(2))
    assert by_count.offer(make_tx(3)) == REFUSED_FULL == "mempool_full"
    one = make_tx(4)
    by_bytes = RelayPool(PoolLimits(txs_max=100, bytes_max=len(one.raw) + 10))
    assert by_bytes.offer(one) is None
    assert by_bytes.offer(make_tx(5)) == REFUSED_FULL
    assert by_bytes.get(make_tx(5).tx_id) is None


def test_relay_pool_removal_expiry_and_lingering() -> None:
    pool = RelayPool(PoolLimits(txs_max=10, bytes_max=1 << 20))
    early, late = make_tx(1, valid_until=5), make_tx(2, valid_until=50)
    pool.offer(early)
    pool.offer(late)
    assert pool.get_lingering(0.0, limit=1) == [early]
    assert pool.get_lingering(3600.0, limit=10) == []
    assert pool.remove_expired(next_height=6) == [early.tx_id]
    pool.remove_many([late.tx_id])
    assert len(pool) == 0 and pool.size_bytes == 0


def test_gossip_batches_round_trip_and_reject_bad_shapes() -> None:
    raws = [make_tx(i).raw for i in range(5)]
    assert decode_tx_batch(encode_tx_batch(raws)) == raws
    with pytest.raises(InvalidInput):
        decode_tx_batch(encode_tx_batch(["not bytes"]))  # type: ignore[list-item]
    with pytest.raises(CodecError):
        decode_tx_batch(encode_tx_batch([b"x"] * (BATCH_TXS_MAX + 1)))


def test_verified_cache_verifies_once_and_refuses_a_bad_signature() -> None:
    cache = VerifiedCache(capacity=2)
    tx = make_tx(1)
    assert cache.check(tx) and cache.check(tx)
    assert (cache.verifications, cache.hits) == (1, 1)
    forged = SignedTx(tx.body, tx.body_bytes, bytes(64), tx.tx_id, tx.raw)
    assert cache.check(forged) is False
