"""PBFT wire messages: frozen dataclasses, their canonical encoding, strict decoding and signing digests.

Every message is a canonical msgpack map with a "kind" field and the fields of its dataclass (core.codec);
`decode_message` accepts exactly that shape, checks every type, length and count, bounds the total size by
the genesis consensus parameters, and raises CodecError otherwise. Signatures are Ed25519 over a 32-byte
digest `hash_value(Domain.<KIND>, {...})` that always includes the chain id, so a vote cannot be replayed
across chains, views, heights or message kinds. COMMIT signs exactly core.block.compute_commit_digest, so
COMMIT signatures assemble into a core.block.CommitCertificate. The vote digests are core.votes' (the
chaincode checks evidence with them too); docs/protocol/consensus.md has the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core import codec
from core.block import Block, BlockHeader, CommitCertificate
from core.errors import CodecError, TransactionError
from core.genesis import ConsensusParams
from core.hashing import HASH_BYTES, Domain, hash_value
from core.keys import SIGNATURE_BYTES
from core.validators import NUMBER_MAX
from core.votes import (
    compute_checkpoint_digest,
    compute_commit_digest,
    compute_pre_prepare_digest,
    compute_prepare_digest,
)

Vote = tuple[int, bytes]  # (validator index, signature)

_ENVELOPE_BYTES = 64 * 1024  # room for headers, certificates and field names around the blocks


@dataclass(frozen=True, slots=True)
class PrePrepare:
    """A proposal by header and transaction ids: validators already hold the transactions (gossip), and
    fetch the ones they lack (FetchTxs). merkle_root(tx_ids) must be header.tx_root."""

    view: int  # the view the primary proposes in
    height: int  # the sequence number, equal to the block height
    header: BlockHeader  # the proposed block's header
    tx_ids: tuple[bytes, ...]  # its transaction ids, in block order
    sender: int  # validator index of the primary of `view`
    signature: bytes  # over compute_pre_prepare_digest(chain_id, view, height, block_hash)
    block_hash: bytes = field(init=False, repr=False, compare=False)  # the header's hash

    def __post_init__(self) -> None:
        object.__setattr__(self, "block_hash", self.header.block_hash)

    @classmethod
    def of_block(cls, view: int, block: Block, sender: int, signature: bytes = b"") -> PrePrepare:
        return cls(
            view, block.header.height, block.header, tuple(tx.tx_id for tx in block.txs), sender, signature
        )


@dataclass(frozen=True, slots=True)
class Prepare:
    view: int  # view of the pre-prepare being accepted
    height: int  # its sequence number / block height
    block_hash: bytes  # hash of the pre-prepared block header
    sender: int  # validator index of the voter
    signature: bytes  # over compute_prepare_digest(chain_id, view, height, block_hash)


@dataclass(frozen=True, slots=True)
class Commit:
    view: int  # view in which the block was prepared
    height: int  # block height
    block_hash: bytes  # hash of the prepared block header
    sender: int  # validator index of the voter
    signature: bytes  # over core.block.compute_commit_digest(chain_id, view, height, block_hash)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    height: int  # a multiple of checkpoint_interval
    block_hash: bytes  # hash of the block at that height
    state_root: bytes  # the sender's world-state root after executing it
    sender: int  # validator index
    signature: bytes  # over compute_checkpoint_digest(...)


@dataclass(frozen=True, slots=True)
class PreparedCertificate:
    """Proof that 2f+1 validators accepted `header` at (view, height): the primary's PRE-PREPARE signature
    plus PREPARE signatures of the others (the vote of the view's primary index is a PRE-PREPARE one)."""

    view: int  # the view in which it was prepared
    header: BlockHeader  # the prepared block's header (its hash is the prepared digest; it names prev_hash)
    votes: tuple[Vote, ...]  # strictly increasing validator indexes, at least a quorum

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def block_hash(self) -> bytes:
        return self.header.block_hash


@dataclass(frozen=True, slots=True)
class ViewChange:
    view: int  # the view the sender wants to move to
    sender: int  # validator index
    stable: CommitCertificate | None  # certificate of the sender's last delivered block (None: genesis)
    prepared: tuple[PreparedCertificate, ...]  # highest-view prepared certificate per height above stable
    signature: bytes  # over compute_view_change_digest (covers everything except `blocks`)
    blocks: tuple[
        Block, ...
    ] = ()  # the full blocks of `prepared`, unsigned (checked by hash); stripped in NEW-VIEW
    epoch: int = 0  # the validator-set epoch whose view is changed (views count from 0 in every epoch)


@dataclass(frozen=True, slots=True)
class NewView:
    view: int  # the view being started
    sender: int  # its primary
    view_changes: tuple[
        ViewChange, ...
    ]  # 2f+1 VIEW-CHANGEs for `view` from distinct senders, blocks stripped
    pre_prepares: tuple[PrePrepare, ...]  # the re-proposals the view changes imply, in height order
    signature: bytes  # over compute_new_view_digest
    epoch: int = 0  # the validator-set epoch of `view`


Message = PrePrepare | Prepare | Commit | Checkpoint | ViewChange | NewView


# --- signing digests --------------------------------------------------------------------------------------


def compute_view_change_digest(chain_id: str, message: ViewChange) -> bytes:
    return hash_value(Domain.VIEW_CHANGE, {"chain_id": chain_id, **_view_change_signed_fields(message)})


def compute_new_view_digest(chain_id: str, message: NewView) -> bytes:
    fields = {
        "chain_id": chain_id,
        "epoch": message.epoch,
        "pre_prepares": [
            {"block_hash": pp.block_hash, "height": pp.height, "signature": pp.signature}
            for pp in message.pre_prepares
        ],
        "sender": message.sender,
        "view": message.view,
        "view_changes": [_view_change_to_wire(vc, with_blocks=False) for vc in message.view_changes],
    }
    return hash_value(Domain.NEW_VIEW, fields)


def compute_signing_digest(chain_id: str, message: Message) -> bytes:
    """The 32 bytes the sender of `message` signed."""
    if isinstance(message, PrePrepare):
        return compute_pre_prepare_digest(chain_id, message.view, message.height, message.block_hash)
    if isinstance(message, Prepare):
        return compute_prepare_digest(chain_id, message.view, message.height, message.block_hash)
    if isinstance(message, Commit):
        return compute_commit_digest(chain_id, message.view, message.height, message.block_hash)
    if isinstance(message, Checkpoint):
        return compute_checkpoint_digest(chain_id, message.height, message.block_hash, message.state_root)
    if isinstance(message, ViewChange):
        return compute_view_change_digest(chain_id, message)
    return compute_new_view_digest(chain_id, message)


# --- encoding ---------------------------------------------------------------------------------------------


def message_to_wire(message: Message) -> dict[str, Any]:
    if isinstance(message, PrePrepare):
        return {
            "header": message.header.to_wire(),
            "height": message.height,
            "kind": "pre_prepare",
            "sender": message.sender,
            "signature": message.signature,
            "tx_ids": list(message.tx_ids),
            "view": message.view,
        }
    if isinstance(message, Prepare | Commit):
        return {
            "block_hash": message.block_hash,
            "height": message.height,
            "kind": "prepare" if isinstance(message, Prepare) else "commit",
            "sender": message.sender,
            "signature": message.signature,
            "view": message.view,
        }
    if isinstance(message, Checkpoint):
        return {
            "block_hash": message.block_hash,
            "height": message.height,
            "kind": "checkpoint",
            "sender": message.sender,
            "signature": message.signature,
            "state_root": message.state_root,
        }
    if isinstance(message, ViewChange):
        return {"kind": "view_change", **_view_change_to_wire(message, with_blocks=True)}
    return {
        "epoch": message.epoch,
        "kind": "new_view",
        "pre_prepares": [message_to_wire(pp) for pp in message.pre_prepares],
        "sender": message.sender,
        "signature": message.signature,
        "view": message.view,
        "view_changes": [_view_change_to_wire(vc, with_blocks=False) for vc in message.view_changes],
    }


def encode_message(message: Message) -> bytes:
    return codec.encode(message_to_wire(message))


def prepared_certificate_to_wire(cert: PreparedCertificate) -> dict[str, Any]:
    return {
        "header": cert.header.to_wire(),
        "view": cert.view,
        "votes": [[index, signature] for index, signature in cert.votes],
    }


def _view_change_signed_fields(message: ViewChange) -> dict[str, Any]:
    return {
        "epoch": message.epoch,
        "prepared": [prepared_certificate_to_wire(cert) for cert in message.prepared],
        "sender": message.sender,
        "stable": None if message.stable is None else message.stable.to_wire(),
        "view": message.view,
    }


def _view_change_to_wire(message: ViewChange, *, with_blocks: bool) -> dict[str, Any]:
    wire = _view_change_signed_fields(message)
    wire["signature"] = message.signature
    if with_blocks:
        wire["blocks"] = [block.to_wire() for block in message.blocks]
    return wire


# --- strict decoding --------------------------------------------------------------------------------------


def compute_message_bytes_max(params: ConsensusParams) -> int:
    """The largest encoded message: a VIEW-CHANGE or NEW-VIEW carrying pipeline_depth full blocks."""
    return params.pipeline_depth * (params.block_bytes_max + _ENVELOPE_BYTES) + _ENVELOPE_BYTES


def decode_message(data: bytes, *, params: ConsensusParams, validator_count: int = NUMBER_MAX + 1) -> Message:
    """Decode one peer message strictly; raises CodecError (an InvalidInput) for anything malformed."""
    value = codec.decode(
        data,
        max_bytes=compute_message_bytes_max(params),
        max_container_len=max(params.block_txs_max, 4 * validator_count + 16),
    )
    return message_from_wire(value, params=params, validator_count=validator_count)


def message_from_wire(
    value: Any, *, params: ConsensusParams, validator_count: int = NUMBER_MAX + 1
) -> Message:
    reader = _Reader(params, validator_count)
    if type(value) is not dict or type(value.get("kind")) is not str:
        raise CodecError("a consensus message is a map with a string 'kind'")
    kind = value["kind"]
    if kind == "pre_prepare":
        return reader.pre_prepare(value, with_kind=True)
    if kind in ("prepare", "commit"):
        _require_keys(value, ("block_hash", "height", "kind", "sender", "signature", "view"), kind)
        cls = Prepare if kind == "prepare" else Commit
        return cls(
            view=reader.uint(value["view"], "view"),
            height=reader.uint(value["height"], "height"),
            block_hash=reader.digest(value["block_hash"], "block_hash"),
            sender=reader.index(value["sender"]),
            signature=reader.signature(value["signature"]),
        )
    if kind == "checkpoint":
        _require_keys(value, ("block_hash", "height", "kind", "sender", "signature", "state_root"), kind)
        return Checkpoint(
            height=reader.uint(value["height"], "height"),
            block_hash=reader.digest(value["block_hash"], "block_hash"),
            state_root=reader.digest(value["state_root"], "state_root"),
            sender=reader.index(value["sender"]),
            signature=reader.signature(value["signature"]),
        )
    if kind == "view_change":
        return reader.view_change(value, with_blocks=True)
    if kind == "new_view":
        _require_keys(
            value, ("epoch", "kind", "pre_prepares", "sender", "signature", "view", "view_changes"), kind
        )
        view_changes = reader.bounded_list(value["view_changes"], validator_count, "view_changes")
        pre_prepares = reader.bounded_list(value["pre_prepares"], params.pipeline_depth, "pre_prepares")
        return NewView(
            view=reader.uint(value["view"], "view"),
            sender=reader.index(value["sender"]),
            view_changes=tuple(reader.view_change(vc, with_blocks=False) for vc in view_changes),
            pre_prepares=tuple(reader.pre_prepare(pp, with_kind=True) for pp in pre_prepares),
            signature=reader.signature(value["signature"]),
            epoch=reader.uint(value["epoch"], "epoch"),
        )
    raise CodecError(f"unknown consensus message kind {kind!r}")


class _Reader:
    """Field checks with the limits of one chain."""

    def __init__(self, params: ConsensusParams, validator_count: int) -> None:
        self.params = params
        self.validator_count = validator_count

    def uint(self, value: Any, name: str) -> int:
        if type(value) is not int or not 0 <= value < 2**63:
            raise CodecError(f"{name} must be a non-negative 63-bit integer")
        return int(value)

    def index(self, value: Any) -> int:
        if type(value) is not int or not 0 <= value < self.validator_count:
            raise CodecError(f"sender must be a validator index below {self.validator_count}")
        return int(value)

    def digest(self, value: Any, name: str) -> bytes:
        if type(value) is not bytes or len(value) != HASH_BYTES:
            raise CodecError(f"{name} must be {HASH_BYTES} bytes")
        return bytes(value)

    def signature(self, value: Any) -> bytes:
        if type(value) is not bytes or len(value) != SIGNATURE_BYTES:
            raise CodecError(f"signature must be {SIGNATURE_BYTES} bytes")
        return bytes(value)

    def bounded_list(self, value: Any, limit: int, name: str) -> list[Any]:
        if type(value) is not list or len(value) > limit:
            raise CodecError(f"{name} must be a list of at most {limit} items")
        return value

    def votes(self, value: Any) -> tuple[Vote, ...]:
        items = self.bounded_list(value, self.validator_count, "votes")
        votes: list[Vote] = []
        for item in items:
            if type(item) is not list or len(item) != 2:
                raise CodecError("a vote is [validator index, signature]")
            votes.append((self.index(item[0]), self.signature(item[1])))
        indexes = [index for index, _ in votes]
        if indexes != sorted(set(indexes)):
            raise CodecError("votes must have strictly increasing validator indexes")
        return tuple(votes)

    def block(self, value: Any) -> Block:
        try:
            block = Block.from_wire(value, tx_bytes_max=self.params.tx_bytes_max)
        except TransactionError as exc:
            raise CodecError(f"block transaction: {exc}") from None
        except TypeError as exc:
            raise CodecError(f"malformed block: {exc}") from None
        if len(block.txs) > self.params.block_txs_max:
            raise CodecError(
                f"block has {len(block.txs)} transactions, the limit is {self.params.block_txs_max}"
            )
        return block

    def header(self, value: Any) -> BlockHeader:
        try:
            return BlockHeader.from_wire(value)
        except TypeError as exc:
            raise CodecError(f"malformed block header: {exc}") from None

    def pre_prepare(self, value: Any, *, with_kind: bool) -> PrePrepare:
        keys = ("header", "height", "kind", "sender", "signature", "tx_ids", "view")
        _require_keys(value, keys, "pre_prepare")
        if value["kind"] != "pre_prepare":
            raise CodecError("expected a pre_prepare")
        tx_ids = self.bounded_list(value["tx_ids"], self.params.block_txs_max, "tx_ids")
        return PrePrepare(
            view=self.uint(value["view"], "view"),
            height=self.uint(value["height"], "height"),
            header=self.header(value["header"]),
            tx_ids=tuple(self.digest(tx_id, "tx_id") for tx_id in tx_ids),
            sender=self.index(value["sender"]),
            signature=self.signature(value["signature"]),
        )

    def commit_certificate(self, value: Any) -> CommitCertificate:
        try:
            cert = CommitCertificate.from_wire(value)
        except TypeError as exc:
            raise CodecError(f"malformed commit certificate: {exc}") from None
        self.votes([[index, signature] for index, signature in cert.votes])
        return cert

    def prepared_certificate(self, value: Any) -> PreparedCertificate:
        _require_keys(value, ("header", "view", "votes"), "prepared certificate")
        return PreparedCertificate(
            view=self.uint(value["view"], "view"),
            header=self.header(value["header"]),
            votes=self.votes(value["votes"]),
        )

    def view_change(self, value: Any, *, with_blocks: bool) -> ViewChange:
        keys = ["epoch", "prepared", "sender", "signature", "stable", "view"]
        if with_blocks:
            keys += ["blocks", "kind"]
        _require_keys(value, keys, "view_change")
        if with_blocks and value["kind"] != "view_change":
            raise CodecError("expected a view_change")
        prepared_items = self.bounded_list(value["prepared"], self.params.pipeline_depth, "prepared")
        prepared = tuple(self.prepared_certificate(item) for item in prepared_items)
        heights = [cert.height for cert in prepared]
        if heights != sorted(set(heights)):
            raise CodecError("prepared certificates must have strictly increasing heights")
        blocks: tuple[Block, ...] = ()
        if with_blocks:
            block_items = self.bounded_list(value["blocks"], self.params.pipeline_depth, "blocks")
            blocks = tuple(self.block(item) for item in block_items)
            if [b.block_hash for b in blocks] != [cert.block_hash for cert in prepared]:
                raise CodecError("view_change blocks must be exactly the prepared blocks, in order")
        stable = None if value["stable"] is None else self.commit_certificate(value["stable"])
        return ViewChange(
            view=self.uint(value["view"], "view"),
            sender=self.index(value["sender"]),
            stable=stable,
            prepared=prepared,
            signature=self.signature(value["signature"]),
            blocks=blocks,
            epoch=self.uint(value["epoch"], "epoch"),
        )


def _require_keys(value: Any, keys: Any, what: str) -> None:
    if type(value) is not dict or set(value) != set(keys):
        raise CodecError(f"{what} must be a map of exactly {sorted(keys)}")
