"""ObserverFollower: verifies certified blocks pushed or served by validators, applies them in height order
into a real LevelDB store, asks for the ranges it misses, and halts when the validators' certified state
differs from its own execution. The peer layer is a FakeNetwork (the real one is covered by
tests/integration); blocks come from a ReferenceChain executed into a store of its own."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaincode import build_registry
from core import codec
from core.block import (
    CertifiedBlock,
    decode_certified_block,
    encode_certified_block,
    peek_certified_block_height,
)
from core.errors import InvalidInput
from node.applier import BlockApplier
from node.events import EventHub
from node.metrics import NodeMetrics
from node.observer import ObserverFollower
from node.roster import Roster
from node.sync import SYNC_BLOCKS_MAX, GetBlocks
from p2p import PeerId
from storage import Store
from tests.node.nodekit import GENESIS, FakeNetwork, ReferenceChain, certify, open_store, recertified

V0, V1, V2 = PeerId.validator(0), PeerId.validator(1), PeerId.validator(2)
OBSERVER = PeerId.observer(0)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ReferenceChain]:
    reference = ReferenceChain(tmp_path / "validators")
    reference.extend_to(5)
    yield reference
    reference.store.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    own = open_store(tmp_path / "observer")
    yield own
    own.close()


@pytest.fixture
def network() -> FakeNetwork:
    return FakeNetwork(connected=(V0, V1, V2))


@pytest.fixture
def follower(store: Store, network: FakeNetwork) -> ObserverFollower:
    applier = BlockApplier(store, build_registry(), EventHub(queue_max=10), NodeMetrics())
    return ObserverFollower(
        GENESIS, store, network, applier, Roster(GENESIS, executed_height=store.last_height)
    )


def test_applies_pushed_blocks_in_order_to_the_validators_state(
    chain: ReferenceChain, store: Store, network: FakeNetwork, follower: ObserverFollower
) -> None:
    for height in (1, 2, 3):
        follower.on_block(V0, chain.blocks[height])
    assert store.last_height == 3
    assert store.get_roots(3) == chain.store.get_roots(3)
    assert not follower.catching_up and follower.halted_reason is None
    assert network.sent == []  # nothing was missing
    follower.on_block(V1, chain.blocks[2])  # a block we already have is ignored
    assert store.last_height == 3


def test_the_block_frame_decodes_and_follows_like_a_pushed_block(
    chain: ReferenceChain, store: Store, follower: ObserverFollower
) -> None:
    handler = follower.get_frame_handlers()["blocks"]
    handler(V0, encode_certified_block(chain.blocks[1]))
    assert store.last_height == 1


def test_the_copies_of_a_block_other_validators_push_are_not_decoded(
    chain: ReferenceChain, store: Store, follower: ObserverFollower, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[int] = []

    def counting_decode(payload: bytes, **limits: int) -> CertifiedBlock:
        block = decode_certified_block(payload, **limits)
        decoded.append(block.block.header.height)
        return block

    monkeypatch.setattr("node.observer.decode_certified_block", counting_decode)
    handler = follower.get_frame_handlers()["blocks"]
    handler(V0, encode_certified_block(chain.blocks[3]))  # ahead: buffered
    for peer in (V0, V1, V2):  # every validator pushes the blocks it commits
        for height in (1, 2, 3):
            handler(peer, encode_certified_block(chain.blocks[height]))
    assert store.last_height == 3
    assert decoded == [3, 1, 2]


def test_the_height_peek_reads_the_header_and_gives_up_on_anything_else(chain: ReferenceChain) -> None:
    assert peek_certified_block_height(encode_certified_block(chain.blocks[2])) == 2
    for payload in (b"", b"\xc1", codec.encode({"block": 1}), codec.encode([1, 2]), b"\x81\xa5block"):
        assert peek_certified_block_height(payload) is None


def test_buffers_blocks_ahead_and_applies_them_once_the_gap_is_filled(
    chain: ReferenceChain, store: Store, network: FakeNetwork, follower: ObserverFollower
) -> None:
    follower.on_block(V0, chain.blocks[4])
    follower.on_block(V0, chain.blocks[3])
    assert store.last_height == 0
    assert follower.catching_up and follower.known_height == 4
    # the gap is asked of the validator that showed it, once while that request is open
    assert network.block_requests() == [(V0, GetBlocks(1, 1, SYNC_BLOCKS_MAX))]
    follower.on_block(V0, chain.blocks[1])
    assert store.last_height == 1  # 2 is still missing: 3 and 4 wait
    follower.on_block(V0, chain.blocks[2])
    assert store.last_height == 4
    assert store.get_roots(4) == chain.store.get_roots(4)
    assert not follower.catching_up


def test_a_range_answer_is_used_only_from_the_peer_it_was_asked_of(
    chain: ReferenceChain, store: Store, network: FakeNetwork, follower: ObserverFollower
) -> None:
    follower.on_peer_connected(V1)
    [(peer, request)] = network.block_requests()
    assert peer == V1 and (request.from_height, request.to_height) == (1, SYNC_BLOCKS_MAX)
    blocks = (chain.blocks[1], chain.blocks[2])
    follower.on_blocks_answer(V1, request.request_id + 1, blocks)  # an id we never sent
    assert store.last_height == 0
    follower.on_blocks_answer(V1, request.request_id, blocks)
    assert store.last_height == 2
    follower.on_blocks_answer(V1, request.request_id, (chain.blocks[3],))  # answered already
    assert store.last_height == 2


def test_a_range_answer_from_another_peer_does_not_cancel_the_request(
    chain: ReferenceChain, store: Store, network: FakeNetwork, follower: ObserverFollower
) -> None:
    follower.on_peer_connected(V1)
    [(_, request)] = network.block_requests()
    follower.on_blocks_answer(V2, request.request_id, (chain.blocks[1],))  # V2 was not asked
    assert store.last_height == 0
    follower.on_blocks_answer(V1, request.request_id, (chain.blocks[1], chain.blocks[2]))
    assert store.last_height == 2


def test_asks_again_from_its_new_height_while_still_behind(
    chain: ReferenceChain, store: Store, network: FakeNetwork, follower: ObserverFollower
) -> None:
    follower.on_block(V0, chain.blocks[5])  # shows height 5, asks V0 for 1..
    [(_, first)] = network.block_requests()
    follower.on_blocks_answer(V0, first.request_id, (chain.blocks[1], chain.blocks[2]))
    assert store.last_height == 2
    [_, (peer, second)] = network.block_requests()
    assert peer == V0 and second.from_height == 3 and second.request_id != first.request_id
    follower.on_blocks_answer(V0, second.request_id, (chain.blocks[3], chain.blocks[4]))
    assert store.last_height == 5  # 5 was buffered
    assert not follower.catching_up and len(network.block_requests()) == 2


def test_requests_missing_ranges_of_connected_validators_only(
    network: FakeNetwork, follower: ObserverFollower
) -> None:
    follower.on_peer_connected(OBSERVER)
    assert network.sent == []
    network.connected.discard(V2)
    follower.on_peer_connected(V2)  # the link went down again: nothing sent, nothing outstanding
    assert network.sent == []
    network.connected.add(V2)
    follower.on_peer_connected(V2)
    follower.on_peer_connected(V2)  # already asked, not answered yet
    assert [peer for peer, _ in network.block_requests()] == [V2]
    assert follower.is_linked()
    network.connected.clear()
    assert not follower.is_linked()


def test_a_block_with_a_bad_certificate_raises_invalid_input_and_changes_nothing(
    chain: ReferenceChain, store: Store, follower: ObserverFollower
) -> None:
    first = chain.blocks[1]
    too_few = CertifiedBlock(first.block, certify(first.block, signers=range(2)), first.results)
    with pytest.raises(InvalidInput, match="commit certificate: 2 votes, a quorum needs 3"):
        follower.on_block(V0, too_few)
    other = chain.blocks[2].certificate  # valid signatures, over another block
    with pytest.raises(InvalidInput, match="commit certificate"):
        follower.on_block(V0, CertifiedBlock(first.block, other, first.results))
    forged_votes = tuple((index, bytes(64)) for index, _ in first.certificate.votes)
    forged = dataclasses.replace(first.certificate, votes=forged_votes)
    with pytest.raises(InvalidInput, match="commit certificate: signature of validator"):
        follower.on_block(V0, CertifiedBlock(first.block, forged, first.results))
    assert store.last_height == 0 and follower.known_height == 0


def test_a_certified_header_over_other_transactions_raises_invalid_input(
    chain: ReferenceChain, store: Store, network: FakeNetwork, follower: ObserverFollower
) -> None:
    first, second = chain.blocks[1], chain.blocks[2]
    swapped = dataclasses.replace(first.block, txs=second.block.txs)
    with pytest.raises(InvalidInput, match="transaction root"):
        follower.on_block(V0, CertifiedBlock(swapped, first.certificate, second.results))
    follower.on_peer_connected(V0)
    [(_, request)] = network.block_requests()
    with pytest.raises(InvalidInput, match="transaction root"):
        follower.on_blocks_answer(
            V0, request.request_id, (CertifiedBlock(swapped, first.certificate, second.results),)
        )
    assert store.last_height == 0


def test_only_validators_stream_blocks(chain: ReferenceChain, follower: ObserverFollower) -> None:
    with pytest.raises(InvalidInput, match="only validators"):
        follower.on_block(OBSERVER, chain.blocks[1])


def test_a_certified_state_that_differs_from_our_execution_halts(
    chain: ReferenceChain, store: Store, follower: ObserverFollower
) -> None:
    follower.on_block(V0, chain.blocks[1])
    follower.on_block(V0, chain.blocks[2])
    # A quorum certifies a block 3 whose header claims other roots for height 1 than execution gives.
    lying = recertified(chain.blocks[3], state_root=bytes(32))
    follower.on_block(V0, lying)
    assert follower.halted_reason is not None
    assert follower.halted_reason.startswith("state divergence at height 1")
    assert store.last_height == 2
    follower.on_block(V0, chain.blocks[3])  # once halted, nothing more is applied
    assert store.last_height == 2


def test_a_certified_block_that_does_not_link_to_ours_halts(
    chain: ReferenceChain, store: Store, follower: ObserverFollower
) -> None:
    follower.on_block(V0, chain.blocks[1])
    fork = recertified(chain.blocks[2], prev_hash=bytes(32))
    follower.on_block(V0, fork)
    assert follower.halted_reason is not None and "height 2: hash link" in follower.halted_reason
    assert store.last_height == 1


def test_a_block_too_far_ahead_to_check_is_checked_whole_before_it_is_applied(
    chain: ReferenceChain, store: Store, follower: ObserverFollower
) -> None:
    # the validator sets of heights above executed + margin + 1 are not certain yet (a change executed
    # meanwhile could still take effect there): such a block is buffered unchecked, and checked whole later
    chain.extend_to(9)
    far = chain.blocks[8]
    forged = dataclasses.replace(
        far.certificate, votes=tuple((i, bytes(64)) for i, _ in far.certificate.votes)
    )
    follower.on_block(V0, CertifiedBlock(far.block, forged, far.results))  # not an error yet
    assert follower.known_height == 0  # an unchecked block proves nothing about the chain's height
    for height in range(1, 8):
        follower.on_block(V0, chain.blocks[height])
    assert store.last_height == 7 and follower.halted_reason is None  # the forged block was dropped
    follower.on_block(V1, chain.blocks[8])
    assert store.last_height == 8 and store.get_roots(8) == chain.store.get_roots(8)


def test_the_periodic_ask_waits_while_pushes_keep_us_at_the_head(
    chain: ReferenceChain, network: FakeNetwork, follower: ObserverFollower
) -> None:
    follower.on_catch_up_tick()  # nothing applied since the start: ask
    [(_, first)] = network.block_requests()
    follower.on_blocks_answer(V0, first.request_id, ())
    follower.on_block(V1, chain.blocks[1])
    follower.on_block(V1, chain.blocks[2])
    follower.on_catch_up_tick()  # pushes brought blocks and nothing is known beyond them: no request
    assert len(network.block_requests()) == 1
    follower.on_catch_up_tick()  # no block since the last tick (a push may have been missed): ask
    [_, (_, second)] = network.block_requests()
    assert second.from_height == 3


def test_the_periodic_ask_goes_on_while_behind_even_as_blocks_are_applied(
    chain: ReferenceChain, network: FakeNetwork, follower: ObserverFollower
) -> None:
    follower.on_block(V0, chain.blocks[4])  # shows height 4, buffered: asks V0 for 1..
    follower.on_block(V0, chain.blocks[1])
    follower.on_catch_up_tick()  # applied one, still behind: the request is renewed
    [_, (_, renewed)] = network.block_requests()
    assert renewed.from_height == 2
