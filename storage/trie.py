"""The state tree's update algorithm over a node store given as functions: no plyvel, no I/O of its own.

The tree (storage/proof.py, docs/protocol/storage.md) has a fixed shape: nodes at depths 0..3 and 65,536
buckets at depth 4, so a block's cost per changed key stays flat as the state grows. A block's net changes
arrive as (key path, value digest or None) pairs sorted by path; each touched bucket is read, spliced and
hashed once, then each touched node once per level, bottom up. Node writes (node id -> record, or None to
delete) are collected for the caller to put into the block's single write batch.

Records: a node is its 512-byte child array; a bucket is its 64-byte entries (key path + value digest)
ascending by key path. An empty subtree or bucket has no record. Node ids are u8 depth + the first `depth`
nibbles of the path packed high-first into bytes (an odd last nibble is padded with a zero nibble); a
bucket's id is 0x04 + the first two bytes of its keys' paths. This module works on those records; in the
database a node that lacks some children is stored in the proofs' sparse form instead (`encode_stored`,
`decode_stored`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping, Sequence

from core.hashing import HASH_BYTES
from storage.errors import ProofError, StoreCorrupt
from storage.proof import (
    BUCKET_ID_BYTES,
    CHILDREN,
    CHILDREN_BYTES,
    EMPTY_AT,
    EMPTY_CHILDREN_AT,
    ENTRY_BYTES,
    NODE_DEPTHS,
    compute_bucket_hash,
    compute_key_path,
    compute_node_hash,
    compute_value_digest,
    encode_level,
    expand_level,
    find_entry,
    get_nibble,
)

ROOT_NODE_ID = b"\x00"
BUCKET_DEPTH = NODE_DEPTHS

NodeLoader = Callable[[bytes], bytes | None]
Change = tuple[bytes, bytes | None]  # (key path, value digest or None to delete)

_DEPTH_BYTES = [bytes((depth,)) for depth in range(256)]
_HIGH_NIBBLE_BYTES = [bytes((byte & 0xF0,)) for byte in range(256)]
_BUCKET_ID_HEAD = _DEPTH_BYTES[BUCKET_DEPTH]


def compute_node_id(depth: int, path: bytes) -> bytes:
    whole = depth >> 1
    if depth & 1:
        return _DEPTH_BYTES[depth] + path[:whole] + _HIGH_NIBBLE_BYTES[path[whole]]
    return _DEPTH_BYTES[depth] + path[:whole]


def encode_stored(node_id: bytes, record: bytes) -> bytes:
    """The database form of a record. A node with an empty child is stored sparse, as a proof level without
    a left-out slot (u16 bitmap of its non-empty children, then their hashes): in a state of thousands of
    keys the deeper nodes have one child or a few, and their 512-byte arrays were about a third of the bytes
    a block wrote. A full node and a bucket are stored as they are."""
    if node_id[0] == BUCKET_DEPTH or len(record) != CHILDREN_BYTES:
        return record
    sparse = encode_level(record, node_id[0], CHILDREN)
    return record if len(sparse) > CHILDREN_BYTES else sparse


def decode_stored(node_id: bytes, stored: bytes) -> bytes:
    """A record from its database form (`encode_stored`); a 512-byte node is the array itself."""
    if node_id[0] == BUCKET_DEPTH or len(stored) == CHILDREN_BYTES:
        return stored
    depth = node_id[0]
    if depth > BUCKET_DEPTH or stored[:2] == b"\x00\x00":  # (an empty subtree has no record)
        raise StoreCorrupt(f"state tree node {node_id.hex()} is unreadable: no children")
    try:
        return bytes(expand_level(stored, depth))
    except ProofError as exc:
        raise StoreCorrupt(f"state tree node {node_id.hex()} is unreadable: {exc}") from None


def compute_changes(writes: Iterable[tuple[bytes, bytes | None]]) -> list[Change]:
    """Key/value writes -> tree changes sorted by path (the caller gives each key at most once)."""
    changes = [
        (compute_key_path(key), None if value is None else compute_value_digest(value))
        for key, value in writes
    ]
    changes.sort()
    return changes


def _splice_bucket(entries: bytes, changes: Sequence[Change], lo: int, hi: int) -> bytes:
    """A bucket's entries with changes[lo:hi] (sorted, all of this bucket) applied."""
    for index in range(lo, hi):
        path, digest = changes[index]
        at, found = find_entry(entries, path)
        end = at + ENTRY_BYTES if found else at
        if digest is None:
            if found:
                entries = entries[:at] + entries[end:]
        else:
            entries = entries[:at] + path + digest + entries[end:]
    return entries


