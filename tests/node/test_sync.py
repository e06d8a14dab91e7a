"""The block-range sync protocol (node/sync.py): its codec, serving a range from a real store, and the
bookkeeping of the ranges asked for."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from core import codec
from core.block import CertifiedBlock
from core.errors import InvalidInput
from node.sync import (
    OUTSTANDING_MAX,
    SYNC_BLOCKS_MAX,
    BlockRequests,
    BlocksAnswer,
    GetBlocks,
    decode_sync,
    encode_blocks_answer,
    encode_get_blocks,
    serve_block_range,
)
from p2p import PeerId
from tests.node.nodekit import FakeNetwork, ReferenceChain

V0, V1 = PeerId.validator(0), PeerId.validator(1)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[ReferenceChain]:
    reference = ReferenceChain(tmp_path / "validators")
    reference.extend_to(5)
    yield reference
    reference.store.close()


def heights(blocks: Iterable[CertifiedBlock]) -> list[int]:
    return [b.block.header.height for b in blocks]


def test_serves_the_certified_blocks_it_has_of_a_range(chain: ReferenceChain) -> None:
    assert heights(serve_block_range(chain.store, GetBlocks(1, 2, 4))) == [2, 3, 4]
    assert heights(serve_block_range(chain.store, GetBlocks(1, 4, 10**6))) == [4, 5]
    assert serve_block_range(chain.store, GetBlocks(1, 6, 9)) == []
    served = serve_block_range(chain.store, GetBlocks(1, 3, 3))
    assert served == [chain.blocks[3]]


def test_serves_at_most_sync_blocks_max_blocks(chain: ReferenceChain) -> None:
    while chain.store.last_height < SYNC_BLOCKS_MAX + 2:
        chain.extend()
    served = serve_block_range(chain.store, GetBlocks(1, 2, SYNC_BLOCKS_MAX + 2))
    assert heights(served) == list(range(2, SYNC_BLOCKS_MAX + 2))


def test_sync_messages_round_trip_and_bad_ones_are_named(chain: ReferenceChain) -> None:
    assert decode_sync(encode_get_blocks(GetBlocks(7, 1, 9))) == GetBlocks(7, 1, 9)
    blocks = [chain.blocks[1], chain.blocks[2]]
    assert decode_sync(encode_blocks_answer(8, blocks)) == BlocksAnswer(8, tuple(blocks))
    bad = {
        "needs 1 <= from <= to": {"from": 5, "id": 1, "kind": "get_blocks", "to": 4},
        "integer id": {"from": 1, "id": "1", "kind": "get_blocks", "to": 4},
        "unknown sync kind": {"id": 1, "kind": "gimme"},
        "blocks answer has fields": {"blocks": {}, "id": 1, "kind": "blocks"},
        "more than": {
            "blocks": [chain.blocks[1].to_wire()] * (SYNC_BLOCKS_MAX + 1),
            "id": 1,
            "kind": "blocks",
        },
    }
    for message, value in bad.items():
        with pytest.raises(InvalidInput, match=message):
            decode_sync(codec.encode(value))


def test_block_requests_accept_only_the_answer_to_what_was_asked() -> None:
    network = FakeNetwork(connected=(V0, V1))
    requests = BlockRequests(network)
    assert requests.request(V0, 1, 10)
    [(peer, channel, payload)] = network.sent
    assert (peer, channel) == (V0, "sync")
    asked = decode_sync(payload)
    assert isinstance(asked, GetBlocks) and (asked.from_height, asked.to_height) == (1, 10)
    assert requests.is_asking(V0) and not requests.is_asking(V1) and len(requests) == 1
    assert not requests.accept_answer(V0, asked.request_id + 1)
    assert not requests.accept_answer(V1, asked.request_id)  # V1 was not asked: V0's request stands
    assert requests.is_asking(V0)
    assert requests.accept_answer(V0, asked.request_id)
    assert not requests.accept_answer(V0, asked.request_id)  # only once
    assert len(requests) == 0 and not requests.is_asking(V0)


def test_block_requests_to_an_unlinked_peer_are_not_remembered() -> None:
    requests = BlockRequests(FakeNetwork(connected=()))
    assert not requests.request(V0, 1, 10)
    assert len(requests) == 0 and not requests.is_asking(V0)


def test_block_requests_forget_the_oldest_past_their_bound() -> None:
    network = FakeNetwork(connected=(V0,))
    requests = BlockRequests(network)
    for _ in range(OUTSTANDING_MAX + 1):
        requests.request(V0, 1, 10)
    assert len(requests) == OUTSTANDING_MAX
    ids = [message.request_id for _, message in network.block_requests()]
    assert not requests.accept_answer(V0, ids[0])
    assert requests.accept_answer(V0, ids[-1])
