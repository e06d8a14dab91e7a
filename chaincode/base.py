"""The chaincode contract: the protocol a chaincode implements, its errors, and typed argument specs.

A chaincode is a deterministic state machine hosted by the node. The executor (chaincode.executor) calls
`validate_args` (stateless: shape, types, bounds) and then `apply` against a transaction context; business
failures are raised as `ChaincodeFailure(code, message)` and leave no trace in state except the recorded
result. Anything else escaping `apply` is a chaincode bug and is re-raised as `InvariantBroken`.

Argument specs are small frozen dataclasses rather than pydantic models: they are checked on every
transaction of every block, so they must cost a few microseconds, and they double as the machine-readable
description that the API, the CLI and docs/CHAINCODE.md enumerate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from chaincode.layout import HEX32_REGEX, HEX64_REGEX, ID_REGEX, ORG_REGEX, Field, check_fields
from core.errors import InvalidInput
from core.genesis import ADDRESS_PATTERN
from core.state import WriteSet

if TYPE_CHECKING:
    from chaincode.context import OverlayState, TxContext
    from core.genesis import Genesis

AMOUNT_MAX = 10**15  # largest quantity (t) or money amount (fen) a single argument may carry
TEXT_MAX = 200  # longest free-text argument in characters
LIST_MAX = 64  # longest list argument
ID_PATTERN = re.compile(ID_REGEX)  # all patterns must match the whole string (fullmatch)
ORG_PATTERN = re.compile(ORG_REGEX)
HEX32_PATTERN = re.compile(HEX32_REGEX)
HEX64_PATTERN = re.compile(HEX64_REGEX)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc, fixed for ever


class ChaincodeFailure(Exception):
    """A business rule refused the transaction; `code` is stable and machine-readable (docs/CHAINCODE.md).

    Deliberately not a CarbonchainError: it never leaves the executor, which turns it into a TxResult.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class InvalidArgs(InvalidInput):
    """The arguments of a transaction or query do not match the function's spec."""

    def __init__(self, function: str, arg: str, message: str) -> None:
        super().__init__(f"{function}: argument {arg!r} {message}")
        self.function = function
        self.arg = arg


class UnknownFunction(InvalidInput):
    """No chaincode function (or query) of that name exists."""


