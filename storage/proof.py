"""State-trie hashing and proof verification, free of plyvel so clients and auditors can check proofs alone.

The world state is committed to by a hexary Merkle trie over 256-bit key paths (docs/protocol/storage.md):

    key_path(key)       = H(state-key, key)                      # 32 bytes, read as 64 nibbles, high first
    value_digest(value) = H(state-value, value)
    leaf_hash           = H(state-leaf, key_path || value_digest)
    EMPTY               = H(state-empty, b"")                      # an empty child slot
    node_hash           = H(state-node, child_0 || ... || child_15)  # 16 x 32 bytes, EMPTY where empty

The root is always a node at depth 0. A node at depth d >= 1 exists exactly when at least two keys share the
first d nibbles of their paths; a key alone in its subtree is a leaf in the slot of the shallowest node that
holds it. The shape therefore depends only on the set of keys, never on the order of writes.

A proof is the list of nodes from the root down to the slot where the key's path ends, each node given as the
hashes of its non-empty children other than the one on the path, plus what that slot holds: the value (the
key is present), another leaf whose path shares the prefix (absent), or nothing (absent).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from core import codec
from core.errors import CodecError
from core.hashing import HASH_BYTES, Domain
from storage.errors import ProofError

NIBBLES_MAX = 2 * HASH_BYTES  # two distinct 256-bit paths differ within 64 nibbles
CHILDREN = 16
PROOF_BYTES_MAX = 64 * 1024 + 1024 * 1024  # 64 levels of 15 siblings, plus a value of up to 1 MiB

_KEY_PREFIX = Domain.STATE_KEY.prefix
_VALUE_PREFIX = Domain.STATE_VALUE.prefix
_LEAF_PREFIX = Domain.STATE_LEAF.prefix
_NODE_PREFIX = Domain.STATE_NODE.prefix
_sha256 = hashlib.sha256

EMPTY_HASH = _sha256(Domain.STATE_EMPTY.prefix).digest()
EMPTY_CHILDREN = EMPTY_HASH * CHILDREN  # the 512-byte child array of a node with no children
EMPTY_STATE_ROOT = _sha256(_NODE_PREFIX + EMPTY_CHILDREN).digest()  # root of a state with no keys


def compute_key_path(key: bytes) -> bytes:
    return _sha256(_KEY_PREFIX + key).digest()


def compute_value_digest(value: bytes) -> bytes:
    return _sha256(_VALUE_PREFIX + value).digest()


def compute_leaf_hash(key_path: bytes, value_digest: bytes) -> bytes:
    return _sha256(_LEAF_PREFIX + key_path + value_digest).digest()


def compute_node_hash(children: bytes | bytearray) -> bytes:
    """Hash of a node from its 16 child hashes laid end to end (512 bytes)."""
    return _sha256(_NODE_PREFIX + children).digest()


def get_nibble(path: bytes, depth: int) -> int:
    """Nibble `depth` of a path: the high half of byte depth//2 first."""
    byte = path[depth >> 1]
    return byte & 0x0F if depth & 1 else byte >> 4


def is_same_prefix(path_a: bytes, path_b: bytes, nibbles: int) -> bool:
    """Do two paths agree on their first `nibbles` nibbles?"""
    whole = nibbles >> 1
    if path_a[:whole] != path_b[:whole]:
        return False
    return not (nibbles & 1) or path_a[whole] >> 4 == path_b[whole] >> 4


