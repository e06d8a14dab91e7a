"""The state trie's update algorithm over a node store given as functions: no plyvel, no I/O of its own.

A block's net changes arrive as (key path, value digest or None) pairs sorted by path; one descent from the
root visits each affected node once, rewrites it, and collects node writes (node id -> record, or None to
delete) for the caller to put into the block's single write batch. Cost per changed key is one node per level,
about log16(keys) levels (5-6 at a million keys), and the top levels are shared by all changes of a block.

Node ids are u8 depth + the first `depth` nibbles packed high-first into bytes (an odd last nibble is padded
with a zero nibble). A node record stores only what is there (docs/protocol/storage.md):

    u16 child bitmap   bit i set = child i is not empty                         (big-endian)
    u16 leaf bitmap    bit i set = child i is a leaf (a subset of the child bitmap)
    32 bytes per child in the child bitmap, ascending i: its hash
    64 bytes per child in the leaf bitmap, ascending i: key path + value digest

A node at depth 5 of a million-key state typically holds two leaves: 196 bytes instead of the 642 a record of
all 16 slots took. The hash of a node is still over all 16 slots (storage/proof.py); the update expands a
record to the 512-byte child array with precomputed slice tables (one per bitmap) and packs it back the same
way, so neither direction loops over slots in Python.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from operator import itemgetter
from typing import Any

from core.hashing import Domain
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
HEADER_BYTES = 4  # u16 child bitmap + u16 leaf bitmap
LEAF_ENTRY_BYTES = 64
RECORD_BYTES_MAX = HEADER_BYTES + CHILDREN_BYTES + CHILDREN * LEAF_ENTRY_BYTES  # 1,540: 16 leaf children
EMPTY_RECORD = b"\x00\x00\x00\x00"  # what an absent root reads as (the empty root is not stored)
_SCAN_MAX = 6  # groups of changes longer than this are delimited by bisection, shorter ones by a scan

NodeLoader = Callable[[bytes], bytes | None]
Change = tuple[bytes, bytes | None]  # (key path, value digest or None to delete)
_Getter = Callable[[Any], tuple[bytes, ...]]


_NODE_PREFIX = Domain.STATE_NODE.prefix
_NODE_BUFFER_HEAD = _NODE_PREFIX + EMPTY_CHILDREN  # + a record: what a node's hash preimage is cut from
_RECORD_HASHES_AT = len(_NODE_BUFFER_HEAD) + HEADER_BYTES  # where the record's hashes start in that buffer
_sha256 = hashlib.sha256
_slices: dict[tuple[int, int], slice] = {}


def _interned_slice(start: int, stop: int) -> slice:
    return _slices.setdefault((start, stop), slice(start, stop))


def _make_runs(bits: int, first: int, present_before: int) -> tuple[slice, ...]:
    """Slices of the buffer giving children first..first+7 of a node: runs of empty slots from
    EMPTY_CHILDREN, runs of present ones from the record's hashes (`present_before` hashes precede them)."""
    pieces = []
    slot = first
    while slot < first + 8:
        present = bits >> slot & 1
        end = slot
        while end < first + 8 and bits >> end & 1 == present:
            end += 1
        run = (end - slot) * CHILD_BYTES
        if present:
            start = _RECORD_HASHES_AT + present_before * CHILD_BYTES
            pieces.append(_interned_slice(start, start + run))
            present_before += end - slot
        else:
            pieces.append(_interned_slice(len(_NODE_PREFIX), len(_NODE_PREFIX) + run))
        slot = end
    return tuple(pieces)


# Children 0-7 by the low byte of the bitmap; children 8-15 by the high byte and the low byte's popcount.
_LOW_RUNS = [_make_runs(low, 0, 0) for low in range(256)]
_HIGH_RUNS = [[_make_runs(high << 8, 8, before) for before in range(9)] for high in range(256)]
_PIECES_CACHED_MAX = 8192  # bitmaps whose getter is kept (each a few hundred bytes); others built per use
_pieces: dict[int, _Getter] = {}


def _get_hash_pieces(bits: int) -> _Getter:
    """A getter of the pieces of a node's hash preimage (domain prefix + 512-byte child array), cut from
    _NODE_BUFFER_HEAD + record, for a node whose child bitmap is `bits`."""
    getter = _pieces.get(bits)
    if getter is None:
        low = bits & 0xFF
        getter = itemgetter(_PREFIX_SLICE, *_LOW_RUNS[low], *_HIGH_RUNS[bits >> 8][low.bit_count()])
        if len(_pieces) < _PIECES_CACHED_MAX:
            _pieces[bits] = getter
    return getter


