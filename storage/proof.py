"""State-tree hashing and proof verification, free of plyvel so clients and auditors can check proofs alone.

The world state is committed to by a bucket tree of fixed depth (docs/protocol/storage.md):

    key_path(key)        = H(state-key, key)            # 32 bytes; its first 2 bytes name the key's bucket
    value_digest(value)  = H(state-value, value)
    entry                = key_path || value_digest    # 64 bytes
    bucket_hash          = H(state-bucket, entries of the bucket, ascending by key path)
    node_hash            = H(state-node, child_0 || ... || child_15)   # 16 x 32 bytes

Nodes sit at depths 0..3; child i of the node at depth d whose prefix is the path's first d nibbles is the
node (d < 3) or bucket (d = 3) with one more nibble, i. So there are exactly 65,536 buckets and every key
is 4 nodes below the root whatever the size of the state: a block's cost per changed key does not grow
with the number of keys (only a bucket's size does, by 64 bytes per 65,536 keys). An empty bucket hashes
like any other (no entries) and an empty subtree hashes to EMPTY_AT[depth]; the shape depends only on the
set of keys, never on the order of writes.

A proof is the key's path through the four nodes (each node's siblings of the path slot) plus the other
entries of the key's bucket: the verifier puts the key's own entry in when it claims a value, hashes the
bucket and climbs to the root. A bucket without the key's path proves absence.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from core import codec
from core.errors import CodecError
from core.hashing import HASH_BYTES, Domain
from storage.errors import ProofError

CHILDREN = 16
NODE_DEPTHS = 4  # node levels above the buckets
BUCKET_ID_BYTES = NODE_DEPTHS // 2  # the bucket of a key: the first 4 nibbles (2 bytes) of its path
ENTRY_BYTES = 2 * HASH_BYTES  # key path + value digest
CHILDREN_BYTES = CHILDREN * HASH_BYTES
PROOF_BYTES_MAX = (
    8 * 1024 * 1024
)  # a value of up to 1 MiB and a bucket of 100,000 entries (a state of 6e9 keys)

_KEY_PREFIX = Domain.STATE_KEY.prefix
_VALUE_PREFIX = Domain.STATE_VALUE.prefix
_BUCKET_PREFIX = Domain.STATE_BUCKET.prefix
_NODE_PREFIX = Domain.STATE_NODE.prefix
_sha256 = hashlib.sha256


def compute_key_path(key: bytes) -> bytes:
    return _sha256(_KEY_PREFIX + key).digest()


def compute_value_digest(value: bytes) -> bytes:
    return _sha256(_VALUE_PREFIX + value).digest()


def compute_bucket_hash(entries: bytes) -> bytes:
    """Hash of a bucket from its 64-byte entries laid end to end, ascending by key path."""
    return _sha256(_BUCKET_PREFIX + entries).digest()


def compute_node_hash(children: bytes | bytearray) -> bytes:
    """Hash of a node from its 16 child hashes laid end to end (512 bytes)."""
    return _sha256(_NODE_PREFIX + children).digest()


def _make_empty_hashes() -> tuple[bytes, ...]:
    hashes = [compute_bucket_hash(b"")]
    for _ in range(NODE_DEPTHS):
        hashes.append(compute_node_hash(hashes[-1] * CHILDREN))
    return tuple(reversed(hashes))


EMPTY_AT = _make_empty_hashes()  # hash of an empty subtree rooted at depth d (d = 4: an empty bucket)
EMPTY_CHILDREN_AT = tuple(EMPTY_AT[depth + 1] * CHILDREN for depth in range(NODE_DEPTHS))
EMPTY_STATE_ROOT = EMPTY_AT[0]  # root of a state with no keys


def get_nibble(path: bytes, depth: int) -> int:
    """Nibble `depth` of a path: the high half of byte depth//2 first."""
    byte = path[depth >> 1]
    return byte & 0x0F if depth & 1 else byte >> 4


def find_entry(entries: bytes, path: bytes) -> tuple[int, bool]:
    """Byte offset where `path`'s entry is or would go in sorted entries, and whether it is there."""
    lo, hi = 0, len(entries) // ENTRY_BYTES
    while lo < hi:
        mid = (lo + hi) >> 1
        at = mid * ENTRY_BYTES
        if entries[at : at + HASH_BYTES] < path:
            lo = mid + 1
        else:
            hi = mid
    at = lo * ENTRY_BYTES
    return at, entries[at : at + HASH_BYTES] == path


