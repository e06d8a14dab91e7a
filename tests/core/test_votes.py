"""The vote digests of core.votes: the bytes consensus signs and the chaincode re-checks in evidence.

The values were computed by consensus/messages.py before the digests moved to core/ (a pure move: these
must never change, or every signature of every chain would stop verifying)."""

from __future__ import annotations

import hashlib

from core import codec
from core.votes import compute_checkpoint_digest, compute_pre_prepare_digest, compute_prepare_digest

BLOCK_HASH = bytes(range(32))
STATE_ROOT = bytes(range(32, 64))


def _h(tag: str, value: object) -> bytes:
    return hashlib.sha256(b"carbonchain/" + tag.encode() + b"\x00" + codec.encode(value)).digest()


def test_vote_digests_are_the_pinned_bytes() -> None:
    vote = {"block_hash": BLOCK_HASH, "chain_id": "carbon-devnet", "height": 7, "view": 3}
    pre_prepare = compute_pre_prepare_digest("carbon-devnet", 3, 7, BLOCK_HASH)
    prepare = compute_prepare_digest("carbon-devnet", 3, 7, BLOCK_HASH)
    checkpoint = compute_checkpoint_digest("carbon-devnet", 100, BLOCK_HASH, STATE_ROOT)
    assert pre_prepare.hex() == "16a29fd24452a1ba0fd24d0c861b01af728216d13ebd01fd6bc34cb2488daac3"
    assert prepare.hex() == "44182c34b2835d5227c9cb9efade3fdeb793f004c367856ab741b2c31629a8fd"
    assert checkpoint.hex() == "f9729816a96560f569f9aff1c9d6e7d55fc95fac0f586d9229e4548dabe91e8e"
    # as docs/protocol/consensus.md defines them
    assert pre_prepare == _h("pre-prepare", vote)
    assert prepare == _h("prepare", vote)
    checkpoint_fields = {"block_hash": BLOCK_HASH, "chain_id": "carbon-devnet", "height": 100}
    assert checkpoint == _h("checkpoint", {**checkpoint_fields, "state_root": STATE_ROOT})