def apply_changes(
    load: NodeLoader, changes: Sequence[Change], writes: MutableMapping[bytes, bytes | None]
) -> bytes:
    """Apply sorted, distinct-path changes to the tree behind `load`; record writes go to `writes`; new root."""
    if not changes:
        return compute_record_root(_load_node(load, ROOT_NODE_ID))
    # Bottom level: each touched bucket once. `level` holds (a path below the slot, its new hash), ascending.
    level: list[tuple[bytes, bytes]] = []
    count = len(changes)
    i = 0
    while i < count:
        path = changes[i][0]
        bucket = path[:BUCKET_ID_BYTES]
        j = i + 1
        while j < count and changes[j][0][:BUCKET_ID_BYTES] == bucket:
            j += 1
        bucket_id = _BUCKET_ID_HEAD + bucket
        entries = _splice_bucket(_load_bucket(load, bucket_id), changes, i, j)
        writes[bucket_id] = entries or None
        level.append((path, compute_bucket_hash(entries)))
        i = j
    # Then each touched node once, depth 3 up to the root.
    for depth in range(NODE_DEPTHS - 1, -1, -1):
        parents: list[tuple[bytes, bytes]] = []
        empty_children = EMPTY_CHILDREN_AT[depth]
        k = 0
        while k < len(level):
            path = level[k][0]
            node_id = compute_node_id(depth, path)
            children = bytearray(_load_node(load, node_id) or empty_children)
            while True:
                nibble = get_nibble(level[k][0], depth) * HASH_BYTES
                children[nibble : nibble + HASH_BYTES] = level[k][1]
                k += 1
                if k == len(level) or compute_node_id(depth, level[k][0]) != node_id:
                    break
            if children == empty_children:
                writes[node_id] = None
                parents.append((path, EMPTY_AT[depth]))
            else:
                record = bytes(children)
                writes[node_id] = record
                parents.append((path, compute_node_hash(record)))
        level = parents
    return level[0][1]


def _load_bucket(load: NodeLoader, bucket_id: bytes) -> bytes:
    entries = load(bucket_id)
    if entries is None:
        return b""
    if not entries or len(entries) % ENTRY_BYTES:
        raise StoreCorrupt(f"state bucket {bucket_id.hex()} is {len(entries)} bytes")
    return entries


def _load_node(load: NodeLoader, node_id: bytes) -> bytes | None:
    record = load(node_id)
    if record is not None and len(record) != CHILDREN_BYTES:
        raise StoreCorrupt(f"state tree node {node_id.hex()} is {len(record)} bytes")
    return record


def build_trie(entries: Iterable[tuple[bytes, bytes]], writes: MutableMapping[bytes, bytes | None]) -> bytes:
    """Records of a whole state from scratch, into `writes` (to rebuild, bulk-load or check); the root."""
    changes: list[Change] = sorted((compute_key_path(k), compute_value_digest(v)) for k, v in entries)
    return apply_changes(_no_records, changes, writes)


def compute_state_root(entries: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The root of a whole state computed from scratch (tests, audits, bulk checks)."""
    return build_trie(entries, {})


def collect_proof(load: NodeLoader, path: bytes) -> tuple[list[bytes], bytes]:
    """Walk from the root along `path`: the proof levels and the entries of the path's bucket."""
    levels = []
    for depth in range(NODE_DEPTHS):
        children = _load_node(load, compute_node_id(depth, path)) or EMPTY_CHILDREN_AT[depth]
        levels.append(encode_level(children, depth, get_nibble(path, depth)))
    return levels, _load_bucket(load, _BUCKET_ID_HEAD + path[:BUCKET_ID_BYTES])


def find_in_bucket(entries: bytes, path: bytes) -> tuple[bytes | None, bytes]:
    """(the path's value digest or None, the other entries) of a bucket."""
    at, found = find_entry(entries, path)
    if not found:
        return None, entries
    return entries[at + HASH_BYTES : at + ENTRY_BYTES], entries[:at] + entries[at + ENTRY_BYTES :]


def compute_record_root(record: bytes | None) -> bytes:
    """The state root from the root node's record (None: the empty state)."""
    return EMPTY_AT[0] if record is None else compute_node_hash(record)


def _no_records(node_id: bytes) -> bytes | None:
    return None
