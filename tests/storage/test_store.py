"""Block store, tx index, roots, certificates, genesis, consensus log and snapshot reads on a real LevelDB."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from conftest import GENESIS_WRITES
from storagekit import (
    CHAIN_ID,
    GENESIS_HASH,
    commit_writes,
    make_block,
    make_certificate,
    make_results,
    make_tx,
    validator_key,
)

from core.block import EMPTY_ROOT, RESULT_OK, compute_results_root, verify_commit_certificate
from core.errors import InvalidInput, InvariantBroken
from core.hashing import Domain, tagged_hash
from core.validators import ValidatorSet
from storage.errors import CommitRefused, GenesisMismatch, StorageError
from storage.proof import EMPTY_STATE_ROOT, verify_state_proof
from storage.store import Store
from storage.trie import compute_state_root


def test_fresh_store_has_no_head(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        assert store.last_height == -1
        assert store.last_block_hash is None
        assert store.genesis_hash is None
        assert store.get_state_root() == EMPTY_STATE_ROOT
        assert store.get_block(1) is None
        with pytest.raises(CommitRefused, match="genesis"):
            store.commit_block(make_block_without_head(), [], [], None)


def make_block_without_head():  # type: ignore[no-untyped-def]
    from core.block import Block, BlockHeader

    header = BlockHeader(
        CHAIN_ID, 1, GENESIS_HASH, 1, 0, 0, EMPTY_ROOT, 0, EMPTY_ROOT, EMPTY_ROOT, EMPTY_ROOT, EMPTY_ROOT
    )
    return Block(header, ())


def test_genesis_state_and_roots(store: Store) -> None:
    assert store.last_height == 0
    assert store.last_block_hash == GENESIS_HASH
    assert store.genesis_hash == GENESIS_HASH
    root = compute_state_root(GENESIS_WRITES.items())
    assert store.get_roots(0) == (root, EMPTY_ROOT)
    assert store.get_state_root() == root
    assert store.get(b"org/a") == b"alpha"
    assert store.initialise_genesis(GENESIS_HASH, GENESIS_WRITES) == root  # idempotent
    with pytest.raises(GenesisMismatch, match="belongs to genesis"):
        store.initialise_genesis(tagged_hash(Domain.GENESIS, b"other"), GENESIS_WRITES)
    with pytest.raises(GenesisMismatch, match="state differs"):
        store.initialise_genesis(GENESIS_HASH, {b"org/a": b"other"})


def test_commit_and_read_block(store: Store) -> None:
    tx_writes = [{b"acct/1": b"10", b"acct/2": b"20"}, {}, {b"acct/1": b"11", b"org/a": None}]
    block = commit_writes(store, tx_writes)
    assert store.last_height == 1
    assert store.last_block_hash == block.block_hash
    stored = store.get_block(1)
    assert stored is not None
    assert stored.block == block
    assert stored.results == tuple(make_results(tx_writes))
    assert stored.results_root == compute_results_root(stored.results)
    assert stored.certificate is not None
    verify_commit_certificate(
        stored.certificate, block.header, ValidatorSet.of_keys(validator_key(i).public_key for i in range(4))
    )
    state = dict(GENESIS_WRITES)
    state.update({b"acct/1": b"11", b"acct/2": b"20"})
    del state[b"org/a"]
    assert stored.state_root == compute_state_root(state.items()) == store.get_state_root()
    assert store.get_roots(1) == (stored.state_root, stored.results_root)
    assert store.get_block_by_hash(block.block_hash) == stored
    assert store.get_block_by_hash(b"\x00" * 32) is None
    for index, tx in enumerate(block.txs):
        location = store.get_tx_location(tx.tx_id)
        assert location is not None
        assert (location.height, location.index) == (1, index)
        assert location.code == (RESULT_OK if tx_writes[index] else "rejected")
    assert store.get_tx_location(b"\x01" * 32) is None
    assert dict(store.iterate(b"acct/")) == {b"acct/1": b"11", b"acct/2": b"20"}


def test_refuses_out_of_order_blocks(store: Store) -> None:
    block = make_block(store, [make_tx(1)])
    store.commit_block(block, make_results([{}]), [{}], None)
    with pytest.raises(CommitRefused, match="does not follow"):
        store.commit_block(block, make_results([{}]), [{}], None)
    wrong_parent = make_block(store, [make_tx(2)])
    object.__setattr__(wrong_parent.header, "prev_hash", b"\x07" * 32)
    from core.block import Block

    wrong_parent = Block(wrong_parent.header, wrong_parent.txs)
    with pytest.raises(CommitRefused, match="previous hash") as caught:
        store.commit_block(wrong_parent, make_results([{}]), [{}], None)
    assert isinstance(caught.value, InvariantBroken)
    good = make_block(store, [make_tx(3)])
    with pytest.raises(CommitRefused, match="write sets"):
        store.commit_block(good, make_results([{}]), [], None)
    with pytest.raises(CommitRefused, match="certificate"):
        store.commit_block(good, make_results([{}]), [{}], make_certificate(block))
    with pytest.raises(InvalidInput, match="state key"):
        store.commit_block(good, make_results([{}]), [{b"": b"x"}], None)
    assert store.last_height == 1
    store.commit_block(good, make_results([{}]), [{}], None)
    assert store.last_height == 2


def test_set_certificate_attaches_and_upgrades(store: Store) -> None:
    block = commit_writes(store, [{b"k": b"v"}], certificate=False)
    stored = store.get_block(1)
    assert stored is not None and stored.certificate is None
    store.set_certificate(1, make_certificate(block, votes=3))
    store.set_certificate(1, make_certificate(block, votes=4, view=2))
    stored = store.get_block(1)
    assert stored is not None and stored.certificate is not None
    assert len(stored.certificate.votes) == 4 and stored.certificate.view == 2
    other = commit_writes(store, [{b"k": b"w"}])
    with pytest.raises(CommitRefused, match="another block"):
        store.set_certificate(1, make_certificate(other).__class__(0, 1, other.block_hash, ()))
    with pytest.raises(CommitRefused, match="no committed block"):
        store.set_certificate(9, make_certificate(other).__class__(0, 9, other.block_hash, ()))


def test_get_blocks_respects_ranges_and_byte_budget(store: Store) -> None:
    for n in range(5):
        commit_writes(store, [{b"k%d" % n: b"v" * 100}, {b"x": b"%d" % n}])
    assert [b.block.header.height for b in store.get_blocks(2, 4)] == [2, 3, 4]
    assert [b.block.header.height for b in store.get_blocks(4, 99)] == [4, 5]
    assert store.get_blocks(6, 9) == []
    assert store.get_blocks(3, 2) == []
    assert [b.block.header.height for b in store.get_blocks(1, 5, max_bytes=1)] == [1]
    assert len(store.get_blocks(1, 5, max_blocks=2)) == 2


def test_scan_pages_through_a_prefix(store: Store) -> None:
    commit_writes(store, [{b"p/%03d" % i: b"%d" % i for i in range(25)}, {b"q/1": b"x", b"p": b"bare"}])
    seen = []
    cursor = None
    while True:
        items, cursor = store.scan(b"p/", cursor, limit=10)
        seen.extend(items)
        if cursor is None:
            break
    assert [k for k, _ in seen] == [b"p/%03d" % i for i in range(25)]
    assert list(store.iterate(b"p/", start_after=b"p/020")) == [
        (b"p/%03d" % i, b"%d" % i) for i in range(21, 25)
    ]
    assert list(store.iterate(b"p/", start_after=b"a")) == seen
    assert list(store.iterate(b"p/", start_after=b"z")) == []
    with pytest.raises(InvalidInput):
        store.scan(b"", None, limit=0)


def test_proofs_from_the_store(store: Store) -> None:
    commit_writes(store, [{b"acct/%d" % i: b"%d" % i for i in range(300)}])
    root = store.get_state_root()
    for i in range(0, 300, 7):
        assert verify_state_proof(root, b"acct/%d" % i, store.get_proof(b"acct/%d" % i)) == b"%d" % i
    for i in range(300, 340):
        assert verify_state_proof(root, b"acct/%d" % i, store.get_proof(b"acct/%d" % i)) is None


def test_tx_index_keeps_first_inclusion_of_a_repeated_id(store: Store) -> None:
    tx = make_tx(42)
    first = make_block(store, [tx])
    store.commit_block(first, make_results([{b"a": b"1"}]), [{b"a": b"1"}], None)
    second = make_block(store, [tx])
    store.commit_block(second, [make_results([{}])[0]], [{}], None)
    location = store.get_tx_location(tx.tx_id)
    assert location is not None and (location.height, location.code) == (1, RESULT_OK)


def test_consensus_log_is_durable(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        log = store.consensus_log
        log.put(b"last/view", b"\x03")
        log.put_many([(b"vote/1", b"a"), (b"vote/2", b"b"), (b"x", b"c")])
        log.delete(b"vote/1")
        with pytest.raises(InvalidInput):
            log.put(b"", b"x")
    with Store.open(tmp_path) as store:
        log = store.consensus_log
        assert log.get(b"last/view") == b"\x03"
        assert log.get(b"vote/1") is None
        assert list(log.iterate(b"vote/")) == [(b"vote/2", b"b")]
        assert store.get(b"last/view") is None  # its own namespace, never state
    with pytest.raises(StorageError, match="closed"):
        log.get(b"x")


def test_snapshot_reads_stay_consistent_during_commits(store: Store) -> None:
    keys = [b"bal/%d" % i for i in range(20)]
    # Each block moves one unit between two accounts: every consistent view sums to the same total.
    commit_writes(store, [{key: b"100" for key in keys}])
    total = 100 * len(keys)
    stop = threading.Event()
    failures: list[str] = []

    def read_loop() -> None:
        while not stop.is_set():
            with store.snapshot() as snap:
                values = dict(snap.iterate(b"bal/"))
                height = snap.last_height
                roots = snap.get_roots(height)
                root = snap.get_state_root()
                if sum(int(v) for v in values.values()) != total:
                    failures.append(f"torn read at height {height}")
                if roots is None or roots[0] != root:
                    failures.append(f"root of height {height} disagrees with the trie")
                block = snap.get_block(height)
                if height > 0 and (block is None or len(block.results) != len(block.block.txs)):
                    failures.append(f"block {height} incomplete")

    reader = threading.Thread(target=read_loop)
    reader.start()
    try:
        balances = {key: 100 for key in keys}
        for n in range(60):
            a, b = keys[n % 20], keys[(n * 7 + 3) % 20]
            if a == b:
                continue
            balances[a] -= 1
            balances[b] += 1
            commit_writes(store, [{a: b"%d" % balances[a]}, {b: b"%d" % balances[b]}])
    finally:
        stop.set()
        reader.join()
    assert failures == []
    with store.snapshot() as snap:
        height = snap.last_height
        commit_writes(store, [{keys[0]: b"0"}])
        assert snap.last_height == height
        assert snap.get(keys[0]) != b"0"
        assert snap.get_block(height + 1) is None
    assert store.get(keys[0]) == b"0"
