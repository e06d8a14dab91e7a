"""`carbonchain query <name>`: every chaincode query, generated from chaincode.QUERIES.

Each query becomes one command whose options are the query's parameters. Output is human-readable by default
(fields as `name: value`, lists of records as aligned tables), `--json` prints the API's JSON unchanged for
scripts, and `--csv` prints the query's main table (e.g. the rows of `compliance`, the items of a page, both
sides of the order book with a `side` column). This module also holds the small table and CSV writers the
report and audit commands share.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import click

from chaincode import QUERIES, Arg, QuerySpec
from client import CarbonClient
from commands.common import echo_json
from core.errors import InvariantBroken

DEFAULT_NODE = "http://127.0.0.1:7200"
NODE_ENV = "CARBONCHAIN_NODE"
CELL_CHARS_MAX = 66  # a 64-hex-digit id fits; longer cells are cut with an ellipsis in tables

T = TypeVar("T")


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine to completion (commands are synchronous to click)."""
    return asyncio.run(coroutine)


def node_option() -> Any:
    return click.option(
        "--node",
        default=DEFAULT_NODE,
        show_default=True,
        envvar=NODE_ENV,
        help=f"API URL of the node to talk to (or ${NODE_ENV}).",
    )


# --- output ------------------------------------------------------------------------------------------------


