"""The block-range sync protocol (node/sync.py): its codec, serving a range from a real store, and the
bookkeeping of the ranges asked for."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from core import codec
from core.block import decode_certified_block, encode_certified_block
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


def heights(encoded: Iterable[bytes]) -> list[int]:
    return [decode_certified_block(b).block.header.height for b in encoded]


def test_serves_the_certified_blocks_it_has_of_a_range(chain: ReferenceChain) -> None:
    assert heights(serve_block_range(chain.store, GetBlocks(1, 2, 4))) == [2, 3, 4]
    assert heights(serve_block_range(chain.store, GetBlocks(1, 4, 10**6))) == [4, 5]
    assert serve_block_range(chain.store, GetBlocks(1, 6, 9)) == []
    served = serve_block_range(chain.store, GetBlocks(1, 3, 3))
    assert served == [encode_certified_block(chain.blocks[3])]


def test_a_served_range_is_byte_for_byte_the_encoding_of_its_certified_blocks(chain: ReferenceChain) -> None:
    # served from the stored bytes (nothing decoded): the wire format of docs/protocol/node.md exactly
    failing = chain.call("ent-a", "transfer_allowances", {"to": "ent-a", "amount_t": 1})  # self_transfer
    chain.extend((chain.deposit(), failing, chain.deposit("ent-a", 7)))
    chain.extend()
    last = chain.store.last_height
    assert [r.code for r in chain.blocks[last - 1].results] == ["ok", "self_transfer", "ok"]
    answer = encode_blocks_answer(9, serve_block_range(chain.store, GetBlocks(9, 1, last)))
    wire = {"blocks": [chain.blocks[h].to_wire() for h in range(1, last + 1)], "id": 9, "kind": "blocks"}
    assert answer == codec.encode(wire)
    assert decode_sync(answer) == BlocksAnswer(9, tuple(chain.blocks[h] for h in range(1, last + 1)))


def test_a_range_stops_before_the_first_block_without_a_certificate(chain: ReferenceChain) -> None:
    chain.extend((chain.deposit(),), certified=False)
    chain.extend((chain.deposit(),))
    assert heights(serve_block_range(chain.store, GetBlocks(1, 4, 7))) == [4, 5]
    assert serve_block_range(chain.store, GetBlocks(1, 6, 7)) == []


def test_serves_at_most_sync_blocks_max_blocks(chain: ReferenceChain) -> None:
    while chain.store.last_height < SYNC_BLOCKS_MAX + 2:
        chain.extend()
    served = serve_block_range(chain.store, GetBlocks(1, 2, SYNC_BLOCKS_MAX + 2))
    assert heights(served) == list(range(2, SYNC_BLOCKS_MAX + 2))


def test_sync_messages_round_trip_and_bad_ones_are_named(chain: ReferenceChain) -> None:
    assert decode_sync(encode_get_blocks(GetBlocks(7, 1, 9))) == GetBlocks(7, 1, 9)
    blocks = [chain.blocks[1], chain.blocks[2]]
    encoded = [encode_certified_block(block) for block in blocks]
    assert decode_sync(encode_blocks_answer(8, encoded)) == BlocksAnswer(8, tuple(blocks))
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
