"""Property tests of the state commitment: proofs, tampering, order independence, recomputation.

Most examples run the pure trie over an in-memory node map (fast); one property drives the real Store.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storagekit import GENESIS_HASH, apply_to, commit_writes

from core import codec
from storage.errors import ProofError
from storage.proof import StateProof, compute_key_path, verify_state_proof
from storage.store import Store
from storage.trie import (
    ROOT_NODE_ID,
    apply_changes,
    build_trie,
    collect_proof,
    compute_changes,
    compute_state_root,
    find_in_bucket,
)

keys = st.binary(min_size=1, max_size=6)
values = st.binary(min_size=0, max_size=12)
block_writes = st.dictionaries(keys, st.one_of(st.none(), values), max_size=25)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class MemoryTrie:
    """A trie over a dict of nodes, with the same state mirrored in a dict for checking."""

    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}
        self.state: dict[bytes, bytes] = {}
        self.root = compute_state_root(())

    def apply(self, writes: dict[bytes, bytes | None]) -> None:
        node_writes: dict[bytes, bytes | None] = {}
        self.root = apply_changes(self.nodes.get, compute_changes(writes.items()), node_writes)
        for node_id, record in node_writes.items():
            if record is None:
                self.nodes.pop(node_id, None)
            else:
                self.nodes[node_id] = record
        apply_to(self.state, [writes])

    def prove(self, key: bytes) -> StateProof:
        path = compute_key_path(key)
        levels, bucket = collect_proof(self.nodes.get, path)
        digest, others = find_in_bucket(bucket, path)
        return StateProof(tuple(levels), others, None if digest is None else self.state[key])


def _tampered(proof: StateProof, key: bytes) -> list[tuple[bytes, StateProof]]:
    """Every way we know to lie with a proof: (key to check, forged proof)."""
    forged: list[tuple[bytes, StateProof]] = []

    def with_levels(levels: list[bytes]) -> None:
        forged.append((key, StateProof(tuple(levels), proof.others, proof.value)))

    def with_others(others: bytes) -> None:
        forged.append((key, StateProof(proof.levels, others, proof.value)))

    for depth, level in enumerate(proof.levels):
        for position in range(len(level)):
            flipped = bytearray(level)
            flipped[position] ^= 0x01
            with_levels([*proof.levels[:depth], bytes(flipped), *proof.levels[depth + 1 :]])
        if len(level) >= 2 + 64:  # swap two siblings
            swapped = level[:2] + level[34:66] + level[2:34] + level[66:]
            with_levels([*proof.levels[:depth], swapped, *proof.levels[depth + 1 :]])
    with_levels(list(proof.levels[1:]))
    with_levels([*proof.levels, b"\x00\x00"])
    for position in range(0, len(proof.others), 7):  # corrupt the other entries of the bucket
        flipped = bytearray(proof.others)
        flipped[position] ^= 0x01
        with_others(bytes(flipped))
    if proof.others:
        with_others(proof.others[64:])  # hide an entry
        with_others(proof.others[:-1])  # not whole entries
    if proof.value is not None:
        forged.append((key, StateProof(proof.levels, proof.others, proof.value + b"!")))  # wrong value
        forged.append((key, StateProof(proof.levels, proof.others, None)))  # claim absence of a present key
    else:
        forged.append((key, StateProof(proof.levels, proof.others, b"invented")))  # claim presence
    return forged


@SETTINGS
@given(st.lists(block_writes, min_size=1, max_size=6), st.lists(keys, max_size=8))
def test_proofs_verify_and_tampering_fails(
    blocks: list[dict[bytes, bytes | None]], probes: list[bytes]
) -> None:
    trie = MemoryTrie()
    for writes in blocks:
        trie.apply(writes)
        assert trie.root == compute_state_root(trie.state.items())
    present = list(trie.state)[:10]
    absent = [key for key in probes if key not in trie.state]
    for key in present + absent:
        proof = trie.prove(key)
        assert StateProof.from_wire(codec.decode(codec.encode(proof.to_wire()))) == proof
        assert StateProof.decode(proof.encode()) == proof
        assert verify_state_proof(trie.root, key, proof) == trie.state.get(key)
        for forged_key, forged in _tampered(proof, key):
            try:
                result = verify_state_proof(trie.root, forged_key, forged)
            except ProofError:
                continue
            raise AssertionError(f"forged proof for {forged_key!r} verified as {result!r}")
        # The proof of another key: an inclusion proof never carries over; an absence proof may only when the
        # other key is absent too and its path ends in the same empty slot or at the same other leaf.
        for other in [key + b"?", *present[:3]]:
            if other == key:
                continue
            try:
                result = verify_state_proof(trie.root, other, proof)
            except ProofError:
                continue
            assert proof.value is None and result is None and other not in trie.state


@SETTINGS
@given(block_writes, block_writes, st.randoms(use_true_random=False))
def test_root_is_independent_of_write_order(
    base: dict[bytes, bytes | None], writes: dict[bytes, bytes | None], rng: object
) -> None:
    first, second = MemoryTrie(), MemoryTrie()
    first.apply(base)
    second.apply(base)
    items = list(writes.items())
    rng.shuffle(items)  # type: ignore[attr-defined]
    first.apply(writes)
    second.apply(dict(items))
    assert first.root == second.root
    assert first.nodes == second.nodes
    rebuilt: dict[bytes, bytes | None] = {}
    assert build_trie(first.state.items(), rebuilt) == first.root
    assert rebuilt == first.nodes  # the stored nodes are exactly those of a from-scratch build


def test_a_single_key_and_the_empty_state_have_proofs() -> None:
    trie = MemoryTrie()
    proof = trie.prove(b"nothing")
    assert verify_state_proof(trie.root, b"nothing", proof) is None
    trie.apply({b"one": b"1"})
    assert ROOT_NODE_ID in trie.nodes
    assert verify_state_proof(trie.root, b"one", trie.prove(b"one")) == b"1"
    other = trie.prove(b"two")
    assert verify_state_proof(trie.root, b"two", other) is None


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.lists(block_writes, min_size=1, max_size=3), min_size=1, max_size=4),
    st.lists(keys, max_size=5),
)
def test_store_roots_and_proofs_match_the_model(
    blocks: list[list[dict[bytes, bytes | None]]], probes: list[bytes]
) -> None:
    state: dict[bytes, bytes] = {}
    with tempfile.TemporaryDirectory() as directory, Store.open(Path(directory)) as store:
        store.initialise_genesis(GENESIS_HASH, {})
        for tx_writes in blocks:
            commit_writes(store, tx_writes)
            apply_to(state, tx_writes)
            root = store.get_state_root()
            assert root == compute_state_root(state.items())
            assert store.get_roots(store.last_height) == (root, store.get_roots(store.last_height)[1])  # type: ignore[index]
            for key in list(state)[:5] + probes:
                assert verify_state_proof(root, key, store.get_proof(key)) == state.get(key)
