"""The replica's durable consensus log: record keys, their canonical values, and loading them at restart.

The shell stores these records verbatim (key -> value bytes, value None = delete) in its consensus-log area
and hands all of them back to `Replica(...)` after a restart. They are what double-sign protection needs
(docs/RELIABILITY.md item 1): the view we are in, the last vote per height, the prepared certificates a
VIEW-CHANGE must report, and the last VIEW-CHANGE / NEW-VIEW for resending.

Keys (all under the version prefix b"c1/"):
    c1/view          {"changing": bool, "epoch": int, "view": int}   (records without "epoch": epoch 0)
    c1/vote/<h:8BE>  {"block_hash": bin32, "phase": "pre_prepare"|"prepare"|"commit", "view": int}
    c1/prep/<h:8BE>  {"block": Block wire, "view": int, "votes": [[index, sig], ...]}
    c1/checkpoint    {"block_hash": bin32, "height": int, "state_root": bin32}: last CHECKPOINT signed
    c1/view_change   encoded ViewChange message we last sent
    c1/new_view      encoded NewView message of the view we are in
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from consensus.events import LogRecord
from consensus.messages import NewView, PreparedCertificate, ViewChange, decode_message, encode_message
from core import codec
from core.block import Block
from core.errors import CodecError
from core.genesis import ConsensusParams

PREFIX = b"c1/"
KEY_VIEW = PREFIX + b"view"
KEY_LEGACY_STABLE = PREFIX + b"stable"  # written before the NEW-VIEW low mark became a delivered height
KEY_CHECKPOINT = PREFIX + b"checkpoint"
KEY_VIEW_CHANGE = PREFIX + b"view_change"
KEY_NEW_VIEW = PREFIX + b"new_view"
_VOTE = PREFIX + b"vote/"
_PREP = PREFIX + b"prep/"

PHASE_PRE_PREPARE = "pre_prepare"
PHASE_PREPARE = "prepare"
PHASE_COMMIT = "commit"
PHASE_RANK = {PHASE_PRE_PREPARE: 0, PHASE_PREPARE: 0, PHASE_COMMIT: 1}


@dataclass(frozen=True, slots=True)
class VoteRecord:
    view: int  # view of the last message we signed for this height
    phase: str  # PHASE_*: the furthest phase signed in that view
    block_hash: bytes  # the digest we signed; we never sign another one for (view, height)


@dataclass(frozen=True, slots=True)
class PreparedSlot:
    certificate: PreparedCertificate  # highest-view prepared certificate we hold for the height
    block: Block  # its full block, which a VIEW-CHANGE must carry


@dataclass(slots=True)
class PersistedState:
    """Everything the log says, decoded. Empty for a fresh node."""

    epoch: int = 0
    view: int = 0
    changing: bool = False
    votes: dict[int, VoteRecord] = field(default_factory=dict)
    prepared: dict[int, PreparedSlot] = field(default_factory=dict)
    checkpoint_height: int = 0
    view_change: ViewChange | None = None
    new_view: NewView | None = None


def height_key(prefix: bytes, height: int) -> bytes:
    return prefix + height.to_bytes(8, "big")


def record_view(epoch: int, view: int, changing: bool) -> LogRecord:
    return LogRecord(KEY_VIEW, codec.encode({"changing": changing, "epoch": epoch, "view": view}))


def record_vote(height: int, vote: VoteRecord) -> LogRecord:
    value = {"block_hash": vote.block_hash, "phase": vote.phase, "view": vote.view}
    return LogRecord(height_key(_VOTE, height), codec.encode(value))


def record_prepared(slot: PreparedSlot) -> LogRecord:
    cert = slot.certificate
    value = {
        "block": slot.block.to_wire(),
        "view": cert.view,
        "votes": [[index, signature] for index, signature in cert.votes],
    }
    return LogRecord(height_key(_PREP, cert.height), codec.encode(value))


def record_checkpoint(height: int, block_hash: bytes, state_root: bytes) -> LogRecord:
    value = {"block_hash": block_hash, "height": height, "state_root": state_root}
    return LogRecord(KEY_CHECKPOINT, codec.encode(value))


def record_view_change(message: ViewChange) -> LogRecord:
    return LogRecord(KEY_VIEW_CHANGE, encode_message(message))


def record_new_view(message: NewView) -> LogRecord:
    return LogRecord(KEY_NEW_VIEW, encode_message(message))


def delete_height_records(height: int) -> tuple[LogRecord, ...]:
    return (LogRecord(height_key(_VOTE, height), None), LogRecord(height_key(_PREP, height), None))


def load_persisted_state(log: Mapping[bytes, bytes], *, params: ConsensusParams) -> PersistedState:
    """Decode a log the shell read back; raises CodecError if a record is corrupt (the node must not start)."""
    state = PersistedState()
    for key in sorted(log):
        value = log[key]
        if key == KEY_VIEW:
            record = codec.decode(value)
            keys = (
                ("changing", "epoch", "view")
                if type(record) is dict and "epoch" in record
                else ("changing", "view")
            )
            record = _map(value, keys)
            state.view, state.changing = _uint(record["view"]), bool(record["changing"])
            state.epoch = _uint(record.get("epoch", 0))
        elif key.startswith(_VOTE):
            record = _map(value, ("block_hash", "phase", "view"))
            if record["phase"] not in PHASE_RANK:
                raise CodecError(f"unknown phase in {key!r}")
            height = int.from_bytes(key[len(_VOTE) :], "big")
            state.votes[height] = VoteRecord(_uint(record["view"]), record["phase"], record["block_hash"])
        elif key.startswith(_PREP):
            record = _map(value, ("block", "view", "votes"))
            block = Block.from_wire(record["block"], tx_bytes_max=params.tx_bytes_max)
            votes = tuple((int(index), bytes(sig)) for index, sig in record["votes"])
            cert = PreparedCertificate(_uint(record["view"]), block.header, votes)
            state.prepared[block.header.height] = PreparedSlot(cert, block)
        elif key == KEY_LEGACY_STABLE:
            continue  # no longer read: a VIEW-CHANGE now reports the last delivered block's certificate
        elif key == KEY_CHECKPOINT:
            state.checkpoint_height = _uint(_map(value, ("block_hash", "height", "state_root"))["height"])
        elif key in (KEY_VIEW_CHANGE, KEY_NEW_VIEW):
            message = decode_message(value, params=params)
            if isinstance(message, ViewChange):
                state.view_change = message
            elif isinstance(message, NewView):
                state.new_view = message
        else:
            raise CodecError(f"unknown consensus log key {key!r}")
    return state


def _map(value: bytes, keys: tuple[str, ...]) -> dict[str, Any]:
    record = codec.decode(value)
    if type(record) is not dict or tuple(sorted(record)) != keys:
        raise CodecError(f"consensus log record must be a map of {list(keys)}")
    return record


def _uint(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise CodecError("expected a non-negative integer in the consensus log")
    return int(value)
