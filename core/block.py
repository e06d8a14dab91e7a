"""Block headers, blocks, per-transaction results, commit certificates and certified blocks.

The header is agreed before execution, so it commits to execution results with a lag: `state_root` and
`results_root` are those after executing block `state_height` (= height - pipeline_depth, at least 0).
With pipeline_depth 1 the next header carries the previous block's state root.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from core import codec
from core.errors import CodecError, InvalidInput
from core.hashing import HASH_BYTES, Domain, hash_value, merkle_root, tagged_hash
from core.keys import SIGNATURE_BYTES, is_valid_signature
from core.tx import DEFAULT_TX_BYTES_MAX, SignedTx, decode_transaction
from core.validators import ValidatorSet

RESULT_OK = "ok"


@dataclass(frozen=True, slots=True)
class BlockHeader:
    chain_id: str
    height: int  # 1 for the first block after genesis
    prev_hash: bytes  # hash of the previous header; the genesis hash for height 1
    time_ms: int  # agreed block time: proposer's clock, checked by replicas, strictly increasing
    proposer: int  # index of the proposing validator in the genesis validator list
    tx_count: int
    tx_root: bytes  # merkle_root of the transaction ids in order
    state_height: int  # the height whose post-execution roots follow
    state_root: bytes  # world-state root after executing block state_height
    results_root: bytes  # merkle_root of result hashes of block state_height
    validators_hash: bytes  # hash of the validator set certifying this height (core/validators.py)
    next_validators_hash: bytes  # hash of the set certifying the next height (differs at an epoch's end)

    def to_wire(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "height": self.height,
            "next_validators_hash": self.next_validators_hash,
            "prev_hash": self.prev_hash,
            "proposer": self.proposer,
            "results_root": self.results_root,
            "state_height": self.state_height,
            "state_root": self.state_root,
            "time_ms": self.time_ms,
            "tx_count": self.tx_count,
            "tx_root": self.tx_root,
            "validators_hash": self.validators_hash,
        }

    @classmethod
    def from_wire(cls, value: Any) -> BlockHeader:
        _require_map(value, cls.__dataclass_fields__, "block header")
        header = cls(**value)
        for name in ("height", "time_ms", "proposer", "tx_count", "state_height"):
            _require_uint(getattr(header, name), name)
        for name in (
            "prev_hash",
            "tx_root",
            "state_root",
            "results_root",
            "validators_hash",
            "next_validators_hash",
        ):
            _require_digest(getattr(header, name), name)
        if type(header.chain_id) is not str:
            raise CodecError("chain_id must be a string")
        return header

    @property
    def block_hash(self) -> bytes:
        return hash_value(Domain.BLOCK_HEADER, self.to_wire())


@dataclass(frozen=True, slots=True)
class Block:
    header: BlockHeader
    txs: tuple[SignedTx, ...]
    block_hash: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "block_hash", self.header.block_hash)

    def to_wire(self) -> dict[str, Any]:
        return {"header": self.header.to_wire(), "txs": [tx.raw for tx in self.txs]}

    def encode(self) -> bytes:
        return codec.encode(self.to_wire())

    @classmethod
    def from_wire(cls, value: Any, *, tx_bytes_max: int = DEFAULT_TX_BYTES_MAX) -> Block:
        _require_map(value, ("header", "txs"), "block")
        if type(value["txs"]) is not list:
            raise CodecError("block txs must be a list")
        txs = []
        for raw in value["txs"]:
            if type(raw) is not bytes:
                raise CodecError("each transaction in a block is bytes")
            txs.append(decode_transaction(raw, tx_bytes_max=tx_bytes_max))
        return cls(BlockHeader.from_wire(value["header"]), tuple(txs))

    @classmethod
    def decode(cls, data: bytes, *, tx_bytes_max: int = DEFAULT_TX_BYTES_MAX) -> Block:
        return cls.from_wire(codec.decode(data), tx_bytes_max=tx_bytes_max)


def compute_tx_root(txs: Sequence[SignedTx]) -> bytes:
    return merkle_root([tx.tx_id for tx in txs])


@dataclass(frozen=True, slots=True)
class TxResult:
    code: str  # RESULT_OK, or a chaincode failure code such as "insufficient_balance"
    message: str  # human-readable detail, empty on success
    events: tuple[dict[str, Any], ...] = ()  # chaincode events: {"type": str, ...attributes}

    @property
    def is_ok(self) -> bool:
        return self.code == RESULT_OK

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code, "events": list(self.events), "message": self.message}

    @classmethod
    def from_wire(cls, value: Any) -> TxResult:
        _require_map(value, ("code", "events", "message"), "transaction result")
        if (
            type(value["code"]) is not str
            or type(value["message"]) is not str
            or type(value["events"]) is not list
        ):
            raise CodecError("transaction result fields have wrong types")
        return cls(value["code"], value["message"], tuple(value["events"]))

    def to_hashed(self) -> dict[str, Any]:
        """What the results root commits to: the code and the events, not the message.

        The message explains a failure to people; it is not part of the chain's meaning, so it may be
        worded differently by another implementation (or a later version) without changing any root
        (CometBFT's results hash leaves out its `log` for the same reason).
        """
        return {"code": self.code, "events": list(self.events)}

    @property
    def result_hash(self) -> bytes:
        return hash_value(Domain.TX_RESULT, self.to_hashed())


def compute_results_root(results: Sequence[TxResult]) -> bytes:
    return merkle_root([result.result_hash for result in results])


# The keys of a result's maps, encoded (fixstr): the maps below are spliced from their parts.
_CODE_KEY, _EVENTS_KEY, _MESSAGE_KEY = codec.encode("code"), codec.encode("events"), codec.encode("message")
_MAP_OF_2, _MAP_OF_3 = b"\x82", b"\x83"  # msgpack fixmap headers
_OK_HEAD = _CODE_KEY + codec.encode(RESULT_OK) + _EVENTS_KEY  # most results succeed, with no message
_NO_MESSAGE = _MESSAGE_KEY + codec.encode("")


def encode_results_and_root(results: Sequence[TxResult]) -> tuple[list[bytes], bytes]:
    """The canonical encoding of each result's wire map (to_wire), and compute_results_root(results).

    What the root hashes (to_hashed) is the wire map without its last entry, the message: both are
    spliced from one encoding of the code and the events rather than encoding the events twice."""
    encodings: list[bytes] = []
    hashes: list[bytes] = []
    for result in results:
        code, message = result.code, result.message
        head = _OK_HEAD if code == RESULT_OK else _CODE_KEY + codec.encode(code) + _EVENTS_KEY
        hashed = head + codec.encode(result.events)  # a tuple encodes as a list
        encodings.append(
            _MAP_OF_3 + hashed + (_MESSAGE_KEY + codec.encode(message) if message else _NO_MESSAGE)
        )
        hashes.append(tagged_hash(Domain.TX_RESULT, _MAP_OF_2 + hashed))
    return encodings, merkle_root(hashes)


# --- commit certificates ----------------------------------------------------------------------------------


def compute_commit_digest(chain_id: str, view: int, height: int, block_hash: bytes) -> bytes:
    """What a validator signs when it sends COMMIT for a block (docs/PROTOCOL.md)."""
    return hash_value(
        Domain.COMMIT, {"block_hash": block_hash, "chain_id": chain_id, "height": height, "view": view}
    )


@dataclass(frozen=True, slots=True)
class CommitCertificate:
    """2f+1 COMMIT signatures over one block: proof of finality checkable with the genesis validator set."""

    view: int
    height: int
    block_hash: bytes
    votes: tuple[tuple[int, bytes], ...]  # (validator index, signature), strictly increasing index

    def to_wire(self) -> dict[str, Any]:
        return {
            "block_hash": self.block_hash,
            "height": self.height,
            "view": self.view,
            "votes": [[index, signature] for index, signature in self.votes],
        }

    @classmethod
    def from_wire(cls, value: Any) -> CommitCertificate:
        _require_map(value, ("block_hash", "height", "view", "votes"), "commit certificate")
        _require_uint(value["view"], "view")
        _require_uint(value["height"], "height")
        _require_digest(value["block_hash"], "block_hash")
        if type(value["votes"]) is not list:
            raise CodecError("votes must be a list")
        votes = []
        for vote in value["votes"]:
            if (
                type(vote) is not list
                or len(vote) != 2
                or type(vote[0]) is not int
                or type(vote[1]) is not bytes
            ):
                raise CodecError("a vote is [validator index, signature]")
            votes.append((vote[0], vote[1]))
        return cls(value["view"], value["height"], value["block_hash"], tuple(votes))


class CertificateError(InvalidInput):
    """A commit certificate does not prove finality of the block it is presented with."""


def verify_commit_certificate(
    certificate: CommitCertificate, header: BlockHeader, validators: ValidatorSet
) -> None:
    """Raise CertificateError unless a quorum of `validators` (the set in force at the header's height)
    signed COMMIT for exactly this header, each once."""
    if certificate.height != header.height:
        raise CertificateError(f"certificate is for height {certificate.height}, block is {header.height}")
    if certificate.block_hash != header.block_hash:
        raise CertificateError(f"certificate is for another block at height {header.height}")
    indexes = [index for index, _ in certificate.votes]
    if indexes != sorted(set(indexes)):
        raise CertificateError("votes must come from distinct validators in increasing index order")
    if len(indexes) < validators.quorum:
        raise CertificateError(f"{len(indexes)} votes, a quorum needs {validators.quorum}")
    digest = compute_commit_digest(header.chain_id, certificate.view, header.height, header.block_hash)
    for index, signature in certificate.votes:
        if not validators.contains(index):
            raise CertificateError(f"vote from validator {index}, not a member of the set in force")
        if len(signature) != SIGNATURE_BYTES or not is_valid_signature(
            validators.key(index), digest, signature
        ):
            raise CertificateError(f"signature of validator {index} does not verify")


@dataclass(frozen=True, slots=True)
class CertifiedBlock:
    """A committed block as nodes serve and exchange it: the block, the commit certificate that makes it
    final, and the sender's results (docs/protocol/node.md). What a sync answer, the observers' block
    stream and `GET /v1/blocks/{h}?format=msgpack` carry, and what an auditor verifies."""

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


def encode_certified_block(block: CertifiedBlock) -> bytes:
    return codec.encode(block.to_wire())


def decode_certified_block(payload: bytes, *, tx_bytes_max: int = DEFAULT_TX_BYTES_MAX) -> CertifiedBlock:
    return CertifiedBlock.from_wire(codec.decode(payload), tx_bytes_max=tx_bytes_max)


def peek_certified_block_height(payload: bytes) -> int | None:
    """The height an encoded certified block claims, read from its header alone, or None if it cannot be
    read. A hint only (nothing is checked): it lets a receiver skip decoding a block it already has, and
    whatever it does not skip goes through decode_certified_block."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=len(payload), strict_map_key=True)
    unpacker.feed(payload)
    try:
        for _ in range(unpacker.read_map_header()):
            if unpacker.unpack() != "block":
                unpacker.skip()
                continue
            for _ in range(unpacker.read_map_header()):
                if unpacker.unpack() != "header":
                    unpacker.skip()
                    continue
                header = unpacker.unpack()
                height = header.get("height") if type(header) is dict else None
                return height if type(height) is int else None
            return None
    except (ValueError, TypeError, msgpack.UnpackException, msgpack.OutOfData):
        return None
    return None


# --- helpers ---------------------------------------------------------------------------------------------


def _require_map(value: Any, fields: Any, what: str) -> None:
    if type(value) is not dict or set(value) != set(fields):
        raise CodecError(f"{what} must be a map of exactly {sorted(fields)}")


def _require_uint(value: Any, name: str) -> None:
    if type(value) is not int or value < 0:
        raise CodecError(f"{name} must be a non-negative integer")


def _require_digest(value: Any, name: str) -> None:
    if type(value) is not bytes or len(value) != HASH_BYTES:
        raise CodecError(f"{name} must be {HASH_BYTES} bytes")


EMPTY_ROOT = merkle_root([])  # results_root of "no results", e.g. at genesis
