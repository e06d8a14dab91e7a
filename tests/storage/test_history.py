"""History: every version of every key, attributed to its transaction, and values as of any past height."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import GENESIS_WRITES
from storagekit import GENESIS_HASH, apply_to, commit_writes

from core.errors import InvalidInput
from storage.records import KeyVersion
from storage.store import Store


def test_versions_carry_height_and_transaction(store: Store) -> None:
    block1 = commit_writes(store, [{b"k": b"1"}, {b"k": b"2", b"j": b"x"}])
    block2 = commit_writes(store, [{}, {b"k": None}])
    block3 = commit_writes(store, [{b"k": b"3"}])
    assert store.get_history(b"k") == [
        KeyVersion(1, 0, block1.txs[0].tx_id, b"1"),
        KeyVersion(1, 1, block1.txs[1].tx_id, b"2"),
        KeyVersion(2, 1, block2.txs[1].tx_id, None),
        KeyVersion(3, 0, block3.txs[0].tx_id, b"3"),
    ]
    assert store.get_history(b"k", start_after_height=1, limit=1) == [
        KeyVersion(2, 1, block2.txs[1].tx_id, None)
    ]
    assert store.get_history(b"org/a") == [KeyVersion(0, None, None, b"alpha")]
    assert [store.get_at(b"k", h) for h in range(4)] == [None, b"2", None, b"3"]
    assert store.get_history(b"k\x00") == []  # a key that extends another has its own history
    with pytest.raises(InvalidInput, match="outside the committed range"):
        store.get_at(b"k", 4)
    with pytest.raises(InvalidInput):
        store.get_history(b"k", limit=10_000)


def test_end_of_block_writes_come_after_the_transactions_of_their_block(store: Store) -> None:
    block = commit_writes(store, [{b"k": b"1"}, {b"j": b"2"}], end_writes={b"k": b"end", b"e": b"x"})
    assert store.get(b"k") == b"end" and store.get(b"e") == b"x" and store.get(b"j") == b"2"
    assert store.get_history(b"k") == [
        KeyVersion(1, 0, block.txs[0].tx_id, b"1"),
        KeyVersion(1, None, None, b"end"),
    ]
    assert store.get_at(b"k", 1) == b"end"  # the end-of-block version is the block's last
    commit_writes(store, [{b"k": b"2"}])
    assert store.get_at(b"k", 1) == b"end" and store.get_at(b"k", 2) == b"2"
    assert store.get_state_root() == store.get_roots(2)[0]  # type: ignore[index]


def test_value_at_every_past_height_matches_a_replay(tmp_path: Path) -> None:
    rng = random.Random(20240601)
    keys = [b"key/%d" % i for i in range(30)] + [b"key/1" + b"0" * i for i in range(1, 4)]
    snapshots = [dict(GENESIS_WRITES)]
    state = dict(GENESIS_WRITES)
    with Store.open(tmp_path) as store:
        store.initialise_genesis(GENESIS_HASH, GENESIS_WRITES)
        for _ in range(40):
            tx_writes = [
                {
                    rng.choice(keys): (None if rng.random() < 0.3 else b"%d" % rng.randrange(10**6))
                    for _ in range(3)
                }
                for _ in range(rng.randrange(0, 6))
            ]
            commit_writes(store, tx_writes)
            apply_to(state, tx_writes)
            snapshots.append(dict(state))
        for height, expected in enumerate(snapshots):
            for key in [*keys, *GENESIS_WRITES]:
                assert store.get_at(key, height) == expected.get(key), (key, height)
        for key in keys:
            versions = store.get_history(key, limit=1000)
            assert versions == sorted(versions, key=lambda v: (v.height, v.tx_index))
            last = versions[-1].value if versions else None
            assert last == state.get(key)
            for version in versions:
                stored = store.get_block(version.height)
                assert stored is not None and version.tx_index is not None
                assert stored.block.txs[version.tx_index].tx_id == version.tx_id
