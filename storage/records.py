"""What the store hands back to callers, and how blocks with their results are laid out as records.

The record of a block is the canonical encoding of {"block": <Block.encode() bytes>, "results": [<canonical
encoding of each TxResult wire map>]} (results kept as their encodings: those are what the results root
hashes, so they are encoded once per commit); the certificate lives in its own record so that it can be attached or upgraded later without
rewriting the block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core import codec
from core.block import Block, CommitCertificate, TxResult
from core.errors import CodecError, InvalidInput
from storage.errors import StoreCorrupt


@dataclass(frozen=True, slots=True)
class StoredBlock:
    block: Block  # the block as agreed
    results: tuple[TxResult, ...]  # one result per transaction, in block order
    certificate: CommitCertificate | None  # 2f+1 COMMIT votes that finalised it, if we hold them
    state_root: bytes  # world-state root after executing this block
    results_root: bytes  # compute_results_root(results)


@dataclass(frozen=True, slots=True)
class TxLocation:
    height: int  # block that includes the transaction
    index: int  # position of the transaction in that block
    code: str  # its result code (RESULT_OK on success)


@dataclass(frozen=True, slots=True)
class KeyVersion:
    height: int  # block whose execution wrote this version (0 = genesis)
    tx_index: int | None  # position of the writing transaction in that block; None for genesis and the
    # block's end-of-block step (which runs after its transactions: chaincode.executor)
    tx_id: bytes | None  # id of the writing transaction; None for genesis and the end-of-block step
    value: bytes | None  # the value written; None = the key was deleted


@dataclass(frozen=True, slots=True)
class CommitOutcome:
    state_root: bytes  # world-state root after the block
    results_root: bytes  # merkle root of the block's result hashes


class ScanLimitError(InvalidInput):
    """A caller asked for more entries in one page than the store hands out."""


def encode_block_record(block_bytes: bytes, result_encodings: Sequence[bytes]) -> bytes:
    return codec.encode({"block": block_bytes, "results": list(result_encodings)})


def decode_block_record(raw: bytes, height: int) -> tuple[Block, tuple[TxResult, ...]]:
    try:
        value: Any = codec.decode(raw)
        if type(value) is not dict or sorted(value) != ["block", "results"]:
            raise CodecError("block record must be a map of block and results")
        if type(value["results"]) is not list:
            raise CodecError("results must be a list")
        block = Block.decode(value["block"])
        if not all(type(item) is bytes for item in value["results"]):
            raise CodecError("each result is its canonical encoding")
        results = tuple(TxResult.from_wire(codec.decode(item)) for item in value["results"])
    except InvalidInput as exc:
        raise StoreCorrupt(f"block record at height {height} cannot be decoded: {exc}") from None
    return block, results


def encode_certified_record(raw: bytes, raw_certificate: bytes, height: int) -> bytes:
    """encode_certified_block(CertifiedBlock(block, certificate, results)) of a stored block, byte for
    byte, spliced from the stored encodings: no transaction, result or certificate is decoded (a block
    range served to a peer is up to 200 of them)."""
    try:
        value: Any = codec.decode(raw)
        if type(value) is not dict or sorted(value) != ["block", "results"]:
            raise CodecError("block record must be a map of block and results")
        if type(value["results"]) is not list or not all(type(item) is bytes for item in value["results"]):
            raise CodecError("each result is its canonical encoding")
        if type(value["block"]) is not bytes:
            raise CodecError("the block is its canonical encoding")
    except InvalidInput as exc:
        raise StoreCorrupt(f"block record at height {height} cannot be decoded: {exc}") from None
    return codec.encode_map_of_encoded(
        [
            ("block", value["block"]),
            ("certificate", raw_certificate),
            ("results", codec.encode_list_of_encoded(value["results"])),
        ]
    )


def encode_certificate(certificate: CommitCertificate) -> bytes:
    return codec.encode(certificate.to_wire())


def decode_certificate(raw: bytes, height: int) -> CommitCertificate:
    try:
        return CommitCertificate.from_wire(codec.decode(raw))
    except (InvalidInput, TypeError) as exc:
        raise StoreCorrupt(f"certificate record at height {height} cannot be decoded: {exc}") from None
