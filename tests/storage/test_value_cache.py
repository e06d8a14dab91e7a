"""The store's cache of state values: reads see every commit, a read racing a commit never brings an older
value back, and the cache stays within its byte budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import GENESIS_WRITES
from storagekit import GENESIS_HASH, commit_writes

from storage import schema
from storage.cache import MISSING, ValueCache
from storage.store import Store


def test_reads_see_every_commit_including_keys_read_as_absent(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.initialise_genesis(GENESIS_HASH, GENESIS_WRITES)
        assert store.get(b"a") is None  # now cached as absent
        commit_writes(store, [{b"a": b"1", b"b": b"2"}])
        assert (store.get(b"a"), store.get(b"b")) == (b"1", b"2")
        commit_writes(store, [{b"a": None}, {b"b": b"3"}])
        assert (store.get(b"a"), store.get(b"b")) == (None, b"3")
    with Store.open(tmp_path) as store:  # and the database agrees
        assert (store.get(b"a"), store.get(b"b")) == (None, b"3")


class _CommitsDuringRead:
    """A database whose read of one state key lets a block commit before the read returns (as a commit on
    another thread could), handing back the value read before that commit."""

    def __init__(self, db: Any, key: bytes, commit: Any) -> None:
        self._db = db
        self._key = schema.STATE_PREFIX + key
        self._commit = commit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def get(self, key: bytes, *args: Any) -> Any:
        value = self._db.get(key, *args)
        if key == self._key and self._commit is not None:
            commit, self._commit = self._commit, None
            commit()
        return value


def test_a_read_that_raced_a_commit_does_not_cache_the_older_value(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.initialise_genesis(GENESIS_HASH, GENESIS_WRITES)
        commit_writes(store, [{b"k": b"old"}])
        store._values.clear()  # as after a restart: the next read of k goes to the database
        real = store._db

        def commit() -> None:
            store._db = real
            commit_writes(store, [{b"k": b"new"}])

        store._db = _CommitsDuringRead(real, b"k", commit)
        assert store.get(b"k") == b"old"  # read before the commit finished: that read's answer
        assert store.get(b"k") == b"new"  # but the cache holds the committed value, not the older one


def test_a_fill_after_a_commit_is_ignored_and_one_before_is_overwritten() -> None:
    cache = ValueCache()
    before = cache.generation
    cache.fill(b"x", b"old", before)
    cache.commit({b"x": b"new", b"y": None})
    cache.fill(b"x", b"old", before)
    assert (cache.get(b"x"), cache.get(b"y"), cache.get(b"z")) == (b"new", None, MISSING)


def test_the_cache_stays_within_its_budget_and_empties_when_full() -> None:
    cache = ValueCache(bytes_max=1000)
    cache.commit({b"k%d" % i: b"v" * 100 for i in range(3)})  # 3 x ~253 bytes
    assert len(cache) == 3
    cache.commit({b"k3": b"v" * 300})  # would pass the budget: the cache starts again with it
    assert len(cache) == 1 and cache.get(b"k3") == b"v" * 300 and cache.get(b"k0") is MISSING
    cache.commit({b"big": b"v" * 2000})  # larger than the whole budget: not kept at all
    assert cache.get(b"big") is MISSING and len(cache) == 0
