"""The compact node record format and the writer's bounded node cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from storagekit import GENESIS_HASH, apply_to, commit_writes

from core.errors import InvalidInput
from storage import store as store_module
from storage.proof import EMPTY_HASH, compute_node_hash, verify_state_proof
from storage.store import Store
from storage.trie import (
    HEADER_BYTES,
    LEAF_ENTRY_BYTES,
    build_trie,
    compute_record_hash,
    get_record_children,
)


def test_records_hold_only_present_children_and_hash_over_all_sixteen_slots() -> None:
    nodes: dict[bytes, bytes | None] = {}
    build_trie(((b"k%d" % i, b"v%d" % i) for i in range(600)), nodes)
    for record in nodes.values():
        assert record is not None
        child_bits = int.from_bytes(record[0:2], "big")
        leaf_bits = int.from_bytes(record[2:4], "big")
        assert leaf_bits & ~child_bits == 0
        expected = HEADER_BYTES + 32 * child_bits.bit_count() + LEAF_ENTRY_BYTES * leaf_bits.bit_count()
        assert len(record) == expected
        children = get_record_children(record)
        for nibble in range(16):
            slot = children[nibble * 32 : nibble * 32 + 32]
            assert (slot != EMPTY_HASH) == bool(child_bits >> nibble & 1)
        assert compute_record_hash(record) == compute_node_hash(children)


def test_a_tiny_node_cache_budget_keeps_roots_and_proofs_right(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "NODE_CACHE_BYTES_MAX", 3000)
    state: dict[bytes, bytes] = {}
    with Store.open(tmp_path) as store:
        store.initialise_genesis(GENESIS_HASH, {})
        for height in range(1, 6):
            tx_writes: list[dict[bytes, bytes | None]] = [
                {b"k%d" % (height * 50 + i): b"v%d" % i, b"k%d" % i: None if i % 7 == 0 else b"w%d" % height}
                for i in range(60)
            ]
            commit_writes(store, tx_writes)
            apply_to(state, tx_writes)
            assert store._node_cache_bytes <= 3000
            root = store.get_state_root()
            assert store.get_roots(height) == (root, store.get_roots(height)[1])  # type: ignore[index]
        for key in [*list(state)[:20], b"absent"]:
            assert verify_state_proof(root, key, store.get_proof(key)) == state.get(key)


def _commit_some_blocks(store: Store, state: dict[bytes, bytes]) -> None:
    store.initialise_genesis(GENESIS_HASH, {})
    for height in range(1, 4):
        tx_writes: list[dict[bytes, bytes | None]] = [
            {b"k%d" % (height * 400 + i): b"v%d" % i, b"k%d" % i: None if i % 5 == 0 else b"w%d" % height}
            for i in range(400)
        ]
        commit_writes(store, tx_writes)
        apply_to(state, tx_writes)


def test_reopening_warms_the_node_cache_with_exactly_the_stored_shallow_nodes(tmp_path: Path) -> None:
    state: dict[bytes, bytes] = {}
    with Store.open(tmp_path) as store:
        _commit_some_blocks(store, state)
    expected: dict[bytes, bytes] = {}
    build_trie(state.items(), expected)  # type: ignore[arg-type]
    with Store.open(tmp_path) as store:
        cached = {node_id: record for node_id, record in store._node_cache.items() if record is not None}
        assert cached == {
            node_id: record
            for node_id, record in expected.items()
            if node_id[0] <= store_module.NODE_CACHE_DEPTH_MAX
        }
        assert store._node_cache_bytes <= store_module.NODE_CACHE_BYTES_MAX
        root = store.get_state_root()
        for key in [*list(state)[:20], b"absent"]:
            assert verify_state_proof(root, key, store.get_proof(key)) == state.get(key)


@pytest.mark.parametrize("warm", [True, False])
def test_a_small_cache_budget_at_reopen_is_respected_and_commits_stay_right(
    tmp_path: Path, warm: bool
) -> None:
    state: dict[bytes, bytes] = {}
    with Store.open(tmp_path) as store:
        _commit_some_blocks(store, state)
        full_root = store.get_state_root()
    with Store.open(tmp_path, node_cache_bytes_max=5000, warm_node_cache=warm) as store:
        assert store._node_cache_bytes <= 5000
        assert store.get_state_root() == full_root
        tx_writes: list[dict[bytes, bytes | None]] = [{b"k%d" % i: b"x%d" % i} for i in range(300)]
        commit_writes(store, tx_writes)
        apply_to(state, tx_writes)
        assert store._node_cache_bytes <= 5000
        root = store.get_state_root()
        for key in [*list(state)[:20], b"absent"]:
            assert verify_state_proof(root, key, store.get_proof(key)) == state.get(key)
    expected: dict[bytes, bytes] = {}
    assert build_trie(state.items(), expected) == root  # type: ignore[arg-type]


def test_a_negative_cache_budget_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        Store.open(tmp_path, node_cache_bytes_max=-1)
