"""State overlays and the transaction context a chaincode function runs in.

`OverlayState` buffers writes over a parent StateReader: a block overlay over the committed state, and a
per-transaction overlay over the block overlay. Reads fall through; iteration merges the overlay's own keys
with the parent's in ascending key order (deletes hide parent entries), so enumeration is deterministic and
sees earlier transactions of the same block. A failed transaction's overlay is simply dropped.

`TxContext` is the only handle a chaincode gets: typed record access (canonical msgpack dicts), prefix
iteration, the sender's identity, the block's height and agreed time, and `emit` for events.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any

import msgpack

from core import codec
from core.errors import CodecError, InvariantBroken
from core.state import StateReader


class OverlayState:
    """Writes buffered over a parent reader; itself a StateReader.

    `parent_fixed` promises that the parent does not change while this overlay lives (a block's overlay
    over the committed state). Iteration then remembers, per prefix, a key up to which every parent entry
    under the prefix is one of ours (`_covered`): the merge skips those entries anyway, so later seeks
    start the parent after it. Matching seeks the best order once per match, and the orders a block
    filled are deleted entries at the front of the book: without this, each seek stepped over all of
    them again (quadratic in the block's trades). Writes never leave `writes`, so a covered key stays
    covered.
    """

    __slots__ = ("_covered", "_sorted_keys", "parent", "writes")

    def __init__(self, parent: StateReader, *, parent_fixed: bool = False) -> None:
        self.parent = parent
        self.writes: dict[bytes, bytes | None] = {}  # key -> new value, None = deleted
        self._sorted_keys: list[bytes] = []  # keys of `writes` not deleted, ascending, for merged iteration
        self._covered: dict[bytes, bytes] | None = {} if parent_fixed else None

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self.parent.get(key)

    def put(self, key: bytes, value: bytes | None) -> None:
        # Only live keys are kept sorted: iteration yields none of the deleted ones (the parent's entry of
        # a deleted key is hidden by `writes`), and a block deletes the orders it fills.
        was_live = self.writes.get(key) is not None
        if value is None:
            if was_live:
                del self._sorted_keys[bisect.bisect_left(self._sorted_keys, key)]
        elif not was_live:
            bisect.insort(self._sorted_keys, key)
        self.writes[key] = value

    def update(self, writes: dict[bytes, bytes | None]) -> None:
        for key, value in writes.items():
            self.put(key, value)

    def iterate(self, prefix: bytes, *, start_after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        if not self.writes:  # nothing of ours at all: the parent's entries are the answer
            yield from self.parent.iterate(prefix, start_after=start_after)
            return
        keys = self._sorted_keys
        low = bisect.bisect_left(keys, prefix)
        if start_after is not None:
            low = max(low, bisect.bisect_right(keys, start_after))
        # Our keys under the prefix are those below its successor: one slice, not a loop over each of them
        # (matching takes only the first entry of each seek, over a block's worth of book keys of ours).
        end = _prefix_successor(prefix)
        own = keys[low : len(keys) if end is None else bisect.bisect_left(keys, end, low)]
        covered = None if self._covered is None else self._covered.get(prefix)
        if covered is not None and (start_after is None or start_after < covered):
            start_after = covered  # the parent's entries up to it are all ours: skipped below anyway
        learning = self._covered is not None and start_after == covered
        yield from self._merge(own, self.parent.iterate(prefix, start_after=start_after), prefix, learning)

    def _merge(
        self, own: list[bytes], inherited: Iterator[tuple[bytes, bytes]], prefix: bytes, learning: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        """Our live keys `own` merged with the parent's entries, less those we wrote or deleted.
        `learning`: the parent's entries come from the start of the prefix or from its covered key, so
        while each is one of ours, the covered key moves up to it."""
        position = 0
        writes, covered = self.writes, self._covered
        for key, value in inherited:
            while position < len(own) and own[position] < key:
                mine = writes[own[position]]
                if mine is not None:
                    yield own[position], mine
                position += 1
            if key in writes:
                if learning and covered is not None:
                    covered[prefix] = key
                continue  # overridden or deleted here; emitted (or not) from `own`
            learning = False
            yield key, value
        while position < len(own):
            mine = writes[own[position]]
            if mine is not None:
                yield own[position], mine
            position += 1


def _prefix_successor(prefix: bytes) -> bytes | None:
    """The least byte string above every string that starts with `prefix`; None if there is none."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))


class ReadCache:
    """A StateReader over another that remembers what `get` answered, absent keys included.

    For the committed state under one block's execution: it does not change until the block is committed,
    while every transaction reads the same few records again (its sender's key and organisation, the
    parameters, the four-eyes thresholds), each a LevelDB read. Iteration is not cached.
    """

    __slots__ = ("_parent", "_values")

    def __init__(self, parent: StateReader) -> None:
        self._parent = parent
        self._values: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        values = self._values
        if key in values:
            return values[key]
        value = values[key] = self._parent.get(key)
        return value

    def iterate(self, prefix: bytes, *, start_after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        return self._parent.iterate(prefix, start_after=start_after)


class TxContext:
    """What a chaincode function sees: state, sender, block facts, and an event sink."""

    __slots__ = (
        "block_time_ms",
        "chain_id",
        "events",
        "height",
        "sender_is_admin",
        "sender_key",
        "sender_org",
        "sender_role",
        "state",
        "tx_id",
    )

    def __init__(
        self,
        state: OverlayState,
        *,
        sender_org: str,
        sender_role: str,
        sender_key: bytes,
        sender_is_admin: bool,
        height: int,
        block_time_ms: int,
        tx_id: bytes,
        chain_id: str = "",
    ) -> None:
        self.state = state  # the transaction's own overlay
        self.sender_org = sender_org  # organisation that signed
        self.sender_role = sender_role  # that organisation's role (core.genesis.Role value)
        self.sender_key = sender_key  # the signing public key
        self.sender_is_admin = sender_is_admin  # whether that key is an admin key of sender_org
        self.height = height  # height of the block being executed
        self.block_time_ms = block_time_ms  # agreed block time (never the wall clock)
        self.tx_id = tx_id  # id of the transaction being applied
        self.chain_id = chain_id  # the block's chain id (signing digests of evidence and key proofs)
        self.events: list[dict[str, Any]] = []

    def fork(self) -> TxContext:
        """A context over an overlay of this one's state, with no events yet: run something in it, then
        `absorb` it to keep its writes and events, or drop it to discard them (a failed step inside a
        transaction that itself goes on)."""
        return TxContext(
            OverlayState(self.state),
            sender_org=self.sender_org,
            sender_role=self.sender_role,
            sender_key=self.sender_key,
            sender_is_admin=self.sender_is_admin,
            height=self.height,
            block_time_ms=self.block_time_ms,
            tx_id=self.tx_id,
            chain_id=self.chain_id,
        )

    def absorb(self, child: TxContext) -> None:
        """Keep what a forked context wrote and emitted."""
        self.state.update(child.state.writes)
        self.events.extend(child.events)

    # --- raw bytes ---------------------------------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        return self.state.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.state.put(key, value)

    def delete(self, key: bytes) -> None:
        self.state.put(key, None)

    def iterate(self, prefix: bytes, *, start_after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        return self.state.iterate(prefix, start_after=start_after)

    # --- records (canonical msgpack maps) ----------------------------------------------------------------

    def get_record(self, key: bytes) -> dict[str, Any] | None:
        raw = self.state.get(key)
        return None if raw is None else decode_record(raw)

    def put_record(self, key: bytes, record: dict[str, Any]) -> None:
        self.state.put(key, encode_record(record))

    def iterate_records(
        self, prefix: bytes, *, start_after: bytes | None = None
    ) -> Iterator[tuple[bytes, dict[str, Any]]]:
        for key, raw in self.state.iterate(prefix, start_after=start_after):
            yield key, decode_record(raw)

    def emit(self, event_type: str, **attrs: Any) -> None:
        """Record an event; it reaches the TxResult only if the transaction succeeds. Its keys are put in
        canonical (sorted) order now, once: the results root encodes every event, and codec.encode packs a
        sorted map as it is but rebuilds any other."""
        attrs["type"] = event_type
        self.events.append(dict(sorted(attrs.items())))


def decode_record(raw: bytes) -> dict[str, Any]:
    """Decode a state value written by this chaincode; anything else is corruption (our bug). Every call
    returns a dict of its own, which the caller may change.

    State bytes were produced by `encode_record` and are committed by the state root, so this skips
    core.codec's canonical re-encoding check (it doubled the cost of every transfer); tests check that every
    state value is canonical with core.codec.decode.

    Flat records (no list or map inside: organisations, keys, balances, the parameters) are remembered by
    their bytes in `_flat_records`, and the same bytes again are answered with a copy: each transaction
    reads its sender's key and organisation and its recipient's organisation again. What is answered
    depends on the bytes alone, never on what was decoded before.
    """
    known = _flat_records.get(raw)
    if known is not None:
        return dict(known)  # every value is a scalar: a shallow copy is a full one
    try:
        value = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except (ValueError, msgpack.UnpackException) as exc:
        raise InvariantBroken(f"state value is not msgpack: {exc}") from None
    if type(value) is not dict:
        raise InvariantBroken(f"state value is a {type(value).__name__}, expected a map")
    for item in value.values():
        kind = type(item)
        if kind is dict or kind is list:
            return value
    if len(_flat_records) >= FLAT_RECORDS_MAX:
        _flat_records.clear()  # bounded; forgetting changes no answer
    _flat_records[raw] = value
    return dict(value)


FLAT_RECORDS_MAX = 4096
_flat_records: dict[bytes, dict[str, Any]] = {}  # bytes -> decoded flat record, never handed out itself


def encode_record(record: dict[str, Any]) -> bytes:
    """The canonical encoding (core.codec.encode) of a record built by chaincode code.

    Chaincode records hold only str-keyed maps, lists, str, int, bool and None. Most are records read,
    changed in place and written back, so their keys are in order already and codec.encode packs them as
    they are; anything else it sorts. A value that cannot be encoded (a float) is a chaincode bug.
    """
    try:
        return codec.encode(record)
    except CodecError as exc:
        raise InvariantBroken(f"a chaincode record cannot be encoded: {exc}") from None
