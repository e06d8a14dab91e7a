"""Keep the generated parts of docs/CHAINCODE.md equal to the chaincode's declarations.

    python -m chaincode.docgen --write     regenerate the parts in place
    python -m chaincode.docgen --check     exit 1 (naming the parts) when the document is out of date

The document is hand-written prose with generated regions between `<!-- generated:NAME -->` and
`<!-- end generated:NAME -->` lines. The regions are rendered from the declarations the chaincode runs
with: the argument kinds (chaincode.base), every key and record (chaincode.schema), each function's
header (roles, arguments, events with attributes, failure codes: chaincode.carbon.FUNCTIONS), the queries
and the parameters. Hand-written text (a function's steps, the rules) sits between regions and is kept.

A function declared in FUNCTIONS but absent from the document gets a new region (and a placeholder for
its steps) before the `<!-- end of functions -->` line; a region naming something no longer declared is
an error. tests/chaincode/test_docs.py fails when the document and the declarations disagree.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from chaincode.actions import ACTIONS
from chaincode.base import LIST_MAX, TEXT_MAX, Arg
from chaincode.carbon import FUNCTIONS
from chaincode.layout import HEX64_REGEX, SEGMENT_FORMATS, Field, Record, describe_type
from chaincode.params import PARAMETERS
from chaincode.queries import QUERIES
from chaincode.schema import RECORDS, SHAPES

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "CHAINCODE.md"
FUNCTIONS_END = "<!-- end of functions -->"
_REGION = re.compile(
    r"^<!-- generated:(?P<name>[a-z0-9_:-]+) -->\n(?P<body>.*?)^<!-- end generated:(?P=name) -->\n",
    re.DOTALL | re.MULTILINE,
)
STEPS_PLACEHOLDER = "Steps: to be written (see the other functions).\n"


class DocumentError(Exception):
    """The document's generated regions cannot be brought up to date (unknown or malformed region)."""


# --- the regions ------------------------------------------------------------------------------------------


def render_arg_kinds() -> str:
    rows = [
        ("int", "an integer (not a boolean) in the argument's bounds, inclusive"),
        ("bool", "`true` or `false`"),
        (
            "str",
            f"a string of 1 … max characters (Unicode code points; max is {TEXT_MAX} unless the argument says "
            "otherwise), none of them a control character U+0000–U+001F or U+007F–U+009F",
        ),
        ("id", f"a string matching `{SEGMENT_FORMATS['id'].regex}` as a whole"),
        ("org", f"a string matching `{SEGMENT_FORMATS['org'].regex}` as a whole (an organisation id)"),
        ("hex32", f"a string matching `{SEGMENT_FORMATS['hex32'].regex}` as a whole"),
        ("hex64", f"a string matching `{HEX64_REGEX}` as a whole (an Ed25519 signature)"),
        (
            "address",
            "a string `host:port` matching `[A-Za-z0-9.\\-\\[\\]:]{1,253}:[0-9]{1,5}` as a whole, "
            "the port 1 … 65535",
        ),
        ("value", "an `int` in the argument's bounds, or a `str`"),
        (
            "map",
            f"a map of at most max entries (max {LIST_MAX} unless said) with string keys: the arguments of "
            "another declaration, which checks them",
        ),
        ("enum", "a string, one of the argument's choices"),
        ("int_list", f"an array of 1 … max items (max {LIST_MAX} unless said), each an `int` in the bounds"),
        ("hex32_list", f"an array of 1 … max items (max {LIST_MAX} unless said), each a `hex32`"),
    ]
    lines = ["| kind | a valid value |", "|---|---|"]
    lines += [f"| `{kind}` | {rule} |" for kind, rule in rows]
    return "\n".join(lines) + "\n"


def render_key_formats() -> str:
    lines = ["| segment format | bytes in the key |", "|---|---|"]
    lines += [f"| `{name}` | {spec.description} |" for name, spec in SEGMENT_FORMATS.items()]
    return "\n".join(lines) + "\n"


