"""Clear errors for an operator: locked data dir, unknown schema, corruption, disk full (and no harm done)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import plyvel
import pytest
from conftest import GENESIS_WRITES
from storagekit import GENESIS_HASH, apply_to, commit_writes

from storage import schema
from storage.errors import SchemaMismatch, StorageError, StorageIOError, StoreCorrupt, StoreLocked
from storage.store import DB_DIRNAME, Store
from storage.trie import compute_state_root

REPO = Path(__file__).resolve().parents[2]


def test_second_open_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with Store.open(tmp_path), pytest.raises(StoreLocked) as caught:
        Store.open(tmp_path)
    assert str(caught.value) == f"data dir {tmp_path} is in use by another node"
    with Store.open(tmp_path) as again:  # released on close
        assert again.last_height == -1


def test_second_open_from_another_process_is_refused(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from storage.errors import StoreLocked
        from storage.store import Store
        try:
            Store.open(__import__("pathlib").Path({str(tmp_path)!r}))
        except StoreLocked as exc:
            print("LOCKED:", exc)
        """
    )
    with Store.open(tmp_path):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == f"LOCKED: data dir {tmp_path} is in use by another node", out.stderr


def _raw_put(tmp_path: Path, key: bytes, value: bytes) -> None:
    db = plyvel.DB(str(tmp_path / DB_DIRNAME))
    try:
        db.put(key, value)
    finally:
        db.close()


def test_unknown_schema_version(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    _raw_put(tmp_path, schema.SCHEMA_KEY, schema.encode_schema_version(7))
    with pytest.raises(
        SchemaMismatch, match=f"schema version 7; this node reads version {schema.SCHEMA_VERSION}"
    ):
        Store.open(tmp_path)
    with Store.open(tmp_path / "other"):
        pass  # and a refused open released the lock:
    _raw_put(tmp_path, schema.SCHEMA_KEY, schema.encode_schema_version(schema.SCHEMA_VERSION))
    Store.open(tmp_path).close()


def test_bad_schema_record_is_corruption(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    _raw_put(tmp_path, schema.SCHEMA_KEY, b"garbage")
    with pytest.raises(StoreCorrupt, match="schema record"):
        Store.open(tmp_path)


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / DB_DIRNAME).mkdir(parents=True)
    db = plyvel.DB(str(tmp_path / DB_DIRNAME), create_if_missing=True)
    db.put(b"someone else's", b"data")
    db.close()
    with pytest.raises(StoreCorrupt, match="without a carbonchain schema record"):
        Store.open(tmp_path)


def test_garbage_in_current_is_corruption(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.initialise_genesis(GENESIS_HASH, GENESIS_WRITES)
    (tmp_path / DB_DIRNAME / "CURRENT").write_bytes(b"\x00garbage without newline")
    with pytest.raises(StoreCorrupt, match="corrupt"):
        Store.open(tmp_path)


def test_garbage_manifest_is_a_storage_error(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.initialise_genesis(GENESIS_HASH, GENESIS_WRITES)
    for manifest in (tmp_path / DB_DIRNAME).glob("MANIFEST-*"):
        manifest.write_bytes(b"\xff" * 200)
    with pytest.raises(StorageError):
        Store.open(tmp_path)


def test_roots_that_disagree_with_the_trie_are_corruption(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.initialise_genesis(GENESIS_HASH, GENESIS_WRITES)
        commit_writes(store, [{b"k": b"v"}])
    _raw_put(tmp_path, schema.roots_key(1), b"\x01" * 64)
    with pytest.raises(StoreCorrupt, match="does not match the state root of height 1"):
        Store.open(tmp_path)


class _FullDisk:
    """Stands in for the plyvel DB: every write batch fails the way LevelDB reports ENOSPC."""

    def __init__(self, db: Any) -> None:
        self._db = db

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def write_batch(self, **options: Any) -> Any:
        real = self._db.write_batch(**options)

        class Batch:
            put = real.put
            delete = real.delete

            def write(self) -> None:
                raise plyvel.IOError("IO error: /data/db/000012.log: No space left on device")

        return Batch()


def test_disk_full_on_commit_leaves_the_store_consistent(tmp_path: Path) -> None:
    state = dict(GENESIS_WRITES)
    with Store.open(tmp_path) as store:
        store.initialise_genesis(GENESIS_HASH, GENESIS_WRITES)
        first = [{b"a": b"1", b"b": b"2"}]
        commit_writes(store, first)
        apply_to(state, first)
        real = store._db
        store._db = _FullDisk(real)
        with pytest.raises(
            StorageIOError, match=r"block 2 .* failed, nothing of it was stored: .*No space left"
        ):
            commit_writes(store, [{b"a": b"9", b"c": b"3"}])
        store._db = real
        assert store.last_height == 1
        assert store.get(b"a") == b"1" and store.get(b"c") is None
        assert store.get_state_root() == compute_state_root(state.items())
        second = [{b"a": b"5", b"d": None}, {b"e": b"6"}]
        commit_writes(store, second)
        apply_to(state, second)
        assert store.get_state_root() == compute_state_root(state.items())
    with Store.open(tmp_path) as store:
        assert store.last_height == 2
        assert dict(store.iterate(b"")) == state
        assert store.get_roots(2) == (compute_state_root(state.items()), store.get_roots(2)[1])  # type: ignore[index]


def test_disk_full_in_consensus_log(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        log = store.consensus_log
        log._db = _FullDisk(log._db)
        with pytest.raises(StorageIOError, match="No space left"):
            log.put(b"vote", b"x")


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    store.close()
    store.close()
    with pytest.raises(StorageError, match="closed"):
        store.initialise_genesis(GENESIS_HASH, {})