_PREFIX_SLICE = slice(0, len(_NODE_PREFIX))


def compute_record_hash(record: bytes) -> bytes:
    """The node hash of a stored node record."""
    return _sha256(
        b"".join(_get_hash_pieces(record[0] << 8 | record[1])(_NODE_BUFFER_HEAD + record))
    ).digest()


def get_record_children(record: bytes) -> bytes:
    """The 512-byte child array (EMPTY in empty slots) of a stored node record."""
    pieces = _get_hash_pieces(record[0] << 8 | record[1])(_NODE_BUFFER_HEAD + record)
    return b"".join(pieces[1:])


def get_record_leaf(record: bytes, nibble: int) -> bytes | None:
    """Key path + value digest of leaf child `nibble`, or None if that child is not a leaf."""
    leaf_bits = record[2] << 8 | record[3]
    bit = 1 << nibble
    if not leaf_bits & bit:
        return None
    child_count = (record[0] << 8 | record[1]).bit_count()
    offset = HEADER_BYTES + child_count * CHILD_BYTES + (leaf_bits & (bit - 1)).bit_count() * LEAF_ENTRY_BYTES
    return record[offset : offset + LEAF_ENTRY_BYTES]


def encode_record(child_bits: int, leaf_bits: int, children: bytes | bytearray, leaves: bytes) -> bytes:
    """A node record from its bitmaps, its 512-byte child array and its leaf entries (ascending, joined)."""
    header = bytes((child_bits >> 8, child_bits & 0xFF, leaf_bits >> 8, leaf_bits & 0xFF))
    present = [
        children[n * CHILD_BYTES : (n + 1) * CHILD_BYTES] for n in range(CHILDREN) if child_bits >> n & 1
    ]
    return header + b"".join(present) + leaves


_DEPTH_BYTES = [bytes((depth,)) for depth in range(256)]
_HIGH_NIBBLE_BYTES = [bytes((byte & 0xF0,)) for byte in range(256)]


def compute_node_id(depth: int, path: bytes) -> bytes:
    whole = depth >> 1
    if depth & 1:
        return _DEPTH_BYTES[depth] + path[:whole] + _HIGH_NIBBLE_BYTES[path[whole]]
    return _DEPTH_BYTES[depth] + path[:whole]


def compute_changes(writes: Iterable[tuple[bytes, bytes | None]]) -> list[Change]:
    """Key/value writes -> trie changes sorted by path (the caller gives each key at most once)."""
    changes = [
        (compute_key_path(key), None if value is None else compute_value_digest(value))
        for key, value in writes
    ]
    changes.sort()
    return changes