def render_keys() -> str:
    lines = ["| key | record | value |", "|---|---|---|"]
    for record in RECORDS:
        count = len(record.fields)
        value = "the empty map (`80`)" if not count else f"map, {count} field{'s' if count > 1 else ''}"
        lines.append(f"| `{record.key.text}` | [{record.name}](#{_anchor(record)}) | {value} |")
    return "\n".join(lines) + "\n"


def _anchor(record: Record) -> str:
    return "record-" + re.sub(r"[^a-z0-9]+", "-", record.name).strip("-")


def render_records() -> str:
    lines: list[str] = []
    for record in RECORDS:
        lines += [f'<a id="{_anchor(record)}"></a>', f"#### `{record.key.text}`: {record.name}", ""]
        lines += [record.description[0].upper() + record.description[1:] + ".", ""]
        if record.fields:
            lines += _field_table(record.fields)
        else:
            lines.append("Value: the empty map, the single byte `80`.")
        lines.append("")
    for shape in SHAPES.values():
        lines += [f"#### `{shape.name}` (nested map: {shape.description})", ""]
        lines += [*_field_table(shape.fields), ""]
    return "\n".join(lines)


def _field_table(fields: tuple[Field, ...]) -> list[str]:
    lines = ["| field | type | meaning |", "|---|---|---|"]
    lines += [f"| `{f.name}` | {describe_type(f.type)} | {f.description} |" for f in fields]
    return lines


def _arg_line(arg: Arg) -> str:
    kind = arg.kind
    if arg.kind in ("int", "int_list"):
        kind += f" {arg.minimum} … {arg.maximum}"
    elif arg.kind in ("str", "hex32_list", "map") and (
        arg.max_len != (TEXT_MAX if arg.kind == "str" else LIST_MAX)
    ):
        kind += f", at most {arg.max_len}"
    elif arg.choices:
        kind += ": " + " / ".join(f"`{choice}`" for choice in arg.choices)
    unit = f" [{arg.unit}]" if arg.unit else ""
    if arg.required:
        presence = "required"
    elif arg.default is None:
        presence = "optional, absent = nil"
    else:
        presence = f"optional, default {_literal(arg.default)}"
    return f"| `{arg.name}` | {kind}{unit} | {presence} | {arg.description} |"


def _arg_table(args: tuple[Arg, ...], what: str) -> list[str]:
    if not args:
        return [f"No {what}s."]
    return [f"| {what} | kind | presence | meaning |", "|---|---|---|---|", *(_arg_line(arg) for arg in args)]


def _literal(value: object) -> str:
    if value is True or value is False:
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def render_function(name: str) -> str:
    spec = FUNCTIONS[name]
    flags = []
    if spec.admin_only:
        flags.append("the signing key must be an admin key")
    flags.append(
        "allowed while frozen or blocked" if spec.frozen_ok else "the sender must not be frozen or blocked"
    )
    lines = [f"### `{spec.name}`", "", spec.description, ""]
    if spec.node_key_ok:
        flags.append("a validator's node key may sign it")
    lines.append(f"- Sender roles: {', '.join(f'`{role}`' for role in spec.roles)}; {'; '.join(flags)}.")
    if spec.four_eyes is not None:
        lines.append(f"- Four-eyes (§13): a second key approves it {spec.four_eyes.description}.")
    lines.append(
        f"- Failure codes, in check order: {', '.join(f'`{code}`' for code in spec.failures) or 'none'}."
    )
    lines += ["", *_arg_table(spec.args, "argument"), ""]
    for event in spec.events:
        attributes = ", ".join(
            f"`{a.name}` ({describe_type(a.type)}: {a.description})" for a in event.attributes
        )
        lines.append(f"- Event `{event.type}`: {attributes}.")
    lines.append("")
    return "\n".join(lines)


def render_queries() -> str:
    lines: list[str] = []
    for query in QUERIES.values():
        lines += [
            f"#### `{query.name}`",
            "",
            query.description,
            "",
            *_arg_table(query.params, "parameter"),
            "",
        ]
    return "\n".join(lines)


