"""Every LevelDB key layout of a node's store, in one place.

One LevelDB per node, in `<data dir>/db`. Keys start with a namespace: the single unversioned record
`b"\\x00schema"` holds the schema version as 4 bytes big-endian, and every other key starts with the version
byte (`b"\\x02"` for this schema) and a one-letter table tag, so a future schema can live beside this one during
a migration and an old binary refuses a newer store instead of misreading it. docs/protocol/storage.md has
the table; integers are big-endian and fixed-width so keys sort numerically.
"""

from __future__ import annotations

import struct

SCHEMA_VERSION = 2  # 2: the state trie became a fixed-depth bucket tree (1 had a path-compressed trie)
SCHEMA_KEY = b"\x00schema"  # -> u32 schema version; outside every versioned namespace on purpose

_V = bytes([SCHEMA_VERSION])

# Metadata of this schema version.
META_GENESIS_HASH = _V + b"m" + b"genesis_hash"  # -> 32-byte genesis hash
META_HEAD = _V + b"m" + b"head"  # -> u64 last committed height + 32-byte block hash

BLOCK_PREFIX = _V + b"b"  # + u64 height -> record: canonical {"block": bytes, "results": [...]}
CERTIFICATE_PREFIX = _V + b"c"  # + u64 height -> canonical CommitCertificate wire map
BLOCK_HASH_PREFIX = _V + b"h"  # + 32-byte block hash -> u64 height
ROOTS_PREFIX = _V + b"r"  # + u64 height -> 32-byte state root + 32-byte results root
TX_PREFIX = _V + b"t"  # + 32-byte tx id -> u64 height + u32 index + utf-8 result code
STATE_PREFIX = _V + b"s"  # + state key -> value
HISTORY_PREFIX = _V + b"v"  # + u16 len(key) + key + u64 height + u32 tx position -> version record
TRIE_PREFIX = _V + b"n"  # + u8 depth + packed nibble prefix -> trie node record (storage/trie.py)
CONSENSUS_PREFIX = _V + b"q"  # + caller's key -> caller's value (ConsensusLog)

STATE_KEY_BYTES_MAX = 1024  # keys are length-prefixed with u16 in history; keep them small anyway
GENESIS_TX_POSITION = 0xFFFFFFFF  # tx position recorded for writes made by genesis itself
BLOCK_END_POSITION = 0xFFFFFFFE  # for writes of a block's end-of-block step: after all its transactions

_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_HEAD = struct.Struct(">Q32s")
_TX_LOCATION = struct.Struct(">QI")
_HEIGHT_POS = struct.Struct(">QI")


def encode_schema_version(version: int) -> bytes:
    return _U32.pack(version)


def decode_schema_version(raw: bytes) -> int:
    if len(raw) != _U32.size:
        raise ValueError(f"schema record is {len(raw)} bytes, expected {_U32.size}")
    value: int = _U32.unpack(raw)[0]
    return value


def block_key(height: int) -> bytes:
    return BLOCK_PREFIX + _U64.pack(height)


def certificate_key(height: int) -> bytes:
    return CERTIFICATE_PREFIX + _U64.pack(height)


def block_hash_key(block_hash: bytes) -> bytes:
    return BLOCK_HASH_PREFIX + block_hash


def roots_key(height: int) -> bytes:
    return ROOTS_PREFIX + _U64.pack(height)


def tx_key(tx_id: bytes) -> bytes:
    return TX_PREFIX + tx_id


def state_key(key: bytes) -> bytes:
    return STATE_PREFIX + key


def history_key_prefix(key: bytes) -> bytes:
    """All versions of one state key share this prefix; the u16 length keeps keys that prefix others apart."""
    return HISTORY_PREFIX + struct.pack(">H", len(key)) + key


def history_key(key: bytes, height: int, tx_position: int) -> bytes:
    return history_key_prefix(key) + _HEIGHT_POS.pack(height, tx_position)


def decode_history_suffix(suffix: bytes) -> tuple[int, int]:
    """(height, tx position) from the last 12 bytes of a history key."""
    height, position = _HEIGHT_POS.unpack(suffix)
    return height, position


def encode_u64(value: int) -> bytes:
    return _U64.pack(value)


def decode_u64(raw: bytes) -> int:
    value: int = _U64.unpack(raw)[0]
    return value


def encode_head(height: int, block_hash: bytes) -> bytes:
    return _HEAD.pack(height, block_hash)


def decode_head(raw: bytes) -> tuple[int, bytes]:
    height, block_hash = _HEAD.unpack(raw)
    return height, block_hash


def encode_tx_location(height: int, index: int, code: str) -> bytes:
    return _TX_LOCATION.pack(height, index) + code.encode("utf-8")


def decode_tx_location(raw: bytes) -> tuple[int, int, str]:
    height, index = _TX_LOCATION.unpack_from(raw)
    return height, index, raw[_TX_LOCATION.size :].decode("utf-8")


def encode_version(tx_id: bytes | None, value: bytes | None) -> bytes:
    """History record: u8 tx-id length (0 or 32) + tx id + (b"\\x00" deleted | b"\\x01" + value)."""
    tid = tx_id or b""
    head = bytes([len(tid)]) + tid
    return head + (b"\x00" if value is None else b"\x01" + value)


def decode_version(raw: bytes) -> tuple[bytes | None, bytes | None]:
    tid_len = raw[0]
    tx_id = raw[1 : 1 + tid_len] or None
    flag = raw[1 + tid_len]
    return tx_id, (raw[2 + tid_len :] if flag == 1 else None)
