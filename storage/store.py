"""The node's LevelDB store: opening a data directory safely and committing each block in one atomic write.

`Store.open(data_dir)` opens `<data_dir>/db` (creating it), turns LevelDB's lock, corruption and I/O failures
into StorageError subclasses with messages an operator can act on, checks the schema version and that the
state trie agrees with the last committed roots. `commit_block` writes the block, its results, the tx index,
the state changes, their history, the trie nodes, the new roots and the head in ONE synced write batch: a
reader, or a node restarting after SIGKILL, sees the block entirely or not at all.

Only one thread commits at a time (a lock); reads may run from any thread. After a StorageIOError on commit
nothing of the block was written; the node should stop and be restarted once the disk has room.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import plyvel

from core.block import Block, CommitCertificate, TxResult, encode_results_and_root
from core.errors import InvalidInput
from core.state import WriteSet
from storage import schema
from storage.cache import MISSING, ValueCache
from storage.consensus_log import ConsensusLog
from storage.errors import (
    CommitRefused,
    GenesisMismatch,
    SchemaMismatch,
    StorageError,
    StorageIOError,
    StoreCorrupt,
    StoreLocked,
)
from storage.reads import GENESIS_RESULTS_ROOT, StateView
from storage.records import (
    CommitOutcome,
    encode_block_record,
    encode_certificate,
)
from storage.trie import (
    ROOT_NODE_ID,
    apply_changes,
    compute_changes,
    compute_record_root,
    compute_state_root,
    decode_stored,
    encode_stored,
)

DB_DIRNAME = "db"
LRU_CACHE_BYTES = 128 * 1024 * 1024  # LevelDB block cache: trie nodes below the writer's cache, recent blocks
WRITE_BUFFER_BYTES = 16 * 1024 * 1024  # larger memtable: fewer compactions under block-sized batches
BLOOM_FILTER_BITS = 10  # ~1% false positives for misses (tx-id lookups, absent keys)
NODE_CACHE_BYTES_MAX = 256 * 1024 * 1024  # writer's trie record cache (71 MiB at a million keys)
NODE_CACHE_ENTRY_OVERHEAD_BYTES = 120  # what a cached record costs beyond its bytes (dict slot, objects)


class Store(StateView):
    """A node's blocks, world state, history, state trie and consensus log in one LevelDB."""

    def __init__(self, db: Any, data_dir: Path, node_cache_bytes_max: int | None = None) -> None:
        super().__init__(db)
        self._db = db
        self.data_dir = data_dir
        self._closed = False
        self._write_lock = threading.Lock()
        self._node_cache: dict[bytes, bytes | None] = {}  # node id -> record (None = absent), as in the DB
        self._node_cache_bytes = 0
        self._node_cache_bytes_max = (
            NODE_CACHE_BYTES_MAX if node_cache_bytes_max is None else node_cache_bytes_max
        )
        self._values = ValueCache()  # the latest state values, written through by every commit
        self._head: tuple[int, bytes] | None = None
        self._genesis: bytes | None = None
        self.consensus_log = ConsensusLog(db.prefixed_db(schema.CONSENSUS_PREFIX), self._guard)

    # --- opening and closing -----------------------------------------------------------------------------

    @classmethod
    def open(
        cls, data_dir: Path, *, node_cache_bytes_max: int | None = None, warm_node_cache: bool = True
    ) -> Store:
        """Open (or create) the store in a node's data directory.

        `node_cache_bytes_max` bounds the writer's in-memory trie node cache (default NODE_CACHE_BYTES_MAX);
        with `warm_node_cache` the cache is filled at open by one range scan of the cached depths, so the
        first blocks after a restart do not read those nodes one by one.
        """
        if node_cache_bytes_max is not None and node_cache_bytes_max < 0:
            raise InvalidInput("node_cache_bytes_max must not be negative")
        data_dir = Path(data_dir)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageIOError(f"cannot create data dir {data_dir}: {exc}") from None
        db_path = data_dir / DB_DIRNAME
        try:
            db = plyvel.DB(
                str(db_path),
                create_if_missing=True,
                lru_cache_size=LRU_CACHE_BYTES,
                write_buffer_size=WRITE_BUFFER_BYTES,
                bloom_filter_bits=BLOOM_FILTER_BITS,
                paranoid_checks=True,
            )
        except plyvel.CorruptionError as exc:
            raise StoreCorrupt(f"database in {db_path} is corrupt: {exc}") from None
        except plyvel.IOError as exc:
            if "lock" in str(exc).lower():
                raise StoreLocked(f"data dir {data_dir} is in use by another node") from None
            raise StorageIOError(f"cannot open database in {db_path}: {exc}") from None
        except plyvel.Error as exc:
            raise StoreCorrupt(f"cannot open database in {db_path}: {exc}") from None
        store = cls(db, data_dir, node_cache_bytes_max)
        try:
            store._check_on_open()
            if warm_node_cache:
                store._warm_node_cache()
        except BaseException:
            db.close()
            raise
        return store

    def _check_on_open(self) -> None:
        try:
            raw = self._db.get(schema.SCHEMA_KEY)
            if raw is None:
                if next(self._db.iterator(include_value=False), None) is not None:
                    raise StoreCorrupt(
                        f"{self.data_dir} holds a database without a carbonchain schema record"
                    )
                self._db.put(
                    schema.SCHEMA_KEY, schema.encode_schema_version(schema.SCHEMA_VERSION), sync=True
                )
                return
            try:
                version = schema.decode_schema_version(raw)
            except ValueError as exc:
                raise StoreCorrupt(f"schema record in {self.data_dir} is unreadable: {exc}") from None
            if version != schema.SCHEMA_VERSION:
                raise SchemaMismatch(
                    f"data dir {self.data_dir} has storage schema version {version}; "
                    f"this node reads version {schema.SCHEMA_VERSION}"
                )
            self._head = self._read_head()
            self._genesis = self._source.get(schema.META_GENESIS_HASH)
            if (self._head is None) != (self._genesis is None):
                raise StoreCorrupt(f"head and genesis records in {self.data_dir} disagree")
            if self._head is not None:
                roots = self.get_roots(self._head[0])
                if roots is None:
                    raise StoreCorrupt(f"no roots for the last committed height {self._head[0]}")
                if compute_record_root(self._load_node(ROOT_NODE_ID)) != roots[0]:
                    raise StoreCorrupt(f"state trie does not match the state root of height {self._head[0]}")
        except plyvel.CorruptionError as exc:
            raise StoreCorrupt(f"database in {self.data_dir} is corrupt: {exc}") from None
        except plyvel.IOError as exc:
            raise StorageIOError(f"cannot read database in {self.data_dir}: {exc}") from None

    def _warm_node_cache(self) -> None:
        """Load the trie's records in key order (nodes by depth, then buckets) until the budget is full."""
        try:
            scan = self._db.iterator(
                prefix=schema.TRIE_PREFIX,
                fill_cache=False,  # these records live in our cache; keep LevelDB's for what does not fit
            )
            prefix_bytes = len(schema.TRIE_PREFIX)
            cache = self._node_cache
            used = self._node_cache_bytes
            limit = self._node_cache_bytes_max
            with scan:
                for key, stored in scan:
                    node_id = key[prefix_bytes:]
                    record = decode_stored(node_id, stored)
                    size = NODE_CACHE_ENTRY_OVERHEAD_BYTES + len(record)
                    if used + size > limit:
                        break
                    cache[node_id] = record
                    used += size
            self._node_cache_bytes = used
        except plyvel.CorruptionError as exc:
            raise StoreCorrupt(f"database in {self.data_dir} is corrupt: {exc}") from None
        except plyvel.IOError as exc:
            raise StorageIOError(f"cannot read database in {self.data_dir}: {exc}") from None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._db.close()

    @property
    def is_closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _guard(self) -> None:
        if self._closed:
            raise StorageError(f"store in {self.data_dir} is closed")

    # --- head (cached: this process is the only writer) ---------------------------------------------------

    @property
    def last_height(self) -> int:
        return -1 if self._head is None else self._head[0]

    @property
    def last_block_hash(self) -> bytes | None:
        return None if self._head is None else self._head[1]

    @property
    def genesis_hash(self) -> bytes | None:
        return self._genesis

    def snapshot(self) -> StoreSnapshot:
        """A consistent read view; use it as a context manager (or call close())."""
        self._guard()
        return StoreSnapshot(self._db.snapshot())

    # --- state reads (cached: this process is the only writer) -------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        values = self._values
        value = values.get(key)
        if value is MISSING:
            generation = values.generation
            value = self._db.get(schema.STATE_PREFIX + key)
            values.fill(key, value, generation)
        return value

    # --- writes ------------------------------------------------------------------------------------------

    def initialise_genesis(self, genesis_hash: bytes, writes: WriteSet) -> bytes:
        """Write the genesis state (height 0) once; returns its state root.

        Calling it again with the same genesis hash and writes is a no-op; another genesis raises
        GenesisMismatch.
        """
        with self._write_lock:
            self._guard()
            if len(genesis_hash) != 32:
                raise InvalidInput("a genesis hash is 32 bytes")
            if self._genesis is not None:
                if self._genesis != genesis_hash:
                    raise GenesisMismatch(
                        f"data dir {self.data_dir} belongs to genesis {self._genesis.hex()}, "
                        f"not {genesis_hash.hex()}"
                    )
                roots = self.get_roots(0)
                expected = compute_state_root((k, v) for k, v in writes.items() if v is not None)
                if roots is None or roots[0] != expected:
                    raise GenesisMismatch(
                        "genesis hash matches but the genesis state differs from the stored one"
                    )
                return roots[0]
            batch = self._db.write_batch(sync=True)
            net = _validate_writes(writes, "genesis")
            for key in sorted(net):
                value = net[key]
                batch.put(
                    schema.history_key(key, 0, schema.GENESIS_TX_POSITION), schema.encode_version(None, value)
                )
                if value is None:
                    batch.delete(schema.STATE_PREFIX + key)
                else:
                    batch.put(schema.STATE_PREFIX + key, value)
            node_writes: dict[bytes, bytes | None] = {}
            root = apply_changes(self._load_cached_node, compute_changes(net.items()), node_writes)
            _put_nodes(batch, node_writes)
            batch.put(schema.roots_key(0), root + GENESIS_RESULTS_ROOT)
            batch.put(schema.META_GENESIS_HASH, genesis_hash)
            batch.put(schema.META_HEAD, schema.encode_head(0, genesis_hash))
            self._write(batch, "genesis state")
            self._values.commit(net)
            self._genesis = genesis_hash
            self._after_write((0, genesis_hash), node_writes)
            return root

    def commit_block(
        self,
        block: Block,
        results: Sequence[TxResult],
        tx_writes: Sequence[Mapping[bytes, bytes | None]],
        certificate: CommitCertificate | None = None,
        *,
        end_writes: Mapping[bytes, bytes | None] | None = None,
    ) -> CommitOutcome:
        """Commit one executed block atomically; `tx_writes[i]` is what transaction i changed, `end_writes`
        what the block's end-of-block step changed after them (chaincode.executor)."""
        with self._write_lock:
            self._guard()
            header = block.header
            height = header.height
            block_hash = block.block_hash
            self._validate_next(block, results, tx_writes, certificate)
            batch = self._db.write_batch(sync=True)
            put = batch.put
            net: dict[bytes, bytes | None] = {}
            seen_tx_ids: set[bytes] = set()
            for index, (tx, result, writes) in enumerate(zip(block.txs, results, tx_writes, strict=True)):
                tx_id = tx.tx_id
                _put_versions(put, net, writes, height, index, tx_id)
                # A repeated id (a replay the chaincode failed) keeps pointing at its first inclusion. The
                # executor refuses every id committed before or seen earlier in the block (`replay`), so an
                # ok result is a first inclusion and needs no lookup.
                if result.is_ok or (tx_id not in seen_tx_ids and self._db.get(schema.tx_key(tx_id)) is None):
                    put(schema.tx_key(tx_id), schema.encode_tx_location(height, index, result.code))
                seen_tx_ids.add(tx_id)
            if end_writes:
                _put_versions(put, net, end_writes, height, schema.BLOCK_END_POSITION, None)
            for key, value in net.items():
                if value is None:
                    batch.delete(schema.STATE_PREFIX + key)
                else:
                    put(schema.STATE_PREFIX + key, value)
            node_writes: dict[bytes, bytes | None] = {}
            state_root = apply_changes(self._load_cached_node, compute_changes(net.items()), node_writes)
            _put_nodes(batch, node_writes)
            result_encodings, results_root = encode_results_and_root(results)
            put(schema.block_key(height), encode_block_record(block.encode(), result_encodings))
            put(schema.block_hash_key(block_hash), schema.encode_u64(height))
            if certificate is not None:
                put(schema.certificate_key(height), encode_certificate(certificate))
            put(schema.roots_key(height), state_root + results_root)
            put(schema.META_HEAD, schema.encode_head(height, block_hash))
            self._write(batch, f"block {height}")
            self._values.commit(net)
            self._after_write((height, block_hash), node_writes)
            return CommitOutcome(state_root, results_root)

    def set_certificate(self, height: int, certificate: CommitCertificate) -> None:
        """Attach or replace the commit certificate of a committed block (one synced write)."""
        with self._write_lock:
            self._guard()
            if certificate.height != height:
                raise CommitRefused(f"certificate is for height {certificate.height}, not {height}")
            raw = self._db.get(schema.block_key(height))
            if raw is None:
                raise CommitRefused(f"no committed block at height {height} to attach a certificate to")
            raw_hash = self._db.get(schema.block_hash_key(certificate.block_hash))
            if raw_hash is None or schema.decode_u64(raw_hash) != height:
                raise CommitRefused(
                    f"certificate names another block than the one committed at height {height}"
                )
            batch = self._db.write_batch(sync=True)
            batch.put(schema.certificate_key(height), encode_certificate(certificate))
            self._write(batch, f"certificate of block {height}")

    def _validate_next(
        self,
        block: Block,
        results: Sequence[TxResult],
        tx_writes: Sequence[Mapping[bytes, bytes | None]],
        certificate: CommitCertificate | None,
    ) -> None:
        header = block.header
        if self._head is None:
            raise CommitRefused("the store has no genesis state yet (call initialise_genesis first)")
        last_height, last_hash = self._head
        if header.height != last_height + 1:
            raise CommitRefused(f"block height {header.height} does not follow the last height {last_height}")
        if header.prev_hash != last_hash:
            raise CommitRefused(
                f"block {header.height} names previous hash {header.prev_hash.hex()}, "
                f"the stored chain ends in {last_hash.hex()}"
            )
        if len(results) != len(block.txs) or len(tx_writes) != len(block.txs):
            raise CommitRefused(
                f"block {header.height} has {len(block.txs)} transactions, "
                f"{len(results)} results and {len(tx_writes)} write sets"
            )
        if certificate is not None and (
            certificate.height != header.height or certificate.block_hash != block.block_hash
        ):
            raise CommitRefused(f"certificate does not name block {header.height}")

    def _load_cached_node(self, node_id: bytes) -> bytes | None:
        # Hot path (one call per trie node a block visits): a hit costs one dict lookup.
        record = self._node_cache.get(node_id, MISSING)  # (a cached None: no such node)
        if record is not MISSING:
            return record
        stored = self._db.get(schema.TRIE_PREFIX + node_id)
        record = None if stored is None else decode_stored(node_id, stored)
        self._cache_node(node_id, record)
        return record

    def _cache_node(self, node_id: bytes, record: bytes | None) -> None:
        """Put a node into the writer's cache, evicting others while it is over its byte budget."""
        cache = self._node_cache
        size = NODE_CACHE_ENTRY_OVERHEAD_BYTES + (0 if record is None else len(record))
        if node_id in cache:
            previous = cache[node_id]
            size -= NODE_CACHE_ENTRY_OVERHEAD_BYTES + (0 if previous is None else len(previous))
        cache[node_id] = record
        self._node_cache_bytes += size
        while self._node_cache_bytes > self._node_cache_bytes_max:
            # Paths are uniform hashes, so which node goes hardly matters; the newest is the cheapest to find.
            _, evicted = cache.popitem()
            self._node_cache_bytes -= NODE_CACHE_ENTRY_OVERHEAD_BYTES + (
                0 if evicted is None else len(evicted)
            )

    def _drop_caches(self) -> None:
        self._node_cache.clear()
        self._node_cache_bytes = 0
        self._values.clear()

    def _write(self, batch: Any, what: str) -> None:
        try:
            batch.write()
        except plyvel.CorruptionError as exc:
            self._drop_caches()
            raise StoreCorrupt(f"writing {what} to {self.data_dir} failed: {exc}") from None
        except (plyvel.IOError, OSError) as exc:
            self._drop_caches()
            raise StorageIOError(
                f"writing {what} to {self.data_dir} failed, nothing of it was stored: {exc}"
            ) from None

    def _after_write(self, head: tuple[int, bytes], node_writes: Mapping[bytes, bytes | None]) -> None:
        self._head = head
        for node_id, record in node_writes.items():
            self._cache_node(node_id, record)