class NotFound(InvalidInput):
    """A query asked for an object that does not exist (the API maps this to HTTP 404)."""


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument of a chaincode function or query."""

    name: str  # argument name in the args map
    kind: str  # "int", "str", "id", "org", "hex32", "hex64", "address", "bool", "enum", "value", "map",
    # "int_list", "hex32_list"
    description: str  # one line for docs and CLI help
    unit: str = ""  # "t", "fen", "kg", "ms", "bps", ... (empty for unit-less values)
    required: bool = True  # absent optional args take `default`
    default: Any = None
    minimum: int = 0  # int bounds, inclusive
    maximum: int = AMOUNT_MAX
    choices: tuple[str, ...] = ()  # the allowed values of an enum
    max_len: int = TEXT_MAX  # longest str, or most list items


def validate_value(function: str, spec: Arg, value: Any) -> Any:
    """Check one value against its spec; returns the value (lists as tuples are not produced: lists stay)."""
    kind = spec.kind
    if kind == "int":
        if type(value) is not int:
            raise InvalidArgs(function, spec.name, f"must be an integer, got {type(value).__name__}")
        if not spec.minimum <= value <= spec.maximum:
            raise InvalidArgs(
                function, spec.name, f"must be in [{spec.minimum}, {spec.maximum}], got {value}"
            )
        return value
    if kind == "bool":
        if type(value) is not bool:
            raise InvalidArgs(function, spec.name, "must be true or false")
        return value
    if kind == "value":  # a parameter's new value: an integer, or a string
        if type(value) is int:
            return validate_value(function, replace(spec, kind="int"), value)
        return validate_value(function, replace(spec, kind="str"), value)
    if kind == "map":
        if type(value) is not dict or len(value) > spec.max_len or any(type(k) is not str for k in value):
            raise InvalidArgs(function, spec.name, f"must be a map of at most {spec.max_len} named values")
        return value
    if type(value) is str:
        if kind == "str":
            # Not str.isprintable(): it depends on the Unicode version of the interpreter, and validity
            # must not change with the Python a node runs. Control characters (Cc) are fixed.
            if not 1 <= len(value) <= spec.max_len or _CONTROL.search(value):
                raise InvalidArgs(
                    function, spec.name, f"must be 1..{spec.max_len} characters, no control characters"
                )
            return value
        if kind == "id":
            if not ID_PATTERN.fullmatch(value):
                raise InvalidArgs(function, spec.name, f"must match {ID_REGEX}")
            return value
        if kind == "org":
            if not ORG_PATTERN.fullmatch(value):
                raise InvalidArgs(function, spec.name, f"must be an organisation id ({ORG_REGEX})")
            return value
        if kind == "hex32":
            if not HEX32_PATTERN.fullmatch(value):
                raise InvalidArgs(function, spec.name, "must be 64 lowercase hex digits")
            return value
        if kind == "hex64":
            if not HEX64_PATTERN.fullmatch(value):
                raise InvalidArgs(function, spec.name, "must be 128 lowercase hex digits (a signature)")
            return value
        if kind == "address":
            match = ADDRESS_PATTERN.fullmatch(value)
            if match is None or not 1 <= int(match.group(1)) <= 65535:
                raise InvalidArgs(function, spec.name, "must be host:port with a port in 1..65535")
            return value
        if kind == "enum":
            if value not in spec.choices:
                raise InvalidArgs(function, spec.name, f"must be one of {list(spec.choices)}")
            return value
    if kind in ("int_list", "hex32_list"):
        if type(value) is not list or not 1 <= len(value) <= spec.max_len:
            raise InvalidArgs(function, spec.name, f"must be a list of 1..{spec.max_len} items")
        item_kind = "int" if kind == "int_list" else "hex32"
        item = Arg(spec.name, item_kind, "", minimum=spec.minimum, maximum=spec.maximum)
        return [validate_value(function, item, element) for element in value]
    raise InvalidArgs(function, spec.name, f"must be a {kind}, got {type(value).__name__}")


def validate_arg_map(function: str, specs: tuple[Arg, ...], args: Any) -> dict[str, Any]:
    """Check an args map against specs: no unknown names, required present, each value valid.

    Returns a new dict holding every declared argument (absent optional ones set to their default).
    """
    if type(args) is not dict:
        raise InvalidArgs(function, "(args)", "must be a map")
    result: dict[str, Any] = {}
    for spec in specs:
        value = args.get(spec.name)
        if value is None:
            if spec.required:
                raise InvalidArgs(function, spec.name, "is required")
            result[spec.name] = spec.default
        else:
            result[spec.name] = validate_value(function, spec, value)
    if len(result) < len(args) or any(name not in result for name in args):
        unknown = sorted(name for name in args if name not in result)
        raise InvalidArgs(function, ",".join(unknown), "is not an argument of this function")
    return result


@dataclass(frozen=True, slots=True)
class EventSpec:
    """An event a function emits: the map {"type": type, <attribute>: value, ...} with exactly these."""

    type: str
    attributes: tuple[Field, ...]

    def check(self, event: Any) -> None:
        """Raise ValueError unless `event` is this event with exactly its attributes, each of its type."""
        if type(event) is not dict or event.get("type") != self.type:
            raise ValueError(f"expected a {self.type!r} event, got {event!r}")
        check_fields(
            f"event {self.type}", self.attributes, {k: v for k, v in event.items() if k != "type"}, {}
        )

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "attributes": {a.name: a.type for a in self.attributes}}


@dataclass(frozen=True, slots=True)
class FourEyesRule:
    """When a call needs a second key of the sender's organisation, and what it locks meanwhile
    (chaincode.foureyes; docs/CHAINCODE.md section 13)."""

    description: str  # for the docs and the CLI: when a second key is needed
    # given the call's context, its arguments and the events it would emit: does it need a second key?
    needs_second: Callable[[TxContext, dict[str, Any], list[dict[str, Any]]], bool] = field(compare=False)
    # lock what the call would take, for request `id`; returns the lock record, or None (nothing to lock)
    lock: Callable[[TxContext, dict[str, Any], int], dict[str, Any] | None] = field(compare=False)
    # whether needs_second looks at the events; a rule that does not is asked before the call runs, and a
    # call one key is enough for then runs directly, without the trial fork (the common case, made cheap)
    reads_events: bool = False


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A chaincode function: who may call it, its arguments, what it may answer and emit, its handler."""

    name: str
    roles: tuple[str, ...]  # sender roles allowed (core.genesis.Role values)
    args: tuple[Arg, ...]
    description: str
    handler: Callable[[TxContext, dict[str, Any]], None] = field(repr=False, compare=False)
    failures: tuple[str, ...] = ()  # every failure code it can return (the executor's aside), check order
    events: tuple[EventSpec, ...] = ()  # the events it emits on success
    admin_only: bool = False  # the sender key must be an admin key of the sender organisation
    frozen_ok: bool = False  # a frozen or blocked sender organisation may still call it
    node_key_ok: bool = False  # a validator's node key may sign it (only evidence)
    # checks across arguments that need no state (a failure is invalid_args), after each is checked alone
    check_args: Callable[[dict[str, Any]], None] | None = field(default=None, repr=False, compare=False)
    four_eyes: FourEyesRule | None = field(default=None, repr=False, compare=False)

    def check_result(self, result: Any) -> None:
        """Raise ValueError unless a TxResult is a declared failure without events, or "ok" with events
        each exactly as declared."""
        if result.code != "ok":
            if result.code not in self.failures or result.events:
                raise ValueError(f"{self.name}: undeclared result {result.code!r} {result.events!r}")
            return
        declared = {event.type: event for event in self.events}
        for event in result.events:
            if event.get("type") not in declared:
                raise ValueError(f"{self.name} emitted undeclared event {event!r}")
            declared[event["type"]].check(event)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "roles": list(self.roles),
            "admin_only": self.admin_only,
            "frozen_ok": self.frozen_ok,
            "node_key_ok": self.node_key_ok,
            "four_eyes": None if self.four_eyes is None else self.four_eyes.description,
            "description": self.description,
            "args": [describe_arg(arg) for arg in self.args],
            "failures": list(self.failures),
            "events": [event.to_json() for event in self.events],
        }


