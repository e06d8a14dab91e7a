"""Canonical msgpack (core.codec): round trips, every rejected non-canonical form, limits, determinism."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import codec
from core.errors import CodecError

scalars = (
    st.integers(min_value=codec.INT_MIN, max_value=codec.INT_MAX)
    | st.binary(max_size=300)
    | st.text(max_size=300)
    | st.booleans()
    | st.none()
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=20) | st.dictionaries(st.text(max_size=20), children, max_size=20)
    ),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(values)
def test_round_trip_and_stable(value: Any) -> None:
    encoded = codec.encode(value)
    assert codec.decode(encoded) == value
    assert codec.encode(codec.decode(encoded)) == encoded
    assert codec.encode(value) == encoded


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(st.dictionaries(st.text(max_size=10), st.integers(min_value=0, max_value=9), max_size=20))
def test_dict_insertion_order_does_not_matter(mapping: dict[str, int]) -> None:
    reversed_mapping = dict(reversed(list(mapping.items())))
    assert codec.encode(mapping) == codec.encode(reversed_mapping)


def _sorted_deep(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted_deep(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted_deep(item) for item in value]
    return value


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(values)
def test_an_already_sorted_value_packs_as_it_is_to_the_same_bytes(value: Any) -> None:
    # encode packs a value whose maps are in order without rebuilding it: the bytes must be those of the
    # rebuilt value, whatever the nesting, the scalars or the non-ASCII strings
    in_order = _sorted_deep(value)
    rebuilt = codec.msgpack.packb(codec._canonical(in_order, 0), use_bin_type=True)
    assert codec.encode(in_order) == rebuilt == codec.encode(value)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(st.dictionaries(st.text(max_size=10), values, max_size=4), st.lists(values, max_size=4))
def test_containers_of_encoded_items_are_the_encodings_of_the_containers(
    mapping: dict[str, Any], items: list[Any]
) -> None:
    entries = [(key, codec.encode(mapping[key])) for key in sorted(mapping)]
    assert codec.encode_map_of_encoded(entries) == codec.encode(mapping)
    assert codec.encode_list_of_encoded([codec.encode(item) for item in items]) == codec.encode(items)


def test_a_map_of_encoded_values_needs_its_keys_in_canonical_order() -> None:
    one = codec.encode(1)
    for entries in ([("b", one), ("a", one)], [("a", one), ("a", one)]):
        with pytest.raises(CodecError, match="sorted and unique"):
            codec.encode_map_of_encoded(entries)


def test_tuples_encode_as_lists() -> None:
    assert codec.encode((1, "a")) == codec.encode([1, "a"])


def test_keys_sort_by_utf8_bytes() -> None:
    # Python str order is code point order, which equals UTF-8 byte order.
    encoded = codec.encode({"é": 1, "z": 2, "a": 3, "": 4})
    assert encoded == bytes.fromhex("84a004a16103a17a02a2c3a901")


# Exact shortest forms, one example per msgpack format (docs/protocol/core.md lists them).
@pytest.mark.parametrize(
    ("value", "hex_bytes"),
    [
        (0, "00"),
        (127, "7f"),
        (128, "cc80"),
        (255, "ccff"),
        (256, "cd0100"),
        (65535, "cdffff"),
        (65536, "ce00010000"),
        (2**32 - 1, "ceffffffff"),
        (2**32, "cf0000000100000000"),
        (2**64 - 1, "cfffffffffffffffff"),
        (-1, "ff"),
        (-32, "e0"),
        (-33, "d0df"),
        (-128, "d080"),
        (-129, "d1ff7f"),
        (-32768, "d18000"),
        (-32769, "d2ffff7fff"),
        (-(2**31), "d280000000"),
        (-(2**31) - 1, "d3ffffffff7fffffff"),
        (-(2**63), "d38000000000000000"),
        (None, "c0"),
        (False, "c2"),
        (True, "c3"),
        ("", "a0"),
        ("a" * 31, "bf" + "61" * 31),
        ("a" * 32, "d920" + "61" * 32),
        ("a" * 256, "da0100" + "61" * 256),
        (b"", "c400"),
        (b"\x01" * 256, "c50100" + "01" * 256),
        ([], "90"),
        ([0] * 16, "dc0010" + "00" * 16),
        ({}, "80"),
    ],
)
def test_exact_bytes(value: Any, hex_bytes: str) -> None:
    assert codec.encode(value).hex() == hex_bytes
    assert codec.decode(bytes.fromhex(hex_bytes)) == value


@pytest.mark.parametrize(
    "hex_bytes",
    [
        "cd0005",  # uint16 holding 5 (fixint needed)
        "cc05",  # uint8 holding 5
        "ce000000ff",  # uint32 holding 255
        "cf00000000ffffffff",  # uint64 holding 2**32-1
        "d005",  # int8 holding a positive value
        "d0ff",  # int8 holding -1 (negative fixint needed)
        "d1ff80",  # int16 holding -128
        "d3ffffffffffffffff",  # int64 holding -1
        "d3000000000000000a",  # int64 holding 10
    ],
)
def test_rejects_wide_integers(hex_bytes: str) -> None:
    with pytest.raises(CodecError, match="canonical"):
        codec.decode(bytes.fromhex(hex_bytes))


@pytest.mark.parametrize(
    "hex_bytes",
    [
        "d90161",  # str8 of length 1 (fixstr needed)
        "da000161",  # str16 of length 1
        "db0000000161",  # str32 of length 1
        "c5000161",  # bin16 of length 1 (bin8 needed)
        "c6000000 0161".replace(" ", ""),  # bin32 of length 1
        "dc000101",  # array16 of 1 item (fixarray needed)
        "dd0000000101",  # array32 of 1 item
        "de0001a16101",  # map16 of 1 entry (fixmap needed)
        "df00000001a16101",  # map32 of 1 entry
    ],
)
def test_rejects_wide_lengths(hex_bytes: str) -> None:
    with pytest.raises(CodecError, match="canonical"):
        codec.decode(bytes.fromhex(hex_bytes))


def test_rejects_unsorted_keys() -> None:
    with pytest.raises(CodecError, match="sorted"):
        codec.decode(bytes.fromhex("82a16201a16102"))  # {"b": 1, "a": 2}


def test_rejects_unsorted_keys_nested() -> None:
    with pytest.raises(CodecError, match="sorted"):
        codec.decode(bytes.fromhex("9182a16201a16102"))


def test_rejects_duplicate_keys() -> None:
    with pytest.raises(CodecError, match="unique"):
        codec.decode(bytes.fromhex("82a16101a16102"))  # {"a": 1, "a": 2}


@pytest.mark.parametrize(
    ("hex_bytes", "kind"),
    [("810101", "int"), ("81c4016101", "bytes"), ("81c001", "NoneType|nil|None"), ("81c301", "bool")],
)
def test_rejects_non_string_keys(hex_bytes: str, kind: str) -> None:
    with pytest.raises(CodecError, match=f"map key.*({kind})|({kind}).*map key"):
        codec.decode(bytes.fromhex(hex_bytes))


@pytest.mark.parametrize(
    "hex_bytes",
    [
        "ca00000000",  # float32 0.0
        "ca3fc00000",  # float32 1.5
        "cb0000000000000000",  # float64 0.0
        "cb3ff8000000000000",  # float64 1.5
        "91ca3fc00000",  # nested in a list
        "81a178cb3ff8000000000000",  # nested in a map
        "9191cb3ff8000000000000",  # deeper
    ],
)
def test_rejects_floats(hex_bytes: str) -> None:
    with pytest.raises(CodecError, match="float"):
        codec.decode(bytes.fromhex(hex_bytes))


@pytest.mark.parametrize(
    "hex_bytes",
    [
        "d40500",  # fixext1, type 5
        "d5050000",  # fixext2
        "c7010500",  # ext8
        "91d40500",  # nested
    ],
)
def test_rejects_ext_types(hex_bytes: str) -> None:
    with pytest.raises(CodecError, match="ext type"):
        codec.decode(bytes.fromhex(hex_bytes))


@pytest.mark.parametrize(
    "hex_bytes",
    [
        "d6ff00000000",  # timestamp32
        "d7ff0000000000000000",  # timestamp64
        "c70cff000000000000000000000000",  # timestamp96
        "91d6ff00000000",  # nested
    ],
)
def test_rejects_timestamps(hex_bytes: str) -> None:
    with pytest.raises(CodecError, match="Timestamp"):
        codec.decode(bytes.fromhex(hex_bytes))


def test_rejects_trailing_bytes() -> None:
    with pytest.raises(CodecError, match="trailing"):
        codec.decode(b"\x01\x02")


def test_rejects_empty_input() -> None:
    with pytest.raises(CodecError, match="empty"):
        codec.decode(b"")


def test_rejects_non_bytes_input() -> None:
    with pytest.raises(CodecError, match="expected bytes"):
        codec.decode("01")  # type: ignore[arg-type]


def test_rejects_truncated_and_reserved() -> None:
    with pytest.raises(CodecError, match="malformed"):
        codec.decode(bytes.fromhex("cd01"))
    with pytest.raises(CodecError, match="malformed"):
        codec.decode(bytes.fromhex("c1"))


def test_rejects_invalid_utf8_in_str() -> None:
    with pytest.raises(CodecError, match="utf-8"):
        codec.decode(bytes.fromhex("a1ff"))


def test_max_bytes() -> None:
    data = codec.encode(b"abc")  # 5 bytes
    assert codec.decode(data, max_bytes=5) == b"abc"
    with pytest.raises(CodecError, match="exceeds the limit of 4"):
        codec.decode(data, max_bytes=4)


def test_max_container_len() -> None:
    assert codec.decode(codec.encode([1, 2]), max_container_len=2) == [1, 2]
    with pytest.raises(CodecError, match="max_array_len"):
        codec.decode(codec.encode([1, 2, 3]), max_container_len=2)
    with pytest.raises(CodecError, match="max_map_len"):
        codec.decode(codec.encode({"a": 1, "b": 2, "c": 3}), max_container_len=2)


def test_encode_container_limit() -> None:
    with pytest.raises(CodecError, match="exceeds the limit"):
        codec.encode([0] * (codec.MAX_CONTAINER_LEN + 1))


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def test_nesting_limit() -> None:
    # The outermost value is at depth 0, so MAX_DEPTH nested lists put the scalar at depth MAX_DEPTH.
    allowed = codec.encode(_nested(codec.MAX_DEPTH))
    assert codec.decode(allowed) == _nested(codec.MAX_DEPTH)
    with pytest.raises(CodecError, match="nesting deeper"):
        codec.encode(_nested(codec.MAX_DEPTH + 1))
    with pytest.raises(CodecError, match="nesting deeper"):
        codec.decode(b"\x91" * (codec.MAX_DEPTH + 1) + b"\x00")
    with pytest.raises(CodecError, match="nesting deeper"):
        codec.decode(b"\x81\xa1a" * (codec.MAX_DEPTH + 1) + b"\x00")


def test_very_deep_input_fails_cleanly() -> None:
    with pytest.raises(CodecError):
        codec.decode(b"\x91" * 100_000 + b"\x00")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (1.5, "float"),
        ([1, 0.0], "float"),
        ({"a": {"b": 2.0}}, "float"),
        ({1, 2}, "set"),
        (frozenset(), "frozenset"),
        (object(), "object"),
        ({1: "a"}, "map key"),
        ({b"a": 1}, "map key"),
        (2**64, "outside"),
        (-(2**63) - 1, "outside"),
        ("\ud800", "surrogate"),
        (complex(1, 2), "complex"),
    ],
)
def test_encode_rejects(value: Any, problem: str) -> None:
    with pytest.raises(CodecError, match=problem):
        codec.encode(value)


def test_bytearray_and_memoryview() -> None:
    assert codec.encode(bytearray(b"ab")) == codec.encode(b"ab")
    assert codec.encode(memoryview(b"ab")) == codec.encode(b"ab")
    assert codec.decode(bytearray(codec.encode(5))) == 5  # type: ignore[arg-type]


_CROSS_PROCESS_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from core import codec
value = {{f"key-{{i}}-{{chr(0x4e00 + i)}}": [i, str(i) * (i % 5), {{"z": i, "a": -i, "m": None}}] for i in range(300)}}
value["set-like"] = sorted({{f"s{{i}}" for i in range(50)}})
print(codec.encode(value).hex())
"""


def test_identical_bytes_across_hash_seeds() -> None:
    import os
    from pathlib import Path

    root = str(Path(codec.__file__).resolve().parent.parent)
    outputs = []
    for seed in ("0", "1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        result = subprocess.run(
            [sys.executable, "-c", _CROSS_PROCESS_SCRIPT.format(root=root)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        outputs.append(result.stdout.strip())
    assert len(outputs[0]) > 1000
    assert outputs[0] == outputs[1] == outputs[2]
