"""The state trie's update algorithm over a node store given as functions: no plyvel, no I/O of its own.

A block's net changes arrive as (key path, value digest or None) pairs sorted by path; one descent from the
root visits each affected node once, rewrites it, and collects node writes (node id -> record, or None to
delete) for the caller to put into the block's single write batch. Cost per changed key is one node per level,
about log16(keys) levels (5-6 at a million keys), and the top levels are shared by all changes of a block.

Node ids are u8 depth + the first `depth` nibbles packed high-first into bytes (an odd last nibble is padded
with a zero nibble). A node record is its 16 child hashes (512 bytes), a u16 big-endian bitmap of which
children are leaves (bit i for child i), then key path + value digest (64 bytes) for each leaf child in
ascending child order. Hashing rules are in storage/proof.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping, Sequence

from storage.proof import (
    CHILDREN,
    EMPTY_CHILDREN,
    EMPTY_HASH,
    compute_key_path,
    compute_leaf_hash,
    compute_node_hash,
    compute_value_digest,
    encode_level,
    get_nibble,
)

ROOT_NODE_ID = b"\x00"
CHILD_BYTES = 32
CHILDREN_BYTES = CHILDREN * CHILD_BYTES
LEAF_ENTRY_BYTES = 64
LEAF_AREA = CHILDREN_BYTES + 2  # offset of the first leaf entry in a node record
EMPTY_RECORD = EMPTY_CHILDREN + b"\x00\x00"

NodeLoader = Callable[[bytes], bytes | None]
Change = tuple[bytes, bytes | None]  # (key path, value digest or None to delete)


def compute_node_id(depth: int, path: bytes) -> bytes:
    whole = depth >> 1
    if depth & 1:
        return bytes((depth,)) + path[:whole] + bytes((path[whole] & 0xF0,))
    return bytes((depth,)) + path[:whole]


def compute_changes(writes: Iterable[tuple[bytes, bytes | None]]) -> list[Change]:
    """Key/value writes -> trie changes sorted by path (the caller gives each key at most once)."""
    changes = [
        (compute_key_path(key), None if value is None else compute_value_digest(value))
        for key, value in writes
    ]
    changes.sort()
    return changes


class _Update:
    """One pass over the trie: reads nodes through `load`, records node writes in `writes`."""

    __slots__ = ("changes", "load", "writes")

    def __init__(
        self, load: NodeLoader, changes: Sequence[Change], writes: MutableMapping[bytes, bytes | None] | None
    ) -> None:
        self.load = load
        self.changes = changes
        self.writes = writes

    def update_node(
        self, depth: int, node_id: bytes, record: bytes, lo: int, hi: int
    ) -> tuple[bytes, bytes | None]:
        """Apply changes[lo:hi] below an existing node; returns the slot's new (hash, leaf entry or None)."""
        # Hot path: nibbles and leaf offsets are computed inline, and the leaf area is only rebuilt when a
        # leaf child changed.
        changes = self.changes
        children = bytearray(record[:CHILDREN_BYTES])
        bits = (record[CHILDREN_BYTES] << 8) | record[CHILDREN_BYTES + 1]
        leaf_updates: dict[int, bytes | None] = {}
        may_collapse = False
        byte_index = depth >> 1
        odd = depth & 1
        i = lo
        while i < hi:
            path = changes[i][0]
            nibble = path[byte_index] & 0x0F if odd else path[byte_index] >> 4
            j = i + 1
            while j < hi and (
                (changes[j][0][byte_index] & 0x0F if odd else changes[j][0][byte_index] >> 4) == nibble
            ):
                j += 1
            start = nibble * CHILD_BYTES
            if bits >> nibble & 1:
                offset = LEAF_AREA + (bits & ((1 << nibble) - 1)).bit_count() * LEAF_ENTRY_BYTES
                child_hash, leaf = self.place(depth + 1, record[offset : offset + LEAF_ENTRY_BYTES], i, j)
                leaf_updates[nibble] = leaf
                may_collapse = may_collapse or leaf is None
            elif children[start : start + CHILD_BYTES] == EMPTY_HASH:
                child_hash, leaf = self.place(depth + 1, None, i, j)
                if leaf is not None:
                    leaf_updates[nibble] = leaf
            else:
                child_id = compute_node_id(depth + 1, path)
                child_record = self.load(child_id)
                if child_record is None:
                    raise KeyError(f"state trie node {child_id.hex()} is missing")
                child_hash, leaf = self.update_node(depth + 1, child_id, child_record, i, j)
                if leaf is not None:
                    leaf_updates[nibble] = leaf
                    may_collapse = True
                elif child_hash == EMPTY_HASH:
                    may_collapse = True
            children[start : start + CHILD_BYTES] = child_hash
            i = j
        new_bits = bits
        for nibble, leaf in leaf_updates.items():
            if leaf is None:
                new_bits &= ~(1 << nibble)
            else:
                new_bits |= 1 << nibble
        if depth and may_collapse:
            occupied = [n for n in range(CHILDREN) if children[n * 32 : n * 32 + 32] != EMPTY_HASH]
            if not occupied or (len(occupied) == 1 and new_bits >> occupied[0] & 1):
                if self.writes is not None:
                    self.writes[node_id] = None
                if not occupied:
                    return EMPTY_HASH, None
                only = occupied[0]
                leaf = leaf_updates.get(only) or _leaf_at(record, bits, only)
                return bytes(children[only * 32 : only * 32 + 32]), leaf
        if self.writes is not None:
            if not depth and children == EMPTY_CHILDREN:
                # An empty root is stored as no record at all, as a from-scratch build of no keys leaves it.
                self.writes[node_id] = None
            elif not leaf_updates:
                self.writes[node_id] = bytes(children) + record[CHILDREN_BYTES:]
            else:
                parts = [bytes(children), new_bits.to_bytes(2, "big")]
                remaining = new_bits
                while remaining:
                    lowest = remaining & -remaining
                    nibble = lowest.bit_length() - 1
                    remaining ^= lowest
                    updated = leaf_updates.get(nibble, b"")
                    parts.append(updated if updated else _leaf_at(record, bits, nibble))
                self.writes[node_id] = b"".join(parts)
        return compute_node_hash(children), None

    def place(self, depth: int, existing: bytes | None, lo: int, hi: int) -> tuple[bytes, bytes | None]:
        """Changes into a slot holding nothing or one leaf; a node at `depth` appears if two keys remain."""
        changes = self.changes
        if hi - lo == 1 and (existing is None or existing[:32] == changes[lo][0]):
            path, digest = changes[lo]
            if digest is None:
                return EMPTY_HASH, None
            return compute_leaf_hash(path, digest), path + digest
        entries: dict[bytes, bytes] = {}
        if existing is not None:
            entries[existing[:32]] = existing[32:]
        for path, digest in changes[lo:hi]:
            if digest is None:
                entries.pop(path, None)
            else:
                entries[path] = digest
        if not entries:
            return EMPTY_HASH, None
        if len(entries) == 1:
            path, digest = next(iter(entries.items()))
            return compute_leaf_hash(path, digest), path + digest
        items = sorted(entries.items())
        return self.build(depth, items, 0, len(items)), None

    def build(self, depth: int, items: Sequence[tuple[bytes, bytes]], lo: int, hi: int) -> bytes:
        """A fresh subtree at `depth` for items[lo:hi] (two or more, or any number at the root)."""
        children = bytearray(EMPTY_CHILDREN)
        leaves: dict[int, bytes] = {}
        i = lo
        while i < hi:
            nibble = get_nibble(items[i][0], depth)
            j = i + 1
            while j < hi and get_nibble(items[j][0], depth) == nibble:
                j += 1
            if j - i == 1:
                path, digest = items[i]
                child_hash = compute_leaf_hash(path, digest)
                leaves[nibble] = path + digest
            else:
                child_hash = self.build(depth + 1, items, i, j)
            children[nibble * 32 : nibble * 32 + 32] = child_hash
            i = j
        if self.writes is not None and hi > lo:
            node_id = ROOT_NODE_ID if depth == 0 else compute_node_id(depth, items[lo][0])
            self.writes[node_id] = _encode_record(children, leaves)
        return compute_node_hash(children)


