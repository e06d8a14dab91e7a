"""Domain-separated hashing and the Merkle root, checked against an independent implementation of the spec."""

from __future__ import annotations

import hashlib

import pytest

from core import codec
from core.hashing import Domain, hash_value, merkle_root, tagged_hash


def _h(tag: str, payload: bytes) -> bytes:
    """The documented construction, written out independently of core.hashing."""
    return hashlib.sha256(b"carbonchain/" + tag.encode("ascii") + b"\x00" + payload).digest()


def _spec_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 MTH with tagged hashes (docs/protocol/core.md), independent of the code under test."""
    if not leaves:
        return _h("merkle-empty", b"")
    if len(leaves) == 1:
        return _h("merkle-leaf", leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return _h("merkle-node", _spec_root(leaves[:k]) + _spec_root(leaves[k:]))


def test_domain_tags_are_exact() -> None:
    for domain in Domain:
        assert domain.prefix == b"carbonchain/" + domain.value.encode("ascii") + b"\x00"
        assert b"\x00" not in domain.value.encode("ascii")
    assert Domain.TX.prefix == b"carbonchain/tx\x00"
    assert Domain.BLOCK_HEADER.prefix == b"carbonchain/block-header\x00"


def test_every_domain_gives_a_distinct_hash() -> None:
    payload = b"same payload"
    digests = {tagged_hash(domain, payload) for domain in Domain}
    assert len(digests) == len(Domain)
    values = {domain.value for domain in Domain}
    assert len(values) == len(Domain)


def test_tagged_hash_matches_spec() -> None:
    for domain in Domain:
        assert tagged_hash(domain, b"abc") == _h(domain.value, b"abc")


def test_hash_value_is_tagged_hash_of_canonical_encoding() -> None:
    value = {"b": [1, 2], "a": b"x"}
    assert hash_value(Domain.TX_RESULT, value) == _h("tx-result", codec.encode(value))


def test_empty_root() -> None:
    assert merkle_root([]) == _h("merkle-empty", b"")
    assert merkle_root([]) != hashlib.sha256(b"").digest()


def test_single_leaf_is_not_the_raw_leaf() -> None:
    leaf = b"\x11" * 32
    assert merkle_root([leaf]) == _h("merkle-leaf", leaf)
    assert merkle_root([leaf]) != leaf
    assert merkle_root([leaf]) != hashlib.sha256(leaf).digest()


def test_order_matters() -> None:
    a, b = b"a" * 32, b"b" * 32
    assert merkle_root([a, b]) != merkle_root([b, a])


def test_leaf_cannot_pose_as_inner_node() -> None:
    a, b = b"a" * 32, b"b" * 32
    inner = _h("merkle-leaf", a) + _h("merkle-leaf", b)
    # A one-leaf list whose leaf is the concatenation of the two child hashes must not give the same root.
    assert merkle_root([a, b]) != merkle_root([inner])
    # Nor the untagged second-preimage forms.
    assert merkle_root([a, b]) != hashlib.sha256(inner).digest()
    assert merkle_root([a, b, a, b]) != merkle_root([inner, inner])


def test_duplicate_last_leaf_changes_root() -> None:
    # Bitcoin's odd-level duplication made [a, b, c] and [a, b, c, c] collide (CVE-2012-2459); this tree does not.
    a, b, c = (bytes([i]) * 32 for i in range(3))
    assert merkle_root([a, b, c]) != merkle_root([a, b, c, c])


@pytest.mark.parametrize("count", [*range(1, 70), 127, 128, 129, 255, 256, 257, 1000, 2000, 2047, 2048, 2049])
def test_vectors_match_independent_spec(count: int) -> None:
    leaves = [i.to_bytes(2, "big") * 16 for i in range(count)]
    assert merkle_root(leaves) == _spec_root(leaves)


def test_hand_written_shapes() -> None:
    """The tree shapes for 1..7 leaves, written out by hand from the split rule (largest power of 2 < n)."""
    leaf = [_h("merkle-leaf", bytes([i]) * 32) for i in range(7)]

    def node(left: bytes, right: bytes) -> bytes:
        return _h("merkle-node", left + right)

    n01, n23, n45 = node(leaf[0], leaf[1]), node(leaf[2], leaf[3]), node(leaf[4], leaf[5])
    expected = {
        1: leaf[0],
        2: n01,
        3: node(n01, leaf[2]),
        4: node(n01, n23),
        5: node(node(n01, n23), leaf[4]),
        6: node(node(n01, n23), n45),
        7: node(node(n01, n23), node(n45, leaf[6])),
    }
    for count, root in expected.items():
        assert merkle_root([bytes([i]) * 32 for i in range(count)]) == root, count


def test_three_leaf_vector() -> None:
    # The worked example in docs/protocol/core.md.
    leaves = [b"\x00" * 32, b"\x01" * 32, b"\x02" * 32]
    assert merkle_root(leaves).hex() == _spec_root(leaves).hex()


def test_variable_length_leaves() -> None:
    # Leaves need not be digests; each is hashed on its own, so boundaries cannot shift.
    assert merkle_root([b"ab", b"c"]) != merkle_root([b"a", b"bc"])
    assert merkle_root([b"", b"x"]) == _spec_root([b"", b"x"])
