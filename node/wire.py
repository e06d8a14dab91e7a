"""Node-level payloads carried by the peer layer's channels, besides consensus messages.

Channels (docs/protocol/node.md):
- "tx":     a batch of raw signed transactions (node.gossip), gossiped to validators.
- "sync":   {"kind": "get_blocks", "id": uint, "from": height, "to": height} and the answer
            {"kind": "blocks", "id": uint, "blocks": [certified block, ...]}; served by every validator.
- "blocks": one certified block, pushed by validators to observers as it commits.
A certified block is {"block": Block wire, "certificate": CommitCertificate wire, "results": [TxResult wire]}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core import codec
from core.block import Block, CommitCertificate, TxResult
from core.errors import CodecError, InvalidInput
from core.tx import DEFAULT_TX_BYTES_MAX

CHANNEL_CONSENSUS = "consensus"
CHANNEL_TX = "tx"
CHANNEL_SYNC = "sync"
CHANNEL_BLOCKS = "blocks"

SYNC_BLOCKS_MAX = 200  # blocks per answer
SYNC_BYTES_MAX = 8 * 1024 * 1024  # soft limit on an answer's size; at least one block is always sent


@dataclass(frozen=True, slots=True)
class CertifiedBlock:
    block: Block
    certificate: CommitCertificate
    results: tuple[TxResult, ...]  # the sender's results; a receiver re-executes and checks them via roots

    def to_wire(self) -> dict[str, Any]:
        return {
            "block": self.block.to_wire(),
            "certificate": self.certificate.to_wire(),
            "results": [result.to_wire() for result in self.results],
        }

    @classmethod
    def from_wire(cls, value: Any, *, tx_bytes_max: int = DEFAULT_TX_BYTES_MAX) -> CertifiedBlock:
        if type(value) is not dict or set(value) != {"block", "certificate", "results"}:
            raise CodecError("a certified block is a map of block, certificate and results")
        if type(value["results"]) is not list:
            raise CodecError("results must be a list")
        block = Block.from_wire(value["block"], tx_bytes_max=tx_bytes_max)
        results = tuple(TxResult.from_wire(item) for item in value["results"])
        if len(results) != len(block.txs):
            raise CodecError(f"{len(results)} results for {len(block.txs)} transactions")
        return cls(block, CommitCertificate.from_wire(value["certificate"]), results)


@dataclass(frozen=True, slots=True)
class GetBlocks:
    request_id: int
    from_height: int
    to_height: int  # inclusive


@dataclass(frozen=True, slots=True)
class BlocksAnswer:
    request_id: int
    blocks: tuple[CertifiedBlock, ...]


def encode_get_blocks(request: GetBlocks) -> bytes:
    return codec.encode(
        {"from": request.from_height, "id": request.request_id, "kind": "get_blocks", "to": request.to_height}
    )


def encode_blocks_answer(request_id: int, blocks: list[CertifiedBlock]) -> bytes:
    return codec.encode({"blocks": [b.to_wire() for b in blocks], "id": request_id, "kind": "blocks"})


def decode_sync(payload: bytes, *, tx_bytes_max: int = DEFAULT_TX_BYTES_MAX) -> GetBlocks | BlocksAnswer:
    """Decode a sync-channel payload strictly; InvalidInput names what is wrong."""
    value = codec.decode(payload)
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
    raise InvalidInput(f"unknown sync kind {kind!r}")


def encode_certified_block(block: CertifiedBlock) -> bytes:
    return codec.encode(block.to_wire())


def decode_certified_block(payload: bytes, *, tx_bytes_max: int = DEFAULT_TX_BYTES_MAX) -> CertifiedBlock:
    return CertifiedBlock.from_wire(codec.decode(payload), tx_bytes_max=tx_bytes_max)
