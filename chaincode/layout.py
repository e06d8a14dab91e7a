"""The vocabulary in which the chaincode declares its state: key templates, record fields and value types.

A declaration is data that three parties read: the chaincode builds its keys from the templates
(`KeyTemplate.format`), docs/CHAINCODE.md's key and record tables are generated from it (chaincode.docgen),
and tests check every state entry and event the chaincode produces against it (`Record.check`,
`check_value`), so the specification and the code cannot drift apart.

Key templates are text with typed segments, e.g. `issuance/{project:id}/{monitoring_start_ms:u20}`. A
segment's format says exactly what bytes it becomes (SEGMENT_FORMATS): ids as their ASCII text, numbers as
zero-padded decimal of a fixed width, so that byte order equals numeric order.

Value types are short expressions: `int`, `str`, `bool`, `nil`, the id formats `org`, `id`, `hex32` and
`hex64` (strings of that pattern), `""` (the empty string), `enum(a,b,c)` (one of these strings), `list(T)`,
`map` (a map with string keys, the arguments of a proposal or request: their own declarations say more),
the name of a declared Shape (a nested map), and alternatives joined by `|` (for example `int|nil`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ORG_REGEX = r"[a-z0-9][a-z0-9_.-]{0,63}"
ID_REGEX = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}"
HEX32_REGEX = r"[0-9a-f]{64}"
HEX64_REGEX = r"[0-9a-f]{128}"  # a 64-byte Ed25519 signature


@dataclass(frozen=True, slots=True)
class SegmentFormat:
    regex: str  # the segment's text, exactly
    width: int  # decimal digits of a number segment; 0 for text segments
    description: str  # for the generated key table


SEGMENT_FORMATS: dict[str, SegmentFormat] = {
    "org": SegmentFormat(ORG_REGEX, 0, f"an organisation id, `{ORG_REGEX}`"),
    "id": SegmentFormat(ID_REGEX, 0, f"an id, `{ID_REGEX}`"),
    "hex32": SegmentFormat(HEX32_REGEX, 0, "64 lowercase hex digits (32 bytes)"),
    "u16": SegmentFormat("[0-9]{16}", 16, "an unsigned integer as exactly 16 decimal digits, zero-padded"),
    "u20": SegmentFormat("[0-9]{20}", 20, "an unsigned integer as exactly 20 decimal digits, zero-padded"),
}

KEYS_REMEMBERED_MAX = 4096  # per key layout
_SEGMENT = re.compile(r"\{([a-z_]+):([a-z0-9]+)\}")


class KeyTemplate:
    """A key layout such as `offset/{last:u20}`: builds keys and parses them back."""

    __slots__ = ("_keys", "_pattern", "_template", "prefix", "segments", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.segments: tuple[tuple[str, str], ...] = tuple(_SEGMENT.findall(text))
        literal_parts = _SEGMENT.split(text)[::3]  # text between the segments
        for name, fmt in self.segments:
            if fmt not in SEGMENT_FORMATS:
                raise ValueError(f"key template {text!r}: unknown segment format {fmt!r} of {name!r}")
        template = literal_parts[0].replace("%", "%%")
        pattern = re.escape(literal_parts[0])
        for (name, fmt), literal in zip(self.segments, literal_parts[1:], strict=True):
            spec = SEGMENT_FORMATS[fmt]
            template += f"%0{spec.width}d" if spec.width else "%s"
            template += literal.replace("%", "%%")
            pattern += f"(?P<{name}>{spec.regex})" + re.escape(literal)
        template.encode("ascii")  # a key is ASCII throughout: refuse any other template now
        self._template = template
        self._pattern = re.compile(pattern.encode("ascii"))
        self.prefix = literal_parts[0].encode("ascii")  # the fixed text before the first segment
        self._keys: dict[tuple[str | int, ...], bytes] = {}  # segment values -> key, bounded (`format`)

    def format(self, *values: str | int) -> bytes:
        """The key for these segment values, in template order (a value that is not ASCII raises
        UnicodeEncodeError). Formatted as text, then encoded once: converting each value to bytes first
        cost more than the rest of building the key (a transfer builds nine). The keys built are remembered:
        a block names the same organisations' records again and again. Only str and int values are looked
        up: True == 1 == 1.0 as dict keys, but not as text."""
        for value in values:
            if type(value) is not str and type(value) is not int:
                return (self._template % values).encode("ascii")
        keys = self._keys
        key = keys.get(values)
        if key is None:
            key = (self._template % values).encode("ascii")
            if len(keys) >= KEYS_REMEMBERED_MAX:
                keys.clear()  # bounded; forgetting only means formatting again
            keys[values] = key
        return key

    def parse(self, key: bytes) -> dict[str, str | int] | None:
        """The segment values of a key of this layout (numbers as int), or None if it is not one."""
        match = self._pattern.fullmatch(key)
        if match is None:
            return None
        values: dict[str, str | int] = {}
        for name, fmt in self.segments:
            text = match.group(name).decode("ascii")
            values[name] = int(text) if SEGMENT_FORMATS[fmt].width else text
        return values

    def __repr__(self) -> str:
        return f"KeyTemplate({self.text!r})"


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a record, a nested map or an event."""

    name: str
    type: str  # a value type expression (module docstring)
    description: str