def apply_changes(
    load: NodeLoader, changes: Sequence[Change], writes: MutableMapping[bytes, bytes | None]
) -> bytes:
    """Apply sorted, distinct-path changes to the trie behind `load`; node writes go to `writes`; new root."""
    record = load(ROOT_NODE_ID)
    if record is None:
        record = EMPTY_RECORD
    if not changes:
        return compute_node_hash(record[:CHILDREN_BYTES])
    root, _ = _Update(load, changes, writes).update_node(0, ROOT_NODE_ID, record, 0, len(changes))
    return root


def compute_state_root(entries: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The root of a whole state computed from scratch (tests, audits, bulk checks)."""
    items = sorted((compute_key_path(key), compute_value_digest(value)) for key, value in entries)
    if not items:
        return compute_node_hash(EMPTY_CHILDREN)
    return _Update(_no_nodes, (), None).build(0, items, 0, len(items))


def build_trie(entries: Iterable[tuple[bytes, bytes]], writes: MutableMapping[bytes, bytes | None]) -> bytes:
    """Node records of a whole state from scratch, into `writes` (used to rebuild or bulk-load); the root."""
    items = sorted((compute_key_path(key), compute_value_digest(value)) for key, value in entries)
    return _Update(_no_nodes, (), writes).build(0, items, 0, len(items))


def collect_proof(load: NodeLoader, path: bytes) -> tuple[list[bytes], str, bytes | None]:
    """Walk from the root along `path`: proof levels and what the final slot holds.

    Returns (levels, kind, leaf entry) with kind "leaf" (entry = key path + value digest) or "empty".
    """
    levels: list[bytes] = []
    node_id = ROOT_NODE_ID
    record = load(node_id) or EMPTY_RECORD
    depth = 0
    while True:
        nibble = get_nibble(path, depth)
        levels.append(encode_level(record[:CHILDREN_BYTES], nibble))
        leaves = _parse_leaves(record)
        if nibble in leaves:
            return levels, "leaf", leaves[nibble]
        start = nibble * CHILD_BYTES
        if record[start : start + CHILD_BYTES] == EMPTY_HASH:
            return levels, "empty", None
        depth += 1
        node_id = compute_node_id(depth, path)
        child = load(node_id)
        if child is None:
            raise KeyError(f"state trie node {node_id.hex()} is missing")
        record = child


def compute_record_root(record: bytes | None) -> bytes:
    return compute_node_hash((record or EMPTY_RECORD)[:CHILDREN_BYTES])


def _no_nodes(node_id: bytes) -> bytes | None:
    return None


def _leaf_at(record: bytes, bits: int, nibble: int) -> bytes:
    """The leaf entry of child `nibble` in a record whose leaf bitmap is `bits` (the bit must be set)."""
    offset = LEAF_AREA + (bits & ((1 << nibble) - 1)).bit_count() * LEAF_ENTRY_BYTES
    return record[offset : offset + LEAF_ENTRY_BYTES]


def _parse_leaves(record: bytes) -> dict[int, bytes]:
    bits = (record[CHILDREN_BYTES] << 8) | record[CHILDREN_BYTES + 1]
    leaves: dict[int, bytes] = {}
    if bits:
        offset = CHILDREN_BYTES + 2
        for nibble in range(CHILDREN):
            if bits >> nibble & 1:
                leaves[nibble] = record[offset : offset + LEAF_ENTRY_BYTES]
                offset += LEAF_ENTRY_BYTES
    return leaves


def _encode_record(children: bytearray, leaves: dict[int, bytes]) -> bytes:
    if not leaves:
        return bytes(children) + b"\x00\x00"
    bits = 0
    for nibble in leaves:
        bits |= 1 << nibble
    ordered = b"".join(leaves[nibble] for nibble in sorted(leaves))
    return bytes(children) + bits.to_bytes(2, "big") + ordered