class StoreSnapshot(StateView):
    """A consistent read view of the store at one moment; close it (or use `with`) when done."""

    def __init__(self, snapshot: Any) -> None:
        super().__init__(snapshot)
        self._snapshot = snapshot

    def close(self) -> None:
        self._snapshot.close()

    def __enter__(self) -> StoreSnapshot:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def _validate_writes(writes: WriteSet, what: str) -> dict[bytes, bytes | None]:
    net: dict[bytes, bytes | None] = {}
    for key, value in writes.items():
        if type(key) is not bytes or not 0 < len(key) <= schema.STATE_KEY_BYTES_MAX:
            raise InvalidInput(f"{what}: state key {key!r} must be 1..{schema.STATE_KEY_BYTES_MAX} bytes")
        if value is not None and type(value) is not bytes:
            raise InvalidInput(f"{what}: value of state key {key!r} must be bytes or None")
        net[key] = value
    return net


def _put_nodes(batch: Any, node_writes: Mapping[bytes, bytes | None]) -> None:
    prefix = schema.TRIE_PREFIX
    for node_id, record in node_writes.items():
        if record is None:
            batch.delete(prefix + node_id)
        else:
            batch.put(prefix + node_id, encode_stored(node_id, record))


def _put_versions(
    put: Any,
    net: dict[bytes, bytes | None],
    writes: Mapping[bytes, bytes | None],
    height: int,
    position: int,
    tx_id: bytes | None,
) -> None:
    """History versions of one write set (a transaction's, or the end-of-block step's), folded into `net`."""
    for key, value in writes.items():
        if type(key) is not bytes or not 0 < len(key) <= schema.STATE_KEY_BYTES_MAX:
            raise InvalidInput(f"state key {key!r} must be 1..{schema.STATE_KEY_BYTES_MAX} bytes")
        if value is not None and type(value) is not bytes:
            raise InvalidInput(f"value of state key {key!r} must be bytes or None")
        put(schema.history_key(key, height, position), schema.encode_version(tx_id, value))
        net[key] = value
