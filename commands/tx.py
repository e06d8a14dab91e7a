"""`carbonchain tx <function>`: sign and submit any chaincode function, generated from chaincode.FUNCTIONS.

One command per function; its options are the function's arguments, typed from their specs (integers with
their bounds, enums as choices, lists as repeated options or comma-separated), and the help says the units and
who may call it. Every command also takes:

    --key FILE      the signing key (encrypted files ask for the passphrase: --passphrase-file, or
                    $CARBONCHAIN_PASSPHRASE, or a prompt)
    --as ORG        the sending organisation (`--org` is a chaincode argument of many functions: the target)
    --node URL      the node's API (default http://127.0.0.1:7200, or $CARBONCHAIN_NODE)
    --wait          wait for the commit and print the result (height, code, message, events)
    --json          print JSON instead of text

Arguments are checked against the function's spec before signing, so a typo fails here, not on chain.
Exit status: 0 when the node accepted the transaction (without --wait) or it committed with code "ok"
(with --wait); 1 when it was rejected, failed on chain, or did not commit in time.

Times in milliseconds (`*_ms` arguments) also accept `+90s`, `+5m`, `+2h`, `+1d` (from now, by this
machine's clock) and ISO-8601 UTC times such as `2026-03-31T16:00:00Z`.

`carbonchain keys dev ORG --out FILE` writes a devnet organisation's well-known (insecure) key.
"""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from chaincode import FUNCTIONS, Arg, FunctionSpec
from chaincode.base import validate_arg_map
from client import DEFAULT_VALIDITY_BLOCKS, CarbonClient, TxRejected
from commands.common import PASSPHRASE_ENV, echo_json, open_key
from commands.query import (
    DEFAULT_NODE,
    NODE_ENV,
    NameGroup,
    describe_arg_help,
    format_cell,
    option_name,
    run_async,
)
from core.devkeys import dev_admin_key, dev_client_key
from core.errors import InvariantBroken
from core.keys import compute_key_id
from core.keystore import save_key