@dataclass(frozen=True, slots=True)
class StateProof:
    """What a node sends a client so it can check one key against a state root."""

    levels: tuple[bytes, ...]  # per node from the root down: u16 big-endian sibling bitmap + 32 bytes per bit
    others: bytes  # the other entries of the key's bucket, ascending by key path, 64 bytes each
    value: bytes | None  # the key's value when the proof shows it present

    def to_wire(self) -> dict[str, Any]:
        return {"levels": list(self.levels), "others": self.others, "value": self.value}

    @classmethod
    def from_wire(cls, value: Any) -> StateProof:
        if type(value) is not dict or sorted(value) != ["levels", "others", "value"]:
            raise ProofError("a state proof is a map of exactly levels, others and value")
        levels, others, proven = value["levels"], value["others"], value["value"]
        if type(levels) is not list or not all(type(level) is bytes for level in levels):
            raise ProofError("levels must be a list of byte strings")
        if type(others) is not bytes:
            raise ProofError("others must be bytes")
        if proven is not None and type(proven) is not bytes:
            raise ProofError("value must be bytes or nil")
        return cls(tuple(levels), others, proven)

    def encode(self) -> bytes:
        return codec.encode(self.to_wire())

    @classmethod
    def decode(cls, data: bytes) -> StateProof:
        try:
            return cls.from_wire(codec.decode(data, max_bytes=PROOF_BYTES_MAX))
        except CodecError as exc:
            raise ProofError(f"state proof is not canonical msgpack: {exc}") from None


def encode_level(children: bytes, depth: int, skip: int) -> bytes:
    """A proof level from a node's 512-byte child array, leaving out child `skip` (the one on the path)."""
    empty = EMPTY_AT[depth + 1]
    bitmap = 0
    parts = []
    for nibble in range(CHILDREN):
        child = children[nibble * HASH_BYTES : (nibble + 1) * HASH_BYTES]
        if nibble != skip and child != empty:
            bitmap |= 1 << nibble
            parts.append(child)
    return bitmap.to_bytes(2, "big") + b"".join(parts)


def expand_level(level: bytes, depth: int) -> bytearray:
    """A node's 512-byte child array from its sparse form (a u16 big-endian bitmap of the listed children,
    then their hashes in slot order; every other child is EMPTY_AT[depth + 1])."""
    if len(level) < 2:
        raise ProofError(f"level {depth} is shorter than its bitmap")
    bitmap = int.from_bytes(level[:2], "big")
    if len(level) != 2 + bitmap.bit_count() * HASH_BYTES:
        raise ProofError(f"level {depth} has {len(level) - 2} hash bytes for {bitmap.bit_count()} siblings")
    empty = EMPTY_AT[depth + 1]
    children = bytearray(EMPTY_CHILDREN_AT[depth])
    offset = 2
    for child in range(CHILDREN):
        if bitmap >> child & 1:
            sibling = level[offset : offset + HASH_BYTES]
            if sibling == empty:
                raise ProofError(f"level {depth} lists an empty sibling")
            children[child * HASH_BYTES : (child + 1) * HASH_BYTES] = sibling
            offset += HASH_BYTES
    return children


def verify_state_proof(root: bytes, key: bytes, proof: StateProof) -> bytes | None:
    """Check a proof against a state root: the key's value if present, None if proven absent.

    Raises ProofError when the proof is malformed or does not hash to `root`.
    """
    if type(root) is not bytes or len(root) != HASH_BYTES:
        raise ProofError("a state root is 32 bytes")
    if len(proof.levels) != NODE_DEPTHS:
        raise ProofError(f"a proof has {NODE_DEPTHS} levels, this one has {len(proof.levels)}")
    path = compute_key_path(key)
    current = compute_bucket_hash(_rebuild_bucket(path, proof))
    for depth in range(NODE_DEPTHS - 1, -1, -1):
        level = proof.levels[depth]
        if len(level) < 2:
            raise ProofError(f"level {depth} is shorter than its bitmap")
        bitmap = int.from_bytes(level[:2], "big")
        nibble = get_nibble(path, depth)
        if bitmap >> nibble & 1:
            raise ProofError(f"level {depth} lists a sibling in the slot on the key's path")
        children = expand_level(level, depth)
        children[nibble * HASH_BYTES : (nibble + 1) * HASH_BYTES] = current
        current = compute_node_hash(children)
    if current != root:
        raise ProofError("proof does not lead to the state root")
    return proof.value


def _rebuild_bucket(path: bytes, proof: StateProof) -> bytes:
    """The key's bucket as the proof claims it: the other entries, plus the key's own when it has a value."""
    others = proof.others
    if len(others) % ENTRY_BYTES:
        raise ProofError("others must be whole 64-byte entries")
    bucket = path[:BUCKET_ID_BYTES]
    previous = b""
    for at in range(0, len(others), ENTRY_BYTES):
        other_path = others[at : at + HASH_BYTES]
        if other_path[:BUCKET_ID_BYTES] != bucket:
            raise ProofError("an entry in others belongs to another bucket")
        if other_path <= previous:
            raise ProofError("others are not in ascending key-path order")
        if other_path == path:
            raise ProofError("others hold the key itself: the proof hides its value")
        previous = other_path
    if proof.value is None:
        return others
    at, _ = find_entry(others, path)
    return others[:at] + path + compute_value_digest(proof.value) + others[at:]
