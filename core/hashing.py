"""Domain-separated SHA-256 and the Merkle root over lists.

Every hashed object kind has its own tag, so no two kinds can share a preimage:
    H(domain, payload) = SHA-256(b"carbonchain/" + domain + b"\\x00" + payload)
Domains contain no NUL byte, so the tag ends unambiguously. Payloads are canonical encodings (core.codec)
or fixed-length digests, never plain concatenations of variable-length data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from enum import Enum
from typing import Any

from core import codec

HASH_BYTES = 32


class Domain(Enum):
    """The hash domains; the value is the tag that prefixes the payload."""

    GENESIS = "genesis"
    TX = "tx"
    BLOCK_HEADER = "block-header"
    TX_RESULT = "tx-result"
    MERKLE_LEAF = "merkle-leaf"
    MERKLE_NODE = "merkle-node"
    MERKLE_EMPTY = "merkle-empty"
    STATE_BUCKET = "state-bucket"  # a bucket of the state tree: its entries (storage/proof.py)
    STATE_NODE = "state-node"
    STATE_KEY = "state-key"  # a state key's 256-bit path in the state tree
    STATE_VALUE = "state-value"  # digest of a state value inside a bucket entry
    PRE_PREPARE = "pre-prepare"
    PREPARE = "prepare"
    COMMIT = "commit"
    CHECKPOINT = "checkpoint"
    VIEW_CHANGE = "view-change"
    NEW_VIEW = "new-view"
    PEER_HANDSHAKE = "peer-handshake"
    KEY_ID = "key-id"
    VALIDATOR_SET = "validator-set"  # a validator set, as block headers name it (core/validators.py)
    NODE_KEY_PROOF = "node-key-proof"  # a new validator node key signs this to prove it holds the key

    # Members are singletons: hash them by identity, in C. Enum.__hash__ (a Python call hashing the name)
    # made the lookup of a tag in _PREFIXES cost as much as the SHA-256 of a small payload.
    __hash__ = object.__hash__

    @property
    def prefix(self) -> bytes:
        return _PREFIXES[self]


_PREFIXES = {domain: b"carbonchain/" + domain.value.encode("ascii") + b"\x00" for domain in Domain}
_LEAF_PREFIX = _PREFIXES[Domain.MERKLE_LEAF]
_NODE_PREFIX = _PREFIXES[Domain.MERKLE_NODE]


def tagged_hash(domain: Domain, payload: bytes) -> bytes:
    """SHA-256 of the domain's tag followed by the payload bytes."""
    return hashlib.sha256(_PREFIXES[domain] + payload).digest()


def hash_value(domain: Domain, value: Any) -> bytes:
    """Hash of a value's canonical encoding under a domain."""
    return tagged_hash(domain, codec.encode(value))


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962-style Merkle root: leaves and inner nodes hashed under distinct domains.

    The split point is the largest power of two smaller than the count, so every list has one tree shape.
    An empty list has the root H(merkle-empty, b"").

    Built bottom up, which gives that very tree: each level pairs its nodes left to right, and an odd
    last node moves up a level as it is (it is the root of the right part of a split).
    """
    if not leaves:
        return tagged_hash(Domain.MERKLE_EMPTY, b"")
    sha256 = hashlib.sha256
    level = [sha256(_LEAF_PREFIX + leaf).digest() for leaf in leaves]
    while len(level) > 1:
        paired = [
            sha256(_NODE_PREFIX + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]
