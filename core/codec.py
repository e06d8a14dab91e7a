"""Canonical msgpack: the only byte encoding that is ever hashed or signed.

Allowed values: int (-2**63 .. 2**64-1), bytes, str, bool, None, list (tuples encode as lists) and dict with
str keys. No floats, no ext types. The canonical form is msgpack with the smallest representation of every
integer and length, and map keys sorted by their UTF-8 bytes (which is Python's str order) without duplicates.
Because that form is unique, `decode` checks it by re-encoding and comparing bytes; any other encoding of the
same value is rejected. docs/PROTOCOL.md gives the exact bytes.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from typing import Any

import msgpack

from core.errors import CodecError

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_CONTAINER_LEN = 200_000
MAX_DEPTH = 32
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1

# strict_types stays off so tuples pack as arrays: the checks above admit exact types only anyway
_packer_options: dict[str, Any] = {"use_bin_type": True, "datetime": False}
# One msgpack Packer per thread, reused: msgpack.packb builds a Packer (and its 256 KiB buffer) per call,
# which cost more than packing a small value. A Packer is not safe to share between threads.
_thread_state = threading.local()


def _get_packer() -> msgpack.Packer:
    packer: msgpack.Packer | None = getattr(_thread_state, "packer", None)
    if packer is None:
        packer = _thread_state.packer = msgpack.Packer(**_packer_options)
    return packer


def encode(value: Any) -> bytes:
    """Encode a value canonically; raises CodecError for anything outside the allowed types."""
    # msgpack already writes the shortest form of every int and length; what it does not do is sort map
    # keys or refuse floats. Values built by our own to_wire functions have their keys in order, so a
    # check that builds nothing is enough for them; only a value with an unsorted map is rebuilt.
    if not _is_canonical(value, 0):
        value = _canonical(value, 0)
    packed: bytes = _get_packer().pack(value)
    return packed


def encode_map_of_encoded(entries: Sequence[tuple[str, bytes]]) -> bytes:
    """The canonical encoding of a map whose values come already canonically encoded, without decoding
    them: in msgpack a container's header counts items, not bytes, so a map is its header followed by
    each key's encoding and its value's. Keys must be given in canonical (sorted, unique) order."""
    for (key, _), (following, _) in itertools.pairwise(entries):
        if not key < following:
            raise CodecError(f"map keys must be sorted and unique: {following!r} after {key!r}")
    parts = [_get_packer().pack_map_header(len(entries))]
    for key, encoded in entries:
        parts.append(encode(key))
        parts.append(encoded)
    return b"".join(parts)


def encode_list_of_encoded(items: Sequence[bytes]) -> bytes:
    """The canonical encoding of a list whose items come already canonically encoded (as above)."""
    if len(items) > MAX_CONTAINER_LEN:
        raise CodecError(f"list of {len(items)} items exceeds the limit of {MAX_CONTAINER_LEN}")
    return _get_packer().pack_array_header(len(items)) + b"".join(items)


def decode(
    data: bytes,
    *,
    max_bytes: int = MAX_MESSAGE_BYTES,
    max_container_len: int = MAX_CONTAINER_LEN,
) -> Any:
    """Decode canonical bytes strictly: wrong types, trailing bytes, oversize and non-canonical forms fail."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise CodecError(f"input of {len(data)} bytes exceeds the limit of {max_bytes}")
    if len(data) == 0:
        raise CodecError("empty input")
    value = _unpack(data, max_bytes, max_container_len, strict_maps=False)
    try:
        canonical = encode(value) == data
    except CodecError:
        _unpack(data, max_bytes, max_container_len, strict_maps=True)  # a map key that is not a string
        raise
    if not canonical:
        _unpack(data, max_bytes, max_container_len, strict_maps=True)  # unsorted or repeated map keys
        raise CodecError("not the canonical encoding (shortest forms and sorted keys are required)")
    return value


def _unpack(data: bytes, max_bytes: int, max_container_len: int, *, strict_maps: bool) -> Any:
    """msgpack's decoding under our limits. Map keys are checked one by one (`_map_from_pairs`, a Python
    call per map) only with strict_maps: valid input never needs it, since re-encoding the value catches
    every key problem; `decode` then runs it to name the problem."""
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            object_pairs_hook=_map_from_pairs if strict_maps else None,
            ext_hook=_reject_ext,
            max_str_len=max_bytes,
            max_bin_len=max_bytes,
            max_array_len=max_container_len,
            max_map_len=max_container_len,
            timestamp=0,
        )
    except CodecError:
        raise
    except msgpack.ExtraData as exc:
        raise CodecError(f"trailing bytes after the value ({len(exc.extra)} bytes)") from None
    except (ValueError, msgpack.UnpackException, RecursionError) as exc:
        raise CodecError(f"malformed msgpack: {str(exc) or type(exc).__name__}") from None


