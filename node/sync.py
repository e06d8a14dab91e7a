"""The sync protocol on the "sync" channel: block ranges and a proposal's missing transactions, serving a
range from the store, and the bookkeeping of what we asked for (docs/protocol/node.md, "Block ranges"
and "Missing transactions").

A validator that falls behind (state transfer) and an observer that missed a pushed block both ask a
validator for a range with GetBlocks; the validator answers with BlocksAnswer. A validator assembling a
proposal it lacks transactions of (consensus/assembly.py) asks with GetTxs; the answer, TxsAnswer, holds
those the peer has. An answer is used only if it carries an id we sent to that very peer
(BlockRequests); what it holds is verified by the asker before use, never trusted.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from core import codec
from core.block import CertifiedBlock
from core.errors import InvalidInput
from core.tx import DEFAULT_TX_BYTES_MAX, SignedTx, decode_transaction
from node.channels import CHANNEL_SYNC
from p2p import PeerId
from storage import Store

SYNC_BLOCKS_MAX = 200  # blocks per answer
SYNC_BYTES_MAX = 8 * 1024 * 1024  # soft limit on an answer's size; at least one block is always sent
SYNC_TXS_MAX = 100_000  # transaction ids per GetTxs and transactions per answer (block_txs_max at most)
OUTSTANDING_MAX = 64  # requests remembered; answers that never came are forgotten oldest first


@dataclass(frozen=True, slots=True)
class GetBlocks:
    request_id: int  # chosen by the asker, echoed in the answer
    from_height: int
    to_height: int  # inclusive


@dataclass(frozen=True, slots=True)
class BlocksAnswer:
    request_id: int  # the id of the GetBlocks this answers
    blocks: tuple[CertifiedBlock, ...]  # ascending from from_height, no gaps; empty: the server lacks it


@dataclass(frozen=True, slots=True)
class GetTxs:
    request_id: int
    tx_ids: tuple[bytes, ...]  # transactions of a proposal the asker lacks


@dataclass(frozen=True, slots=True)
class TxsAnswer:
    request_id: int  # the id of the GetTxs this answers
    txs: tuple[SignedTx, ...]  # those the server holds, in the order asked


SyncMessage = GetBlocks | BlocksAnswer | GetTxs | TxsAnswer


def encode_get_blocks(request: GetBlocks) -> bytes:
    return codec.encode(
        {"from": request.from_height, "id": request.request_id, "kind": "get_blocks", "to": request.to_height}
    )


def encode_blocks_answer(request_id: int, blocks: Sequence[bytes]) -> bytes:
    """The answer's bytes, given each certified block as encoded (serve_block_range gives them so)."""
    return codec.encode_map_of_encoded(
        [
            ("blocks", codec.encode_list_of_encoded(blocks)),
            ("id", codec.encode(request_id)),
            ("kind", codec.encode("blocks")),
        ]
    )


def encode_get_txs(request: GetTxs) -> bytes:
    return codec.encode({"id": request.request_id, "ids": list(request.tx_ids), "kind": "get_txs"})


def encode_txs_answer(request_id: int, txs: list[SignedTx]) -> bytes:
    return codec.encode({"id": request_id, "kind": "txs", "txs": [tx.raw for tx in txs]})