@dataclass(frozen=True, slots=True)
class Shape:
    """A nested map that record fields refer to by name (e.g. a report's `verification`)."""

    name: str
    fields: tuple[Field, ...]
    description: str


@dataclass(frozen=True, slots=True)
class Record:
    """A kind of state entry: its key layout and the exact field set of its value (a canonical map)."""

    name: str  # short name used in the docs, e.g. "organisation"
    key: KeyTemplate
    fields: tuple[Field, ...]  # every field is always present; an empty tuple is the empty map `80`
    description: str
    notes: tuple[str, ...] = field(default=())  # extra rules for the generated docs

    def check(self, value: Any, shapes: Mapping[str, Shape]) -> None:
        """Raise ValueError unless `value` is a map with exactly these fields, each of its type."""
        check_fields(self.name, self.fields, value, shapes)


def check_fields(what: str, fields: tuple[Field, ...], value: Any, shapes: Mapping[str, Shape]) -> None:
    if type(value) is not dict:
        raise ValueError(f"{what}: expected a map, got {type(value).__name__}")
    expected = {f.name for f in fields}
    if set(value) != expected:
        missing, extra = sorted(expected - set(value)), sorted(set(value) - expected)
        raise ValueError(f"{what}: fields differ from the declaration (missing {missing}, extra {extra})")
    for f in fields:
        check_value(f"{what}.{f.name}", f.type, value[f.name], shapes)


_ENUM = re.compile(r"^enum\(([a-z0-9_,]+)\)$")
_LIST = re.compile(r"^list\((.+)\)$")
_PATTERN_TYPES = {
    "org": re.compile(ORG_REGEX),
    "id": re.compile(ID_REGEX),
    "hex32": re.compile(HEX32_REGEX),
    "hex64": re.compile(HEX64_REGEX),
}


def split_alternatives(type_expr: str) -> list[str]:
    """`int|list(a|b)|nil` -> ['int', 'list(a|b)', 'nil'] (bars inside parentheses do not split)."""
    parts, depth, current = [], 0, ""
    for char in type_expr:
        if char == "|" and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    parts.append(current)
    return parts


def check_value(what: str, type_expr: str, value: Any, shapes: Mapping[str, Shape]) -> None:
    """Raise ValueError unless `value` has the declared type."""
    errors = []
    for alternative in split_alternatives(type_expr):
        try:
            _check_one(what, alternative, value, shapes)
            return
        except ValueError as exc:
            errors.append(str(exc))
    raise ValueError(errors[0] if len(errors) == 1 else f"{what}: {value!r} is none of {type_expr}")


def _check_one(what: str, type_expr: str, value: Any, shapes: Mapping[str, Shape]) -> None:
    if type_expr == "nil":
        ok = value is None
    elif type_expr == '""':
        ok = value == ""
    elif type_expr == "int":
        ok = type(value) is int
    elif type_expr == "bool":
        ok = type(value) is bool
    elif type_expr == "str":
        ok = type(value) is str
    elif type_expr == "map":
        ok = type(value) is dict and all(type(key) is str for key in value)
    elif type_expr in _PATTERN_TYPES:
        ok = type(value) is str and _PATTERN_TYPES[type_expr].fullmatch(value) is not None
    elif (enum := _ENUM.match(type_expr)) is not None:
        ok = value in enum.group(1).split(",")
    elif (listed := _LIST.match(type_expr)) is not None:
        if type(value) is not list:
            raise ValueError(f"{what}: expected a list, got {type(value).__name__}")
        for index, item in enumerate(value):
            check_value(f"{what}[{index}]", listed.group(1), item, shapes)
        return
    elif type_expr in shapes:
        check_fields(what, shapes[type_expr].fields, value, shapes)
        return
    else:
        raise ValueError(f"{what}: unknown type {type_expr!r} in a declaration")
    if not ok:
        raise ValueError(f"{what}: {value!r} is not a {type_expr}")


def describe_type(type_expr: str) -> str:
    """A value type for the docs: `int|nil` -> 'int or nil', `enum(a,b)` -> '`a` or `b`'."""
    words = []
    for alternative in split_alternatives(type_expr):
        if (enum := _ENUM.match(alternative)) is not None:
            words.append(" / ".join(f"`{choice}`" for choice in enum.group(1).split(",")))
        elif (listed := _LIST.match(alternative)) is not None:
            words.append(f"list of {describe_type(listed.group(1))}")
        else:
            words.append(alternative)
    return " or ".join(words)