def _reject_ext(code: int, data: bytes) -> Any:
    raise CodecError(f"ext type {code} is not allowed")


def _map_from_pairs(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    previous: str | None = None
    for key, value in pairs:
        if type(key) is not str:
            raise CodecError(f"map key must be a string, got {type(key).__name__}")
        if previous is not None and key <= previous:
            raise CodecError(f"map keys must be sorted and unique: {key!r} after {previous!r}")
        result[key] = value
        previous = key
    return result


def _is_canonical(value: Any, depth: int) -> bool:
    """Whether `value` may be packed as it is: allowed types only, every map's keys sorted and unique.
    False sends it through `_canonical`, which sorts what it can and raises for what is not allowed.
    (The leaf checks are written out in both loops: a call per item would cost more than the check.)"""
    kind = type(value)
    if depth >= MAX_DEPTH:
        return False  # near the nesting limit `_canonical` decides (its items would be too deep)
    if kind is dict:
        if len(value) > MAX_CONTAINER_LEN:
            return False
        previous = ""
        for key, item in value.items():
            if type(key) is not str or (key <= previous and previous):
                return False
            previous = key
            kind = type(item)
            if kind is bytes or kind is bool or item is None:
                continue
            if kind is int:
                if INT_MIN <= item <= INT_MAX:
                    continue
                return False
            if kind is str:
                if item.isascii():
                    continue
                return False  # `_canonical` checks that it is encodable
            if (kind is dict or kind is list or kind is tuple) and _is_canonical(item, depth + 1):
                continue
            return False
        return True
    if kind is list or kind is tuple:
        if len(value) > MAX_CONTAINER_LEN:
            return False
        for item in value:
            kind = type(item)
            if kind is bytes or kind is bool or item is None:
                continue
            if kind is int:
                if INT_MIN <= item <= INT_MAX:
                    continue
                return False
            if kind is str:
                if item.isascii():
                    continue
                return False
            if (kind is dict or kind is list or kind is tuple) and _is_canonical(item, depth + 1):
                continue
            return False
        return True
    return (
        kind is bytes
        or kind is bool
        or value is None
        or (kind is int and INT_MIN <= value <= INT_MAX)
        or (kind is str and value.isascii())
    )


def _canonical(value: Any, depth: int) -> Any:
    """Check a value against the allowed types and return it with every map in sorted key order."""
    if depth > MAX_DEPTH:
        raise CodecError(f"nesting deeper than {MAX_DEPTH}")
    kind = type(value)
    if kind is str:
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise CodecError("string is not valid Unicode (lone surrogate)") from None
        return value
    if kind is bytes or kind is bool or value is None:
        return value
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise CodecError(f"integer {value} is outside [-2**63, 2**64-1]")
        return value
    # The scalars that pack as they are are passed through inline, as in `_is_canonical`: a call per
    # item would cost more than the check (event maps, rebuilt for their key order, are all scalars).
    # At the nesting limit every item goes through the call, which refuses it.
    inline = depth < MAX_DEPTH
    if kind is list or kind is tuple:
        if len(value) > MAX_CONTAINER_LEN:
            raise CodecError(f"list of {len(value)} items exceeds the limit of {MAX_CONTAINER_LEN}")
        items = []
        for item in value:
            kind = type(item)
            if inline and (
                kind is bytes
                or kind is bool
                or item is None
                or (kind is int and INT_MIN <= item <= INT_MAX)
                or (kind is str and item.isascii())
            ):
                items.append(item)
            else:
                items.append(_canonical(item, depth + 1))
        return items
    if kind is dict:
        if len(value) > MAX_CONTAINER_LEN:
            raise CodecError(f"map of {len(value)} entries exceeds the limit of {MAX_CONTAINER_LEN}")
        for key in value:
            if type(key) is not str:
                raise CodecError(f"map key must be a string, got {type(key).__name__}")
        entries = {}
        for key in sorted(value):
            item = value[key]
            kind = type(item)
            if inline and (
                kind is bytes
                or kind is bool
                or item is None
                or (kind is int and INT_MIN <= item <= INT_MAX)
                or (kind is str and item.isascii())
            ):
                entries[key] = item
            else:
                entries[key] = _canonical(item, depth + 1)
        return entries
    if kind is bytearray or kind is memoryview:
        return bytes(value)
    if kind is float:
        raise CodecError("floats are not allowed (use integers in the smallest unit)")
    raise CodecError(f"type {kind.__name__} cannot be encoded")