@dataclass(frozen=True, slots=True)
class StateProof:
    """What a node sends a client so it can check one key against a state root."""

    levels: tuple[
        bytes, ...
    ]  # per node from the root down: u16 big-endian sibling bitmap + 32 bytes per set bit
    value: bytes | None  # the key's value when the proof shows it present
    other_leaf: (
        tuple[bytes, bytes] | None
    )  # (key path, value digest) of the leaf found in the key's slot instead

    def to_wire(self) -> dict[str, Any]:
        return {
            "levels": list(self.levels),
            "other_leaf": None if self.other_leaf is None else list(self.other_leaf),
            "value": self.value,
        }

    @classmethod
    def from_wire(cls, value: Any) -> StateProof:
        if type(value) is not dict or sorted(value) != ["levels", "other_leaf", "value"]:
            raise ProofError("a state proof is a map of exactly levels, other_leaf and value")
        levels, other, proven = value["levels"], value["other_leaf"], value["value"]
        if type(levels) is not list or not all(type(level) is bytes for level in levels):
            raise ProofError("levels must be a list of byte strings")
        if proven is not None and type(proven) is not bytes:
            raise ProofError("value must be bytes or nil")
        other_leaf: tuple[bytes, bytes] | None = None
        if other is not None:
            if (
                type(other) is not list
                or len(other) != 2
                or not all(type(part) is bytes and len(part) == HASH_BYTES for part in other)
            ):
                raise ProofError("other_leaf must be [key path, value digest], 32 bytes each")
            other_leaf = (other[0], other[1])
        return cls(tuple(levels), proven, other_leaf)

    def encode(self) -> bytes:
        return codec.encode(self.to_wire())

    @classmethod
    def decode(cls, data: bytes) -> StateProof:
        try:
            return cls.from_wire(codec.decode(data, max_bytes=PROOF_BYTES_MAX))
        except CodecError as exc:
            raise ProofError(f"state proof is not canonical msgpack: {exc}") from None


def encode_level(children: bytes | bytearray, skip: int) -> bytes:
    """A proof level from a node's 512-byte child array, leaving out child `skip` (the one on the path)."""
    bitmap = 0
    parts = []
    for nibble in range(CHILDREN):
        child = children[nibble * HASH_BYTES : (nibble + 1) * HASH_BYTES]
        if nibble != skip and child != EMPTY_HASH:
            bitmap |= 1 << nibble
            parts.append(bytes(child))
    return bitmap.to_bytes(2, "big") + b"".join(parts)


def verify_state_proof(root: bytes, key: bytes, proof: StateProof) -> bytes | None:
    """Check a proof against a state root: the key's value if present, None if proven absent.

    Raises ProofError when the proof is malformed or does not hash to `root`.
    """
    if type(root) is not bytes or len(root) != HASH_BYTES:
        raise ProofError("a state root is 32 bytes")
    depth = len(proof.levels)
    if not 1 <= depth <= NIBBLES_MAX:
        raise ProofError(f"a proof has between 1 and {NIBBLES_MAX} levels, this one has {depth}")
    path = compute_key_path(key)
    if proof.value is not None:
        if proof.other_leaf is not None:
            raise ProofError("a proof shows a value or another leaf, not both")
        current = compute_leaf_hash(path, compute_value_digest(proof.value))
    elif proof.other_leaf is not None:
        other_path, other_digest = proof.other_leaf
        if len(other_path) != HASH_BYTES or len(other_digest) != HASH_BYTES:
            raise ProofError("other_leaf parts are 32 bytes each")
        if other_path == path:
            raise ProofError("other_leaf is the key itself: the proof hides its value")
        if not is_same_prefix(other_path, path, depth):
            raise ProofError("other_leaf does not sit on the key's path")
        current = compute_leaf_hash(other_path, other_digest)
    else:
        current = EMPTY_HASH
    is_leaf = current != EMPTY_HASH
    for level_depth in range(depth - 1, -1, -1):
        level = proof.levels[level_depth]
        if len(level) < 2:
            raise ProofError(f"level {level_depth} is shorter than its bitmap")
        bitmap = int.from_bytes(level[:2], "big")
        nibble = get_nibble(path, level_depth)
        if bitmap >> nibble & 1:
            raise ProofError(f"level {level_depth} lists a sibling in the slot on the key's path")
        count = bitmap.bit_count()
        if len(level) != 2 + count * HASH_BYTES:
            raise ProofError(f"level {level_depth} has {len(level) - 2} hash bytes for {count} siblings")
        if is_leaf and level_depth == depth - 1 and level_depth > 0 and count == 0:
            raise ProofError("a leaf alone in a node below the root is not in canonical position")
        children = bytearray(EMPTY_CHILDREN)
        offset = 2
        for child in range(CHILDREN):
            if bitmap >> child & 1:
                sibling = level[offset : offset + HASH_BYTES]
                if sibling == EMPTY_HASH:
                    raise ProofError(f"level {level_depth} lists an empty sibling")
                children[child * HASH_BYTES : (child + 1) * HASH_BYTES] = sibling
                offset += HASH_BYTES
        children[nibble * HASH_BYTES : (nibble + 1) * HASH_BYTES] = current
        current = compute_node_hash(children)
    if current != root:
        raise ProofError("proof does not lead to the state root")
    return proof.value
