"""The state tree's records and the writer's bounded record cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from storagekit import GENESIS_HASH, apply_to, commit_writes

from core.errors import InvalidInput
from storage import schema
from storage import store as store_module
from storage.errors import StoreCorrupt
from storage.proof import (
    CHILDREN_BYTES,
    EMPTY_AT,
    EMPTY_STATE_ROOT,
    ENTRY_BYTES,
    compute_bucket_hash,
    compute_key_path,
    compute_node_hash,
    verify_state_proof,
)
from storage.store import Store
from storage.trie import (
    BUCKET_DEPTH,
    ROOT_NODE_ID,
    apply_changes,
    build_trie,
    compute_changes,
    compute_state_root,
    decode_stored,
    encode_stored,
)


def test_records_are_full_nodes_and_sorted_buckets_and_hash_up_to_the_root() -> None:
    records: dict[bytes, bytes | None] = {}
    state = {b"k%d" % i: b"v%d" % i for i in range(3000)}
    root = build_trie(state.items(), records)
    paths = {compute_key_path(key) for key in state}
    buckets = {node_id: record for node_id, record in records.items() if node_id[0] == BUCKET_DEPTH}
    assert sum(len(record or b"") // ENTRY_BYTES for record in buckets.values()) == len(state)
    for bucket_id, entries in buckets.items():
        assert entries and len(entries) % ENTRY_BYTES == 0
        keys = [entries[at : at + 32] for at in range(0, len(entries), ENTRY_BYTES)]
        assert keys == sorted(keys) and all(key[:2] == bucket_id[1:] and key in paths for key in keys)
    nodes = {node_id: record for node_id, record in records.items() if node_id[0] < BUCKET_DEPTH}
    assert all(record is not None and len(record) == CHILDREN_BYTES for record in nodes.values())
    # every node's children are the hashes of the records one level down (or the empty subtree's)
    below = {_parent_slot(record_id): record for record_id, record in records.items() if record_id[0] > 0}
    for node_id, record in nodes.items():
        assert record is not None
        depth = node_id[0]
        hashed = compute_bucket_hash if depth + 1 == BUCKET_DEPTH else compute_node_hash
        for nibble in range(16):
            child = record[nibble * 32 : nibble * 32 + 32]
            record_below = below.get((node_id, nibble))
            assert child == (EMPTY_AT[depth + 1] if record_below is None else hashed(record_below))
    assert root == compute_node_hash(records[ROOT_NODE_ID] or b"")


def _parent_slot(node_id: bytes) -> tuple[bytes, int]:
    """(parent id, slot) of a record id, from the packed nibbles."""
    depth = node_id[0]
    nibbles = [n for byte in node_id[1:] for n in (byte >> 4, byte & 0x0F)][:depth]
    parent = nibbles[:-1]
    packed = bytes(
        (parent[i] << 4) | (parent[i + 1] if i + 1 < len(parent) else 0) for i in range(0, len(parent), 2)
    )
    return bytes((depth - 1,)) + packed, nibbles[-1]


def test_deleting_every_key_leaves_no_records_and_the_empty_root() -> None:
    records: dict[bytes, bytes | None] = {}
    state = {b"k%d" % i: b"v" for i in range(200)}
    build_trie(state.items(), records)
    stored = {i: r for i, r in records.items() if r is not None}
    writes: dict[bytes, bytes | None] = {}
    root = apply_changes(stored.get, compute_changes((key, None) for key in state), writes)
    assert root == EMPTY_STATE_ROOT
    assert set(writes) == set(stored) and all(record is None for record in writes.values())


def test_a_damaged_record_is_reported_as_corruption() -> None:
    records: dict[bytes, bytes | None] = {}
    build_trie([(b"a", b"1"), (b"b", b"2")], records)
    damaged = {i: (r[:-1] if r is not None else r) for i, r in records.items()}
    with pytest.raises(StoreCorrupt, match="bytes"):
        apply_changes(damaged.get, compute_changes([(b"a", b"3")]), {})


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
        _check_proofs(store, root, state)


def _check_proofs(store: Store, root: bytes, state: dict[bytes, bytes]) -> None:
    """Proofs of 20 keys and of an absent one verify against `root` with the values of `state`."""
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


def test_reopening_warms_the_node_cache_with_exactly_the_stored_records(tmp_path: Path) -> None:
    state: dict[bytes, bytes] = {}
    with Store.open(tmp_path) as store:
        _commit_some_blocks(store, state)
    expected: dict[bytes, bytes] = {}
    build_trie(state.items(), expected)  # type: ignore[arg-type]
    with Store.open(tmp_path) as store:
        cached = {node_id: record for node_id, record in store._node_cache.items() if record is not None}
        assert cached == expected
        assert store._node_cache_bytes <= store_module.NODE_CACHE_BYTES_MAX
        root = store.get_state_root()
        _check_proofs(store, root, state)


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
        _check_proofs(store, root, state)
    expected: dict[bytes, bytes] = {}
    assert build_trie(state.items(), expected) == root  # type: ignore[arg-type]


def test_a_negative_cache_budget_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        Store.open(tmp_path, node_cache_bytes_max=-1)


def _stored_records(store: Store) -> dict[bytes, bytes]:
    prefix = schema.TRIE_PREFIX
    return {key[len(prefix) :]: value for key, value in store._db.iterator(prefix=prefix)}


def test_nodes_with_empty_children_are_stored_sparse_and_read_back_exactly(tmp_path: Path) -> None:
    state: dict[bytes, bytes] = {}
    with Store.open(tmp_path) as store:
        _commit_some_blocks(store, state)  # about 1,000 keys: full nodes near the root, sparse below
        stored = _stored_records(store)
    expected: dict[bytes, bytes | None] = {}
    build_trie(state.items(), expected)
    assert set(stored) == set(expected)
    sizes: dict[int, set[int]] = {node_id[0]: set() for node_id in stored}
    for node_id, record in stored.items():
        sizes[node_id[0]].add(len(record))
        assert decode_stored(node_id, record) == expected[node_id]
        assert encode_stored(node_id, expected[node_id] or b"") == record
    assert sizes[0] == {CHILDREN_BYTES}  # the root has all 16 children: its array as it is
    assert all(size % 32 == 2 and size < CHILDREN_BYTES for size in sizes[3])  # bitmap + a few hashes
    assert sum(len(r) for r in stored.values()) < sum(len(r or b"") for r in expected.values()) / 2


@pytest.mark.parametrize("warm", [True, False])
def test_a_store_whose_nodes_are_stored_as_full_arrays_still_reads_and_commits(
    tmp_path: Path, warm: bool
) -> None:
    """Stores written before the sparse form hold every node as its 512-byte array."""
    state: dict[bytes, bytes] = {}
    with Store.open(tmp_path) as store:
        _commit_some_blocks(store, state)
        for node_id, record in _stored_records(store).items():
            store._db.put(schema.TRIE_PREFIX + node_id, decode_stored(node_id, record))
    with Store.open(tmp_path, warm_node_cache=warm) as store:
        assert all(len(r) == CHILDREN_BYTES for i, r in _stored_records(store).items() if i[0] < BUCKET_DEPTH)
        root = store.get_state_root()
        assert root == compute_state_root(state.items())
        _check_proofs(store, root, state)
        tx_writes: list[dict[bytes, bytes | None]] = [{b"k%d" % i: b"y%d" % i} for i in range(100)]
        commit_writes(store, tx_writes)
        apply_to(state, tx_writes)
        assert store.get_state_root() == compute_state_root(state.items())


def test_a_damaged_sparse_record_is_reported_as_corruption() -> None:
    records: dict[bytes, bytes | None] = {}
    build_trie([(b"a", b"1"), (b"b", b"2")], records)
    node_id = next(i for i in records if i[0] == 3)
    sparse = encode_stored(node_id, records[node_id] or b"")
    assert len(sparse) == 2 + 32  # one child
    empty_child = (1).to_bytes(2, "big") + EMPTY_AT[4]
    for damaged, reason in [
        (sparse[:-1], "hash bytes"),
        (b"\x00\x00", "no children"),
        (empty_child, "empty"),
        (sparse + bytes(32), "hash bytes"),
    ]:
        with pytest.raises(StoreCorrupt, match=reason):
            decode_stored(node_id, damaged)