def decode_sync(
    payload: bytes, *, tx_bytes_max: int = DEFAULT_TX_BYTES_MAX, txs_max: int = SYNC_TXS_MAX
) -> SyncMessage:
    """Decode a sync-channel payload strictly; InvalidInput names what is wrong."""
    value = codec.decode(payload, max_container_len=max(txs_max, SYNC_BLOCKS_MAX))
    if type(value) is not dict or type(value.get("id")) is not int:
        raise InvalidInput("sync payload must be a map with an integer id")
    kind = value.get("kind")
    if kind == "get_blocks":
        if set(value) != {"from", "id", "kind", "to"}:
            raise InvalidInput("get_blocks has fields from, id, kind, to")
        first, last = value["from"], value["to"]
        if type(first) is not int or type(last) is not int or not 1 <= first <= last:
            raise InvalidInput("get_blocks needs 1 <= from <= to")
        return GetBlocks(value["id"], first, last)
    if kind == "blocks":
        if set(value) != {"blocks", "id", "kind"} or type(value["blocks"]) is not list:
            raise InvalidInput("blocks answer has fields blocks (a list), id, kind")
        if len(value["blocks"]) > SYNC_BLOCKS_MAX:
            raise InvalidInput(f"more than {SYNC_BLOCKS_MAX} blocks in one answer")
        blocks = tuple(CertifiedBlock.from_wire(item, tx_bytes_max=tx_bytes_max) for item in value["blocks"])
        return BlocksAnswer(value["id"], blocks)
    if kind == "get_txs":
        if set(value) != {"id", "ids", "kind"} or type(value["ids"]) is not list:
            raise InvalidInput("get_txs has fields id, ids (a list), kind")
        if len(value["ids"]) > txs_max or any(type(i) is not bytes or len(i) != 32 for i in value["ids"]):
            raise InvalidInput(f"get_txs asks for at most {txs_max} ids of 32 bytes")
        return GetTxs(value["id"], tuple(value["ids"]))
    if kind == "txs":
        if set(value) != {"id", "kind", "txs"} or type(value["txs"]) is not list:
            raise InvalidInput("txs answer has fields id, kind, txs (a list)")
        if len(value["txs"]) > txs_max or any(type(raw) is not bytes for raw in value["txs"]):
            raise InvalidInput(f"a txs answer holds at most {txs_max} raw transactions")
        return TxsAnswer(
            value["id"], tuple(decode_transaction(raw, tx_bytes_max=tx_bytes_max) for raw in value["txs"])
        )
    raise InvalidInput(f"unknown sync kind {kind!r}")


def serve_block_range(store: Store, request: GetBlocks) -> list[bytes]:
    """The certified blocks a GetBlocks asks for that we have, encoded (core.block.encode_certified_block):
    at most SYNC_BLOCKS_MAX and about SYNC_BYTES_MAX, ascending from request.from_height, stopping at the
    first block without a certificate. Built from the stored bytes: nothing is decoded to be re-encoded."""
    last = min(request.to_height, request.from_height + SYNC_BLOCKS_MAX - 1, store.last_height)
    if request.from_height > last:
        return []
    return store.get_certified_block_encodings(request.from_height, last, max_bytes=SYNC_BYTES_MAX)


class PeerLinks(Protocol):
    """What block syncing needs of the peer layer (p2p.PeerNetwork implements it)."""

    def send(self, peer: PeerId, channel: str, payload: bytes) -> bool: ...

    def connected_peers(self) -> list[PeerId]: ...


class BlockRequests:
    """The block ranges (or transactions) we asked for and have not had answered: request id -> the peer.

    An answer counts only if its id was sent to that very peer; a late, repeated or stray answer is
    ignored. At most OUTSTANDING_MAX requests are remembered.
    """

    def __init__(self, network: PeerLinks) -> None:
        self._network = network
        self._request_ids = itertools.count(1)
        self._asked: dict[int, PeerId] = {}

    def __len__(self) -> int:
        return len(self._asked)

    def request(self, peer: PeerId, from_height: int, to_height: int) -> bool:
        """Ask `peer` for a range; False (and nothing remembered) when it is not connected."""
        request_id = next(self._request_ids)
        payload = encode_get_blocks(GetBlocks(request_id, from_height, to_height))
        if not self._network.send(peer, CHANNEL_SYNC, payload):
            return False
        self._remember(request_id, peer)
        return True

    def _remember(self, request_id: int, peer: PeerId) -> None:
        self._asked[request_id] = peer
        if len(self._asked) > OUTSTANDING_MAX:  # answers that never came: forget the oldest
            self._asked.pop(next(iter(self._asked)))

    def request_txs(self, peer: PeerId, tx_ids: tuple[bytes, ...]) -> bool:
        """Ask `peer` for transactions; False (and nothing remembered) when it is not connected."""
        request_id = next(self._request_ids)
        if not self._network.send(peer, CHANNEL_SYNC, encode_get_txs(GetTxs(request_id, tx_ids))):
            return False
        self._remember(request_id, peer)
        return True

    def is_asking(self, peer: PeerId) -> bool:
        return peer in self._asked.values()

    def accept_answer(self, peer: PeerId, request_id: int) -> bool:
        """True when `request_id` is outstanding and was asked of `peer`; it is no longer outstanding.

        An answer from anyone else leaves the request standing: ids are small counters, and a peer that
        guesses another's id must not be able to cancel what we asked of that other peer."""
        if self._asked.get(request_id) != peer:
            return False
        del self._asked[request_id]
        return True

    def clear(self) -> None:
        self._asked.clear()
