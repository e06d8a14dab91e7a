"""Reads of blocks, transactions, state, history and proofs over one LevelDB view.

`StateView` works over anything with plyvel's `get` and `iterator` (the live database or a snapshot), so the
live `Store` and a consistent `StoreSnapshot` answer the same questions the same way. It implements
core.state.StateReader.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from core.block import EMPTY_ROOT
from core.errors import InvalidInput
from storage import schema
from storage.errors import StoreCorrupt
from storage.proof import StateProof, compute_key_path, compute_value_digest
from storage.records import (
    KeyVersion,
    ScanLimitError,
    StoredBlock,
    TxLocation,
    decode_block_record,
    decode_certificate,
    encode_certified_record,
)
from storage.trie import ROOT_NODE_ID, collect_proof, compute_record_root, decode_stored, find_in_bucket

SCAN_LIMIT_MAX = 1000  # entries per page of scan()
HISTORY_LIMIT_MAX = 1000  # versions per page of get_history()
BLOCKS_PER_REQUEST_MAX = 1000  # blocks per get_blocks() call
BLOCK_BYTES_DEFAULT = 4 * 1024 * 1024  # default byte budget of get_blocks()


class StateView:
    """Read API shared by the live store and its snapshots; `_source` is a plyvel DB or Snapshot."""

    def __init__(self, source: Any) -> None:
        self._source = source

    # --- chain head ------------------------------------------------------------------------------------

    def _read_head(self) -> tuple[int, bytes] | None:
        raw = self._source.get(schema.META_HEAD)
        if raw is None:
            return None
        try:
            return schema.decode_head(raw)
        except Exception as exc:
            raise StoreCorrupt(f"head record cannot be decoded: {exc}") from None

    @property
    def last_height(self) -> int:
        """Height of the last committed block; 0 after genesis; -1 before genesis."""
        head = self._read_head()
        return -1 if head is None else head[0]

    @property
    def last_block_hash(self) -> bytes | None:
        """Hash of the last committed block; the genesis hash at height 0; None before genesis."""
        head = self._read_head()
        return None if head is None else head[1]

    @property
    def genesis_hash(self) -> bytes | None:
        value: bytes | None = self._source.get(schema.META_GENESIS_HASH)
        return value

    # --- blocks and transactions -----------------------------------------------------------------------

    def get_block(self, height: int) -> StoredBlock | None:
        raw = self._source.get(schema.block_key(height))
        if raw is None:
            return None
        return self._stored_block(height, raw)

    def get_block_by_hash(self, block_hash: bytes) -> StoredBlock | None:
        raw_height = self._source.get(schema.block_hash_key(block_hash))
        if raw_height is None:
            return None
        return self.get_block(schema.decode_u64(raw_height))

    def get_blocks(
        self,
        start: int,
        end: int,
        *,
        max_bytes: int = BLOCK_BYTES_DEFAULT,
        max_blocks: int = BLOCKS_PER_REQUEST_MAX,
    ) -> list[StoredBlock]:
        """Blocks start..end inclusive, stopping early at a gap or once their records pass `max_bytes`.

        The first block is returned even if it alone exceeds `max_bytes`, so a lagging node always advances.
        """
        return [
            self._stored_block(height, raw)
            for height, raw in self._block_records(start, end, max_bytes, max_blocks)
        ]

    def get_certified_block_encodings(
        self,
        start: int,
        end: int,
        *,
        max_bytes: int = BLOCK_BYTES_DEFAULT,
        max_blocks: int = BLOCKS_PER_REQUEST_MAX,
    ) -> list[bytes]:
        """As get_blocks, but each block as core.block.encode_certified_block would encode it with its
        certificate and results, built from the stored bytes; stops before the first block without one."""
        encodings: list[bytes] = []
        for height, raw in self._block_records(start, end, max_bytes, max_blocks):
            raw_certificate = self._source.get(schema.certificate_key(height))
            if raw_certificate is None:
                break
            encodings.append(encode_certified_record(raw, raw_certificate, height))
        return encodings

    def _block_records(
        self, start: int, end: int, max_bytes: int, max_blocks: int
    ) -> list[tuple[int, bytes]]:
        """The stored records of blocks start..end (see get_blocks for where it stops), by height."""
        records: list[tuple[int, bytes]] = []
        if start < 1 or end < start:
            return records
        end = min(end, start + min(max_blocks, BLOCKS_PER_REQUEST_MAX) - 1)
        total = 0
        iterator = self._source.iterator(start=schema.block_key(start), stop=schema.block_key(end + 1))
        try:
            expected = start
            for key, raw in iterator:
                height = schema.decode_u64(key[len(schema.BLOCK_PREFIX) :])
                if height != expected or (records and total + len(raw) > max_bytes):
                    break
                total += len(raw)
                records.append((height, raw))
                expected += 1
        finally:
            iterator.close()
        return records

    def _stored_block(self, height: int, raw: bytes) -> StoredBlock:
        block, results = decode_block_record(raw, height)
        raw_cert = self._source.get(schema.certificate_key(height))
        certificate = None if raw_cert is None else decode_certificate(raw_cert, height)
        roots = self.get_roots(height)
        if roots is None:
            raise StoreCorrupt(f"block {height} is stored without its roots")
        return StoredBlock(block, results, certificate, roots[0], roots[1])

    def get_tx_location(self, tx_id: bytes) -> TxLocation | None:
        raw = self._source.get(schema.tx_key(tx_id))
        if raw is None:
            return None
        try:
            return TxLocation(*schema.decode_tx_location(raw))
        except Exception as exc:
            raise StoreCorrupt(f"tx index record of {tx_id.hex()} cannot be decoded: {exc}") from None

    def get_roots(self, height: int) -> tuple[bytes, bytes] | None:
        """(state root, results root) after executing `height`; height 0 is the genesis state."""
        raw = self._source.get(schema.roots_key(height))
        if raw is None:
            return None
        if len(raw) != 64:
            raise StoreCorrupt(f"roots record at height {height} is {len(raw)} bytes")
        return raw[:32], raw[32:]

    # --- world state -------------------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._source.get(schema.STATE_PREFIX + key)
        return value

    def iterate(self, prefix: bytes, *, start_after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """State entries whose key starts with `prefix`, ascending, strictly after `start_after` if given."""
        skip = len(schema.STATE_PREFIX)
        stop = _prefix_end(schema.STATE_PREFIX + prefix)
        if start_after is not None and start_after >= prefix:
            iterator = self._source.iterator(
                start=schema.STATE_PREFIX + start_after, stop=stop, include_start=False
            )
        else:
            iterator = self._source.iterator(start=schema.STATE_PREFIX + prefix, stop=stop)
        try:
            for key, value in iterator:
                yield key[skip:], value
        finally:
            iterator.close()

    def scan(
        self, prefix: bytes, start_after: bytes | None = None, limit: int = 100
    ) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
        """One page of iterate(): up to `limit` entries and the cursor for the next page (None at the end)."""
        if not 1 <= limit <= SCAN_LIMIT_MAX:
            raise ScanLimitError(f"limit must be between 1 and {SCAN_LIMIT_MAX}, got {limit}")
        items: list[tuple[bytes, bytes]] = []
        more = False
        for entry in self.iterate(prefix, start_after=start_after):
            if len(items) == limit:
                more = True
                break
            items.append(entry)
        return items, (items[-1][0] if more else None)

    def get_at(self, key: bytes, height: int) -> bytes | None:
        """The value of `key` at the end of block `height` (0 = genesis)."""
        last = self.last_height
        if not 0 <= height <= last:
            raise InvalidInput(f"height {height} is outside the committed range 0..{last}")
        iterator = self._source.iterator(
            start=schema.history_key_prefix(key),
            stop=schema.history_key(key, height + 1, 0),
            reverse=True,
            include_key=False,
        )
        try:
            for raw in iterator:
                return schema.decode_version(raw)[1]
        finally:
            iterator.close()
        return None

    def get_history(
        self, key: bytes, start_after_height: int | None = None, limit: int = 100
    ) -> list[KeyVersion]:
        """Versions of `key` oldest first, each with the height and transaction that wrote it."""
        if not 1 <= limit <= HISTORY_LIMIT_MAX:
            raise ScanLimitError(f"limit must be between 1 and {HISTORY_LIMIT_MAX}, got {limit}")
        prefix = schema.history_key_prefix(key)
        start = prefix if start_after_height is None else schema.history_key(key, start_after_height + 1, 0)
        versions: list[KeyVersion] = []
        iterator = self._source.iterator(start=start, stop=_prefix_end(prefix))
        try:
            for history_key, raw in iterator:
                height, position = schema.decode_history_suffix(history_key[len(prefix) :])
                tx_id, value = schema.decode_version(raw)
                index = (
                    None if position in (schema.GENESIS_TX_POSITION, schema.BLOCK_END_POSITION) else position
                )
                versions.append(KeyVersion(height, index, tx_id, value))
                if len(versions) == limit:
                    break
        finally:
            iterator.close()
        return versions

    # --- proofs --------------------------------------------------------------------------------------------

    def _load_node(self, node_id: bytes) -> bytes | None:
        stored: bytes | None = self._source.get(schema.TRIE_PREFIX + node_id)
        return None if stored is None else decode_stored(node_id, stored)

    def get_state_root(self) -> bytes:
        """Root of the current state as the trie holds it (equals get_roots(last_height)[0])."""
        return compute_record_root(self._load_node(ROOT_NODE_ID))

    def get_proof(self, key: bytes) -> StateProof:
        """Proof of the key's current value, or of its absence, against the current state root."""
        path = compute_key_path(key)
        levels, bucket = collect_proof(self._load_node, path)
        digest, others = find_in_bucket(bucket, path)
        if digest is None:
            return StateProof(tuple(levels), others, None)
        value = self.get(key)
        if value is None or compute_value_digest(value) != digest:
            raise StoreCorrupt(f"state value of key {key.hex()} disagrees with the state trie")
        return StateProof(tuple(levels), others, value)


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix` (None if there is none)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes((trimmed[-1] + 1,))


GENESIS_RESULTS_ROOT = EMPTY_ROOT  # results root recorded for height 0