@dataclass(frozen=True, slots=True)
class QuerySpec:
    """A read-only query: a pure function of state and parameters returning JSON-able data."""

    name: str
    params: tuple[Arg, ...]
    description: str
    handler: Callable[[Any, dict[str, Any]], Any] = field(repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "params": [describe_arg(arg) for arg in self.params],
        }


def describe_arg(arg: Arg) -> dict[str, Any]:
    described: dict[str, Any] = {
        "name": arg.name,
        "type": arg.kind,
        "required": arg.required,
        "description": arg.description,
    }
    if arg.unit:
        described["unit"] = arg.unit
    if arg.kind in ("int", "int_list"):
        described["minimum"] = arg.minimum
        described["maximum"] = arg.maximum
    if arg.choices:
        described["choices"] = list(arg.choices)
    if not arg.required and arg.default is not None:
        described["default"] = arg.default
    return described


class Chaincode(Protocol):
    """What the executor needs from a chaincode."""

    name: str

    def has_function(self, function: str) -> bool:
        """Whether the chaincode has a function of this name."""
        ...

    def accepts_node_key(self, function: str) -> bool:
        """Whether a validator's node key may sign a call of this function (only evidence)."""
        ...

    def validate_args(self, function: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Stateless checks; returns the normalised args. Raises UnknownFunction or InvalidArgs."""
        ...

    def apply(self, ctx: TxContext, function: str, args: dict[str, Any]) -> None:
        """Apply a validated call; raises ChaincodeFailure for business failures."""
        ...

    def end_block(self, state: OverlayState, height: int, time_ms: int) -> None:
        """Deterministic work at the end of every block (after its last transaction), written into
        `state`; it may not fail (an exception is a bug)."""
        ...

    def genesis_writes(self, genesis: Genesis) -> WriteSet:
        """The chaincode's initial state for a genesis document."""
        ...
