"""BlockApplier: executes certified blocks through the real chaincode into a real LevelDB store, and tells
subscribers. The reference chain executed the same blocks into a store of its own; both must agree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chaincode import build_registry
from node.applier import BlockApplier
from node.events import EventHub
from node.metrics import NodeMetrics
from storage import CommitRefused, Store
from tests.node.nodekit import ReferenceChain, open_store, recertified


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ReferenceChain]:
    reference = ReferenceChain(tmp_path / "validators")
    yield reference
    reference.store.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    own = open_store(tmp_path / "node")
    yield own
    own.close()


@pytest.fixture
def events() -> EventHub:
    return EventHub(queue_max=100)


@pytest.fixture
def applier(store: Store, events: EventHub) -> BlockApplier:
    return BlockApplier(store, build_registry(), events, NodeMetrics())


def test_applies_blocks_in_order_to_the_validators_roots_and_results(
    chain: ReferenceChain, store: Store, applier: BlockApplier
) -> None:
    first = chain.extend((chain.deposit("ent-a", 500), chain.deposit("ent-b", 700)))
    second = chain.extend()
    third = chain.extend((chain.deposit("ent-a", 1),))
    for certified in (first, second, third):
        applied = applier.apply(certified.block, certified.certificate)
        height = certified.block.header.height
        assert store.last_height == height
        assert store.last_block_hash == certified.block.block_hash
        assert store.get_roots(height) == chain.store.get_roots(height)
        assert (applied.outcome.state_root, applied.outcome.results_root) == chain.store.get_roots(height)
        assert applied.results == certified.results
        assert all(result.code == "ok" for result in applied.results)
        stored = store.get_block(height)
        assert stored is not None and stored.certificate == certified.certificate
    location = store.get_tx_location(first.block.txs[1].tx_id)
    assert location is not None and (location.height, location.index, location.code) == (1, 1, "ok")
    assert applier.metrics.registry.get_sample_value("carbonchain_height") == 3


def test_a_transaction_committed_before_fails_as_a_replay_and_keeps_its_first_location(
    chain: ReferenceChain, store: Store, applier: BlockApplier
) -> None:
    deposit = chain.deposit()
    first = chain.extend((deposit,))
    again = chain.extend((deposit,))
    applier.apply(first.block, first.certificate)
    applied = applier.apply(again.block, again.certificate)
    assert applied.results[0].code == "replay"
    assert store.get_roots(2) == chain.store.get_roots(2)
    location = store.get_tx_location(deposit.tx_id)
    assert location is not None and location.height == 1


def test_refuses_a_block_that_does_not_follow_and_writes_nothing(
    chain: ReferenceChain, store: Store, applier: BlockApplier
) -> None:
    chain.extend_to(2)
    second = chain.blocks[2]
    with pytest.raises(CommitRefused, match="does not follow"):
        applier.apply(second.block, second.certificate)
    assert store.last_height == 0
    first = chain.blocks[1]
    unlinked = recertified(first, prev_hash=bytes(32))
    with pytest.raises(CommitRefused, match="previous hash"):
        applier.apply(unlinked.block, unlinked.certificate)
    assert store.last_height == 0 and store.get_block(1) is None


def test_publishes_the_block_and_each_transaction_to_subscribers(
    chain: ReferenceChain, applier: BlockApplier, events: EventHub
) -> None:
    everything = events.subscribe()
    ent_b = events.subscribe(org="ent-b")
    certified = chain.extend((chain.deposit("ent-a", 5), chain.deposit("ent-b", 9)))
    applier.apply(certified.block, certified.certificate)
    received = [everything.queue.get_nowait().data for _ in range(everything.queue.qsize())]
    assert [event["type"] for event in received] == ["block", "tx", "tx"]
    block_event = received[0]
    assert block_event["height"] == 1
    assert block_event["hash"] == certified.block.block_hash.hex()
    assert block_event["tx_count"] == 2
    assert [event["tx_id"] for event in received[1:]] == [tx.tx_id.hex() for tx in certified.block.txs]
    assert all(event["code"] == "ok" and "orgs" not in event for event in received[1:])
    only_b = [ent_b.queue.get_nowait().data for _ in range(ent_b.queue.qsize())]
    assert [event["type"] for event in only_b] == ["block", "tx"]
    assert only_b[1]["index"] == 1 and only_b[1]["tx_id"] == certified.block.txs[1].tx_id.hex()