def _group_end(items: Sequence[tuple[bytes, Any]], i: int, hi: int, depth: int) -> int:
    """End of the run of items[i:hi] (sorted, sharing `depth` nibbles) whose nibble `depth` equals items[i]'s."""
    path = items[i][0]
    byte_index = depth >> 1
    if depth & 1:
        nibble = path[byte_index] & 0x0F
        if hi - i <= _SCAN_MAX:
            j = i + 1
            while j < hi and items[j][0][byte_index] & 0x0F == nibble:
                j += 1
            return j
        if nibble == 15:
            return hi
        bound = path[:byte_index] + bytes(((path[byte_index] & 0xF0) | (nibble + 1),))
    else:
        nibble = path[byte_index] >> 4
        if hi - i <= _SCAN_MAX:
            j = i + 1
            while j < hi and items[j][0][byte_index] >> 4 == nibble:
                j += 1
            return j
        if nibble == 15:
            return hi
        bound = path[:byte_index] + bytes(((nibble + 1) << 4,))
    # (bound,) sorts before every (path, ...) with path >= bound, so this is the first item past the group.
    return bisect_left(items, (bound,), i + 1, hi)


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
        if hi - lo == 1:
            return self.update_path(depth, node_id, record, lo)
        changes = self.changes
        child_bits = record[0] << 8 | record[1]
        leaf_bits = record[2] << 8 | record[3]
        slots: list[tuple[int, bytes, bytes | None]] = []
        i = lo
        while i < hi:
            path = changes[i][0]
            nibble = get_nibble(path, depth)
            j = _group_end(changes, i, hi, depth)
            bit = 1 << nibble
            if leaf_bits & bit:
                existing = get_record_leaf(record, nibble)
                slots.append((nibble, *self.place(depth + 1, existing, i, j)))
            elif child_bits & bit:
                child_id = compute_node_id(depth + 1, path)
                child_record = self.load(child_id)
                if child_record is None:
                    raise KeyError(f"state trie node {child_id.hex()} is missing")
                slots.append((nibble, *self.update_node(depth + 1, child_id, child_record, i, j)))
            else:
                slots.append((nibble, *self.place(depth + 1, None, i, j)))
            i = j
        return self.rewrite(depth, node_id, record, slots)

    def update_path(
        self, depth: int, node_id: bytes, record: bytes, index: int
    ) -> tuple[bytes, bytes | None]:
        """Apply the single change changes[index] below an existing node (the common case in deep levels).

        Descends without recursion to the node whose slot on the path is a leaf or empty, then rewrites the
        nodes on the way back up.
        """
        path = self.changes[index][0]
        load = self.load
        stack: list[tuple[int, bytes, bytes, int]] = []
        while True:
            byte = path[depth >> 1]
            nibble = byte & 0x0F if depth & 1 else byte >> 4
            bit = 1 << nibble
            if not (record[0] << 8 | record[1]) & bit or (record[2] << 8 | record[3]) & bit:
                break
            stack.append((depth, node_id, record, nibble))
            depth += 1
            node_id = _DEPTH_BYTES[depth] + path[: depth >> 1]
            if depth & 1:
                node_id += _HIGH_NIBBLE_BYTES[path[depth >> 1]]
            child = load(node_id)
            if child is None:
                raise KeyError(f"state trie node {node_id.hex()} is missing")
            record = child
        writes = self.writes
        leaf: bytes | None
        existing = get_record_leaf(record, nibble)
        digest = self.changes[index][1]
        if existing is not None and digest is not None and existing[:32] == path:
            # The usual case: a key's value changes; the node keeps its shape, two spans are replaced.
            entry = path + digest
            child_hash = compute_leaf_hash(path, digest)
            child_bits = record[0] << 8 | record[1]
            below = (1 << nibble) - 1
            offset = HEADER_BYTES + (child_bits & below).bit_count() * CHILD_BYTES
            leaf_offset = (
                HEADER_BYTES
                + child_bits.bit_count() * CHILD_BYTES
                + ((record[2] << 8 | record[3]) & below).bit_count() * LEAF_ENTRY_BYTES
            )
            updated = (
                record[:offset]
                + child_hash
                + record[offset + CHILD_BYTES : leaf_offset]
                + entry
                + record[leaf_offset + LEAF_ENTRY_BYTES :]
            )
            if writes is not None:
                writes[node_id] = updated
            child_hash, leaf = compute_record_hash(updated), None
        else:
            child_hash, leaf = self.place(depth + 1, existing, index, index + 1)
            child_hash, leaf = self.rewrite(depth, node_id, record, ((nibble, child_hash, leaf),))
        for depth, node_id, record, nibble in reversed(stack):
            if leaf is not None:  # the node below collapsed into a leaf
                child_hash, leaf = self.rewrite(depth, node_id, record, ((nibble, child_hash, leaf),))
                continue
            # The usual case: a node child stays a node; only its hash changes in place.
            child_bits = record[0] << 8 | record[1]
            offset = HEADER_BYTES + (child_bits & ((1 << nibble) - 1)).bit_count() * CHILD_BYTES
            updated = record[:offset] + child_hash + record[offset + CHILD_BYTES :]
            if writes is not None:
                writes[node_id] = updated
            child_hash = compute_record_hash(updated)
        return child_hash, leaf

    def rewrite(
        self, depth: int, node_id: bytes, record: bytes, slots: Sequence[tuple[int, bytes, bytes | None]]
    ) -> tuple[bytes, bytes | None]:
        """A node with some children replaced; `slots` holds (child, new hash, new leaf entry or None) in
        ascending child order. Records the node's write; returns what its parent's slot now holds.
        """
        # Hot path: the new record is the old one with each changed child's hash and leaf entry spliced in
        # place, and the node is hashed straight from it: no per-slot work in Python.
        child_bits = record[0] << 8 | record[1]
        leaf_bits = record[2] << 8 | record[3]
        new = bytearray(record)
        for nibble, child_hash, leaf in slots:
            bit = 1 << nibble
            below = bit - 1
            offset = HEADER_BYTES + (child_bits & below).bit_count() * CHILD_BYTES
            if child_bits & bit:
                if child_hash == EMPTY_HASH:
                    del new[offset : offset + CHILD_BYTES]
                    child_bits ^= bit
                else:
                    new[offset : offset + CHILD_BYTES] = child_hash
            elif child_hash != EMPTY_HASH:
                new[offset:offset] = child_hash
                child_bits |= bit
            offset = (
                HEADER_BYTES
                + child_bits.bit_count() * CHILD_BYTES
                + (leaf_bits & below).bit_count() * LEAF_ENTRY_BYTES
            )
            if leaf_bits & bit:
                if leaf is None:
                    del new[offset : offset + LEAF_ENTRY_BYTES]
                    leaf_bits ^= bit
                else:
                    new[offset : offset + LEAF_ENTRY_BYTES] = leaf
            elif leaf is not None:
                new[offset:offset] = leaf
                leaf_bits |= bit
        writes = self.writes
        if depth and not child_bits & (child_bits - 1) and child_bits == leaf_bits:
            # No child left, or a lone leaf: this node disappears and the leaf moves up into its slot.
            if writes is not None:
                writes[node_id] = None
            if not child_bits:
                return EMPTY_HASH, None
            leaf_start = HEADER_BYTES + CHILD_BYTES
            return bytes(new[HEADER_BYTES:leaf_start]), bytes(new[leaf_start:])
        new[0:HEADER_BYTES] = bytes((child_bits >> 8, child_bits & 0xFF, leaf_bits >> 8, leaf_bits & 0xFF))
        updated = bytes(new)
        if writes is not None:
            # An empty root is stored as no record at all, as a from-scratch build of no keys leaves it.
            writes[node_id] = updated if child_bits else None
        return compute_record_hash(updated), None

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
        child_bits = leaf_bits = 0
        leaves: list[bytes] = []
        i = lo
        while i < hi:
            nibble = get_nibble(items[i][0], depth)
            j = hi if i + 1 == hi else _group_end(items, i, hi, depth)
            if j - i == 1:
                path, digest = items[i]
                child_hash = compute_leaf_hash(path, digest)
                leaf_bits |= 1 << nibble
                leaves.append(path + digest)
            else:
                child_hash = self.build(depth + 1, items, i, j)
            child_bits |= 1 << nibble
            children[nibble * CHILD_BYTES : (nibble + 1) * CHILD_BYTES] = child_hash
            i = j
        if self.writes is not None and hi > lo:
            node_id = ROOT_NODE_ID if depth == 0 else compute_node_id(depth, items[lo][0])
            self.writes[node_id] = encode_record(child_bits, leaf_bits, children, b"".join(leaves))
        return compute_node_hash(children)


def apply_changes(
    load: NodeLoader, changes: Sequence[Change], writes: MutableMapping[bytes, bytes | None]
) -> bytes:
    """Apply sorted, distinct-path changes to the trie behind `load`; node writes go to `writes`; new root."""
    record = load(ROOT_NODE_ID)
    if record is None:
        record = EMPTY_RECORD
    if not changes:
        return compute_record_root(record)
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
    record = load(ROOT_NODE_ID) or EMPTY_RECORD
    depth = 0
    while True:
        nibble = get_nibble(path, depth)
        levels.append(encode_level(get_record_children(record), nibble))
        leaf = get_record_leaf(record, nibble)
        if leaf is not None:
            return levels, "leaf", leaf
        if not (record[0] << 8 | record[1]) >> nibble & 1:
            return levels, "empty", None
        depth += 1
        node_id = compute_node_id(depth, path)
        child = load(node_id)
        if child is None:
            raise KeyError(f"state trie node {node_id.hex()} is missing")
        record = child


def compute_record_root(record: bytes | None) -> bytes:
    """The hash of a stored node record (the state root when it is the root's; None = the empty root)."""
    return compute_record_hash(record or EMPTY_RECORD)


def _no_nodes(node_id: bytes) -> bytes | None:
    return None