def format_cell(value: Any, *, limit: int | None = CELL_CHARS_MAX) -> str:
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    else:
        text = str(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def collect_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Columns in first-seen order over all rows."""
    columns: dict[str, None] = {}
    for row in rows:
        for name in row:
            columns.setdefault(name, None)
    return list(columns)


def format_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, *, right: Sequence[str] = ()
) -> str:
    """An aligned text table; numbers (and columns named in `right`) align right."""
    columns = list(columns) if columns is not None else collect_columns(rows)
    if not rows:
        return "(none)"
    cells = [[format_cell(row.get(name)) for name in columns] for row in rows]
    widths = [max(len(name), *(len(line[i]) for line in cells)) for i, name in enumerate(columns)]
    numeric = [
        name in right
        or all(isinstance(row.get(name), int) and not isinstance(row.get(name), bool) for row in rows)
        for name in columns
    ]
    lines = ["  ".join(name.ljust(widths[i]) for i, name in enumerate(columns)).rstrip()]
    lines.append("  ".join("-" * width for width in widths))
    for line in cells:
        parts = [
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i]) for i, cell in enumerate(line)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def format_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    columns = list(columns) if columns is not None else collect_columns(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([format_cell(row.get(name), limit=None) for name in columns])
    return buffer.getvalue().rstrip("\n")


def flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested maps as dotted names; lists stay values."""
    flat: dict[str, Any] = {}
    for name, item in value.items():
        if isinstance(item, dict):
            flat.update(flatten(item, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = item
    return flat


def _is_table(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def render_text(result: Any) -> str:
    """Scalars as `name: value`, lists of records as tables under their name."""
    if not isinstance(result, dict):
        return format_cell(result, limit=None)
    scalars: dict[str, Any] = {}
    tables: list[tuple[str, list[dict[str, Any]]]] = []
    for name, value in result.items():
        if _is_table(value):
            tables.append((name, [flatten(item) for item in value]))
        elif isinstance(value, dict):
            for sub, item in flatten(value, f"{name}.").items():
                scalars[sub] = item
        elif isinstance(value, list) and not value:
            tables.append((name, []))
        elif not (name == "next" and value is None):  # the last page says nothing about paging
            scalars[name] = value
    parts = []
    if scalars:
        width = max(len(name) for name in scalars) + 1
        parts.append(
            "\n".join(f"{name + ':':{width}} {format_cell(v, limit=None)}" for name, v in scalars.items())
        )
    for name, rows in tables:
        parts.append(f"{name}:\n{format_table(rows)}")
    return "\n\n".join(parts)


def main_table(name: str, result: Any) -> list[dict[str, Any]]:
    """The rows `--csv` prints: a query's main list of records, or the result as one row."""
    if name == "order_book" and isinstance(result, dict):
        rows = [{"side": side, **order} for side in ("buy", "sell") for order in result.get(side, [])]
        return rows or [dict.fromkeys(("side", "id", "org", "price_fen", "remaining_t", "height"))]
    if isinstance(result, dict):
        for field in ("rows", "items", "offset_blocks", "issuance_records"):
            if isinstance(result.get(field), list):
                return [flatten(item) for item in result[field] if isinstance(item, dict)]
        for value in result.values():
            if _is_table(value):
                return [flatten(item) for item in value]
        return [flatten(result)]
    if _is_table(result):
        return [flatten(item) for item in result]
    return [{"value": result}]


def emit_result(name: str, result: Any, *, as_json: bool, as_csv: bool) -> None:
    if as_json:
        echo_json(result)
    elif as_csv:
        click.echo(format_csv(main_table(name, result)))
    else:
        click.echo(render_text(result))


def get_field(value: Any, path: str) -> Any:
    """A value inside a JSON document by dotted path (list items by index)."""
    current = value
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise click.BadParameter(f"no {part!r} at this point of {path!r}", param_hint="--field")
    return current


# --- the generated commands -----------------------------------------------------------------------------------


def _option_type(arg: Arg) -> Any:
    if arg.kind == "int":
        return click.IntRange(arg.minimum, arg.maximum)
    if arg.kind == "enum":
        return click.Choice(list(arg.choices))
    if arg.kind == "bool":
        return click.BOOL
    return click.STRING


def describe_arg_help(arg: Arg) -> str:
    text = arg.description
    if arg.unit:
        text += f" [{arg.unit}]"
    if not arg.required and arg.default is not None:
        text += f" (default {arg.default})"
    return text


def option_name(arg: Arg) -> str:
    return "--" + arg.name.replace("_", "-")


def build_query_command(spec: QuerySpec) -> click.Command:
    params: list[click.Parameter] = [
        click.Option(
            [option_name(arg), arg.name],
            type=_option_type(arg),
            required=arg.required,
            help=describe_arg_help(arg),
        )
        for arg in spec.params
    ]
    params += [
        click.Option(
            ["--node"], default=DEFAULT_NODE, show_default=True, envvar=NODE_ENV, help="API URL of the node."
        ),
        click.Option(["--json", "as_json"], is_flag=True, help="Print the JSON answer (for scripts)."),
        click.Option(["--csv", "as_csv"], is_flag=True, help="Print the main table as CSV."),
        click.Option(
            ["--field"], default=None, help="Print one value by dotted path, e.g. issuance_records.0.first."
        ),
    ]
    names = {arg.name for arg in spec.params}
    if names & {"node", "as_json", "as_csv", "field"}:
        raise InvariantBroken(f"query {spec.name} has a parameter that clashes with a CLI option")

    def callback(node: str, as_json: bool, as_csv: bool, field: str | None, **values: Any) -> None:
        query_params = {name: value for name, value in values.items() if value is not None}

        async def fetch() -> Any:
            async with CarbonClient(node) as client:
                return await client.query(spec.name, **query_params)

        result = run_async(fetch())
        if field is not None:
            click.echo(format_cell(get_field(result, field), limit=None))
        else:
            emit_result(spec.name, result, as_json=as_json, as_csv=as_csv)

    return click.Command(
        spec.name, params=params, callback=callback, help=spec.description, short_help=spec.description
    )


class NameGroup(click.Group):
    """Accepts dashes for underscores in command names (`order-book` = `order_book`)."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or super().get_command(ctx, cmd_name.replace("-", "_"))


@click.group("query", cls=NameGroup)
def query_group() -> None:
    """Read chaincode state: one command per chaincode query (tables; --json; --csv)."""


for _spec in QUERIES.values():
    query_group.add_command(build_query_command(_spec))