ORG_ENV = "CARBONCHAIN_ORG"
KEY_ENV = "CARBONCHAIN_KEY"
COMMON_OPTIONS = (
    "key",
    "sender",
    "node",
    "wait",
    "as_json",
    "timeout_s",
    "passphrase_file",
    "validity_blocks",
)
_RELATIVE = re.compile(r"^\+(\d{1,12})(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class TimeMs(click.ParamType):
    """Milliseconds since the Unix epoch: an integer, `+<n><ms|s|m|h|d>` from now, or an ISO-8601 time."""

    name = "TIME_MS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if text.isdigit():
            return int(text)
        relative = _RELATIVE.match(text)
        if relative:
            return time.time_ns() // 1_000_000 + int(relative.group(1)) * _UNIT_MS[relative.group(2)]
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            self.fail(f"{text!r} is not ms since the epoch, +<n>s/m/h/d, or an ISO-8601 time", param, ctx)
        if moment.tzinfo is None:
            self.fail(f"{text!r} needs a time zone, e.g. a trailing Z for UTC", param, ctx)
        return int(moment.timestamp() * 1000)


def _option_type(arg: Arg) -> Any:
    if arg.kind == "int":
        if arg.unit == "ms" and arg.name.endswith("_ms"):
            return TimeMs()
        return click.IntRange(arg.minimum, arg.maximum)
    if arg.kind == "enum":
        return click.Choice(list(arg.choices))
    if arg.kind == "int_list":
        return click.IntRange(arg.minimum, arg.maximum)
    return click.STRING


def _arg_option(arg: Arg) -> click.Option:
    help_text = describe_arg_help(arg)
    if arg.kind in ("hex32", "hex32_list") and "key" in arg.name:
        help_text += "; @FILE takes the public key of a key file"
    if arg.kind == "bool":
        flag = option_name(arg)
        return click.Option(
            [f"{flag}/--no-{flag[2:]}", arg.name], default=None, help=help_text, required=arg.required
        )
    if arg.kind in ("int_list", "hex32_list"):
        return click.Option(
            [option_name(arg), arg.name],
            multiple=True,
            required=arg.required,
            help=help_text + " (repeat the option, or separate with commas)",
            type=click.STRING,
        )
    return click.Option(
        [option_name(arg), arg.name], type=_option_type(arg), required=arg.required, help=help_text
    )


def _list_value(arg: Arg, values: tuple[str, ...]) -> list[Any]:
    items = [item.strip() for value in values for item in value.split(",") if item.strip()]
    if arg.kind == "int_list":
        try:
            return [int(item) for item in items]
        except ValueError:
            raise click.BadParameter("must be integers", param_hint=option_name(arg)) from None
    return items


def _map_value(arg: Arg, text: str) -> Any:
    """A map argument (a proposal's `args`) given as a JSON object."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"must be a JSON object: {exc}", param_hint=option_name(arg)) from None
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint=option_name(arg))
    return value


def describe_callers(spec: FunctionSpec) -> str:
    who = ", ".join(spec.roles)
    notes = []
    if spec.admin_only:
        notes.append("admin key required")
    if spec.frozen_ok:
        notes.append("allowed while frozen")
    return who + (f" ({'; '.join(notes)})" if notes else "")


def signing_options() -> list[click.Parameter]:
    """The options every signing command takes (this module's docstring), after its own."""
    params: list[click.Parameter] = [
        click.Option(
            ["--key", "key"],
            required=True,
            envvar=KEY_ENV,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help=f"Signing key file (or ${KEY_ENV}).",
        ),
        click.Option(
            ["--as", "sender"],
            required=True,
            envvar=ORG_ENV,
            help=f"The sending organisation the key is enrolled for (or ${ORG_ENV}).",
        ),
        click.Option(
            ["--node"], default=DEFAULT_NODE, show_default=True, envvar=NODE_ENV, help="API URL of the node."
        ),
        click.Option(["--wait"], is_flag=True, help="Wait for the commit; print height, code and events."),
        click.Option(["--json", "as_json"], is_flag=True, help="Print JSON."),
        click.Option(
            ["--quiet", "-q", "quiet"],
            is_flag=True,
            help="Print only the transaction id (e.g. RECEIPT=$(carbonchain tx retire_offsets ... --wait -q)).",
        ),
        click.Option(
            ["--timeout", "timeout_s"],
            default=30.0,
            show_default=True,
            type=click.FloatRange(0.1, 3600),
            help="Seconds to wait for the commit (with --wait).",
        ),
        click.Option(
            ["--validity-blocks", "validity_blocks"],
            default=DEFAULT_VALIDITY_BLOCKS,
            show_default=True,
            type=click.IntRange(1, 10**6),
            help="The transaction may be included up to this many blocks from now.",
        ),
    ]
    params.append(
        click.Option(
            ["--passphrase-file"],
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help=f"Read the key passphrase from this file (else ${PASSPHRASE_ENV}, else a prompt).",
        )
    )
    return params


def build_tx_command(spec: FunctionSpec) -> click.Command:
    clash = {arg.name for arg in spec.args} & set(COMMON_OPTIONS)
    if clash:
        raise InvariantBroken(
            f"function {spec.name} has arguments {sorted(clash)} that clash with CLI options"
        )
    params: list[click.Parameter] = [_arg_option(arg) for arg in spec.args] + signing_options()
    units = [f"{arg.name} in {arg.unit}" for arg in spec.args if arg.unit]
    help_text = f"{spec.description}\n\nWho may call it: {describe_callers(spec)}."
    if units:
        help_text += f" Units: {', '.join(units)}."
    if spec.failures:
        help_text += f"\n\nFailure codes: {', '.join(spec.failures)}."

    def callback(**values: Any) -> None:
        sys.exit(_submit(spec, values))

    return click.Command(
        spec.name, params=params, callback=callback, help=help_text, short_help=spec.description
    )


def compute_args(spec: FunctionSpec, values: dict[str, Any]) -> dict[str, Any]:
    """The function's args map from option values (absent options left out), checked against the spec."""
    args: dict[str, Any] = {}
    for arg in spec.args:
        value = values.get(arg.name)
        if arg.kind in ("int_list", "hex32_list"):
            value = _list_value(arg, value or ()) or None
        if arg.kind == "map" and isinstance(value, str):
            value = _map_value(arg, value)
        if arg.kind in ("hex32", "hex32_list") and value is not None:
            items = value if isinstance(value, list) else [value]
            items = [read_public_key_file(item) if item.startswith("@") else item for item in items]
            value = items if isinstance(value, list) else items[0]
        if value is not None:
            args[arg.name] = value
    validated = validate_arg_map(spec.name, spec.args, args)  # InvalidArgs (a one-line error) before signing
    if spec.check_args is not None:
        spec.check_args(validated)  # e.g. a proposal's action arguments
    return args


def submit_function(spec: FunctionSpec, values: dict[str, Any]) -> int:
    """Check, sign and submit a call of `spec` from option values (its arguments and signing_options());
    returns the exit status. The governance commands use it too (commands/gov.py)."""
    return _submit(spec, values)


def _submit(spec: FunctionSpec, values: dict[str, Any]) -> int:
    args = compute_args(spec, values)
    key = open_key(values["key"], values["passphrase_file"])
    node, wait, as_json, quiet = values["node"], values["wait"], values["as_json"], values["quiet"]

    async def submit() -> int:
        async with CarbonClient(node) as client:
            signer = await client.signer(
                org=values["sender"], key=key, validity_blocks=values["validity_blocks"]
            )
            tx = signer.build(spec.name, args)
            try:
                tx_id = await client.submit(tx)
            except TxRejected as exc:
                hint = describe_next_step(exc.code, values["sender"], values["key"])
                if hint is None:
                    raise
                raise TxRejected(exc.status, exc.code, f"{exc.message}; {hint}") from None
            if not wait:
                if quiet:
                    click.echo(tx_id)
                elif as_json:
                    echo_json({"tx_id": tx_id, "status": "pending"})
                else:
                    click.echo(f"accepted: tx {tx_id} (pending; pass --wait to wait for the commit)")
                return 0
            status = await client.wait_for_commit(tx_id, timeout_s=values["timeout_s"])
            result = await client.tx_result(status)
            document = {
                "tx_id": tx_id,
                "status": status.status,
                "height": status.height,
                "index": status.index,
                "code": status.code,
                "message": status.message,
                "events": result.get("events", []),
            }
            if as_json:
                echo_json(document)
            elif quiet and status.is_ok:
                click.echo(tx_id)
            else:
                _print_committed(document, err=quiet)
            return 0 if status.is_ok else 1

    return run_async(submit())


def describe_next_step(code: str, org: str, key_file: Path) -> str | None:
    """What to do about a rejected transaction, for the codes a user can act on."""
    if code == "unknown_sender":
        return (
            f"an admin of {org} enrols this key first: carbonchain tx enrol_key --as {org} --key "
            f"<{org}'s admin key file> --public-key @{key_file} --wait (carbonchain keys list --org {org} "
            f"{key_file} shows what the chain has enrolled)"
        )
    if code == "revoked_key":
        return (
            "revocation is final: make a new key (carbonchain keys new --out FILE) and have an admin of "
            f"{org} enrol it (carbonchain tx enrol_key --as {org} --public-key @FILE ...)"
        )
    if code in ("mempool_full", "not_ordering"):
        return "the node is busy: retry in a few seconds, or send it to another node with --node URL"
    if code == "expired":
        return "the chain moved past valid_until: send it again (a new transaction is built each time)"
    if code == "wrong_chain":
        return "the key and the node belong to different chains: check --node"
    return None


def _print_committed(document: dict[str, Any], *, err: bool = False) -> None:
    where = f"tx {document['tx_id']} at height {document['height']} (index {document['index']})"
    if document["code"] == "ok":
        click.echo(f"committed: {where}: ok", err=err)
    else:
        click.echo(f"committed but FAILED: {where}: {document['code']}: {document['message']}", err=err)
    for event in document["events"]:
        attrs = " ".join(f"{k}={format_cell(v, limit=None)}" for k, v in event.items() if k != "type")
        click.echo(f"  event {event.get('type')}: {attrs}", err=err)


def read_public_key_file(text: str) -> str:
    """`@FILE` names a key file: its public key (hex) is used, no passphrase needed."""
    path = Path(text[1:])
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return str(document["public_key"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise click.BadParameter(f"cannot read a public key from key file {path}: {exc}") from None


@click.group("tx", cls=NameGroup)
def tx_group() -> None:
    """Sign and submit chaincode transactions: one command per chaincode function."""


for _spec in FUNCTIONS.values():
    tx_group.add_command(build_tx_command(_spec))


@click.command("dev")
@click.argument("org")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Key file to write."
)
@click.option(
    "--client", "client_index", type=click.IntRange(0, 15), default=None, help="A client key j instead."
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def keys_dev(org: str, out: Path, client_index: int | None, force: bool) -> None:
    """Write ORG's well-known devnet key (INSECURE: anyone can derive it; devnet chains only).

    By default the organisation's admin key, which `carbonchain devnet` and `init-network --insecure-dev-keys`
    put into genesis; --client J writes the client key with label org/ORG/client-J (enrol it first).
    """
    if out.exists() and not force:
        raise click.UsageError(f"{out} exists (pass --force to overwrite)")
    key = dev_admin_key(org) if client_index is None else dev_client_key(org, client_index)
    kind = "admin" if client_index is None else f"client-{client_index}"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_key(out, key, label=f"{org} {kind} (insecure devnet key)")
    click.echo(f"wrote {out}: {org} {kind}, public key {key.public_key.hex()}")
    click.echo(f"key id: {compute_key_id(key.public_key)}   (insecure: for devnet chains only)")