def render_actions() -> str:
    lines: list[str] = []
    for action in ACTIONS.values():
        lines += [f"#### `{action.name}` (policy `{action.policy}`)", "", action.description, ""]
        codes = ", ".join(f"`{code}`" for code in action.failures) or "none"
        lines += [f"- Failure codes of its checks, in check order: {codes}."]
        lines += [f"- Events when it executes: {', '.join(f'`{e.type}`' for e in action.events)}.", ""]
        lines += [*_arg_table(action.args, "argument"), ""]
    return "\n".join(lines)


def render_parameters() -> str:
    lines = ["| name | default | allowed | meaning |", "|---|---|---|---|"]
    for p in PARAMETERS:
        allowed = " / ".join(f"`{c}`" for c in p.choices) if p.choices else f"{p.minimum} … {p.maximum}"
        lines.append(f"| `{p.name}` | `{p.default}` | {allowed} | {p.description} |")
    return "\n".join(lines) + "\n"


REGIONS: dict[str, Callable[[], str]] = {
    "arg-kinds": render_arg_kinds,
    "key-formats": render_key_formats,
    "keys": render_keys,
    "records": render_records,
    "queries": render_queries,
    "actions": render_actions,
    "parameters": render_parameters,
}


def render_region(name: str) -> str:
    if name.startswith("function:"):
        function = name.removeprefix("function:")
        if function not in FUNCTIONS:
            raise DocumentError(f"the document describes {function!r}, which is not a declared function")
        return render_function(function)
    if name not in REGIONS:
        raise DocumentError(f"unknown generated region {name!r}")
    return REGIONS[name]()


# --- the document --------------------------------------------------------------------------------------------


def update_document(text: str) -> str:
    """The document with every generated region re-rendered and missing functions added."""
    described = set()

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name.startswith("function:"):
            described.add(name.removeprefix("function:"))
        return f"<!-- generated:{name} -->\n{render_region(name)}<!-- end generated:{name} -->\n"

    updated = _REGION.sub(replace, text)
    missing = [name for name in FUNCTIONS if name not in described]
    if missing:
        if FUNCTIONS_END not in updated:
            raise DocumentError(f"no {FUNCTIONS_END!r} line to add the functions {missing} before")
        added = "".join(
            f"<!-- generated:function:{name} -->\n{render_function(name)}<!-- end generated:function:{name} -->\n"
            f"{STEPS_PLACEHOLDER}\n"
            for name in missing
        )
        updated = updated.replace(FUNCTIONS_END, added + FUNCTIONS_END)
    return updated


def find_function_sections(text: str) -> dict[str, str]:
    """Each function's hand-written text: from the end of its region to the next region or heading."""
    sections = {}
    for match in _REGION.finditer(text):
        name = match.group("name")
        if not name.startswith("function:"):
            continue
        rest = text[match.end() :]
        stop = min(
            (
                index
                for index in (rest.find("<!-- generated:"), rest.find("\n## "), rest.find(FUNCTIONS_END))
                if index >= 0
            ),
            default=len(rest),
        )
        sections[name.removeprefix("function:")] = rest[:stop]
    return sections


def main(argv: list[str]) -> int:
    if argv not in (["--write"], ["--check"], []):
        print("usage: python -m chaincode.docgen [--write | --check]", file=sys.stderr)
        return 2
    text = DOCUMENT.read_text(encoding="utf-8")
    try:
        updated = update_document(text)
    except DocumentError as exc:
        print(f"{DOCUMENT}: {exc}", file=sys.stderr)
        return 1
    if argv == ["--write"]:
        if updated != text:
            DOCUMENT.write_text(updated, encoding="utf-8")
            print(f"{DOCUMENT}: regenerated")
        return 0
    if updated != text:
        before = {m.group("name"): m.group(0) for m in _REGION.finditer(text)}
        after = {m.group("name"): m.group(0) for m in _REGION.finditer(updated)}
        stale = sorted(name for name in after if before.get(name) != after[name])
        print(f"{DOCUMENT} is out of date in {', '.join(stale)}: run python -m chaincode.docgen --write")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
