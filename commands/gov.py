"""`carbonchain gov`: governance proposals from the command line (docs/CHAINCODE.md section 12).

    carbonchain gov propose ACTION --OPTION value ... --expires-in 100   one command per action (chaincode.actions)
    carbonchain gov approve|reject|cancel PROPOSAL                        vote for the sender's organisation
    carbonchain gov list [--status open]                                  proposals, oldest first
    carbonchain gov show PROPOSAL                                         one proposal with its votes
    carbonchain gov prove-key --key NODE_KEY_FILE --org ORG [--replaces HEX]   a new validator key's proof

Signing options are those of `carbonchain tx` (--key, --as, --node, --wait, --json, --quiet, --timeout,
--validity-blocks, --passphrase-file); exit status 0 when the node accepted the transaction (without
--wait) or it committed with code "ok" (with --wait), 1 otherwise. The four-eyes approvals are
`carbonchain tx approve_request --request N` and `tx reject_request`; `carbonchain query requests` lists them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from chaincode import FUNCTIONS
from chaincode.actions import ACTIONS, Action
from chaincode.base import Arg
from client import CarbonClient
from commands.common import open_key, passphrase_file_option
from commands.query import (
    NameGroup,
    describe_arg_help,
    emit_result,
    format_table,
    node_option,
    option_name,
    render_text,
    run_async,
)
from commands.tx import read_public_key_file, signing_options, submit_function
from core.votes import compute_node_key_proof_digest

PROVE_WITH = "prove_with"


def _option(arg: Arg) -> click.Option:
    help_text = describe_arg_help(arg)
    if arg.kind in ("hex32", "hex32_list") and "key" in arg.name:
        help_text += "; @FILE takes the public key of a key file"
    if arg.kind == "hex32_list":
        return click.Option(
            [option_name(arg), arg.name], multiple=True, required=arg.required, help=help_text
        )
    kind: Any = click.STRING
    if arg.kind == "int":
        kind = click.IntRange(arg.minimum, arg.maximum)
    elif arg.kind == "enum":
        kind = click.Choice(list(arg.choices))
    required = arg.required and arg.name != "proof"  # a proof may come from --prove-with
    return click.Option([option_name(arg), arg.name], type=kind, required=required, help=help_text)


def _value(arg: Arg, value: Any) -> Any:
    """An option's text as the action's argument: key files read, lists split, parameter values typed."""
    if arg.kind == "hex32_list":
        items = [item.strip() for text in value for item in text.split(",") if item.strip()]
        return [read_public_key_file(item) if item.startswith("@") else item for item in items] or None
    if arg.kind == "hex32" and isinstance(value, str) and value.startswith("@"):
        return read_public_key_file(value)
    if arg.kind == "value" and isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value


def _build_propose(action: Action) -> click.Command:
    params: list[click.Parameter] = [_option(arg) for arg in action.args]
    if any(arg.name == "proof" for arg in action.args):
        params.append(
            click.Option(
                ["--prove-with", PROVE_WITH],
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="The new node key's file: makes --proof (the org is --org, else the validator's).",
            )
        )
    params.append(
        click.Option(
            ["--expires-in", "expires_in"],
            type=click.IntRange(1, 10**7),
            default=1000,
            show_default=True,
            help="The proposal can pass until this many blocks after the current height.",
        )
    )
    params += signing_options()

    def callback(expires_in: int, **values: Any) -> None:
        args = {arg.name: _value(arg, values.get(arg.name)) for arg in action.args}

        async def current() -> tuple[str, int]:
            async with CarbonClient(values["node"]) as client:
                status = await client.status()
                return str(status["chain_id"]), int(status["height"])

        chain_id, height = run_async(current())
        if args.get("proof") is None and values.get(PROVE_WITH) is not None:
            args["proof"] = run_async(_prove(action, args, chain_id, values))
        call = {
            "action": action.name,
            "args": {name: value for name, value in args.items() if value is not None},
            "expires_height": height + expires_in,
        }
        sys.exit(submit_function(FUNCTIONS["propose"], {**values, **call}))

    return click.Command(
        action.name,
        params=params,
        callback=callback,
        help=f"{action.description}\n\nDecided under the {action.policy!r} policy.",
        short_help=action.description,
    )


async def _prove(action: Action, args: dict[str, Any], chain_id: str, values: dict[str, Any]) -> str:
    """The proof of possession of the new node key, made with its key file (--prove-with)."""
    key = open_key(values[PROVE_WITH], values["passphrase_file"])
    rotating = action.name == "rotate_validator_key"
    if key.public_key.hex() != args["new_node_key" if rotating else "node_key"]:
        raise click.BadParameter("is not the key file of the new node key", param_hint="--prove-with")
    org = args.get("org")
    if rotating:  # the validator's organisation
        async with CarbonClient(values["node"]) as client:
            validators = (await client.query("validators"))["validators"]
        org = next((v["org"] for v in validators if v["node_key"] == args["node_key"]), None)
        if org is None:
            raise click.BadParameter("is not a validator's node key", param_hint="--node-key")
    replaces = bytes.fromhex(args["node_key"]) if rotating else None
    return key.sign(compute_node_key_proof_digest(chain_id, str(org), key.public_key, replaces)).hex()


@click.group("gov", cls=NameGroup)
def gov_group() -> None:
    """Governance: propose, approve, reject, cancel, list and show proposals."""


@gov_group.group("propose", cls=NameGroup)
def propose_group() -> None:
    """Propose a governance action (one command per action); proposing approves it for your organisation."""


for _action in ACTIONS.values():
    propose_group.add_command(_build_propose(_action))


def _build_vote(function: str, help_text: str) -> click.Command:
    def callback(proposal: int, **values: Any) -> None:
        sys.exit(submit_function(FUNCTIONS[function], {**values, "proposal": proposal}))

    params: list[click.Parameter] = [click.Argument(["proposal"], type=click.IntRange(1, 10**16 - 1))]
    return click.Command(function, params=params + signing_options(), callback=callback, help=help_text)


gov_group.add_command(
    _build_vote("approve", "Approve PROPOSAL for the sender's organisation (one vote each).")
)
gov_group.add_command(_build_vote("reject", "Reject PROPOSAL for the sender's organisation."))
gov_group.add_command(_build_vote("cancel", "Withdraw PROPOSAL (the proposing organisation only)."))


@gov_group.command("list")
@click.option(
    "--status", type=click.Choice(["open", "executed", "failed", "rejected", "cancelled", "expired"])
)
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@node_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def gov_list(status: str | None, limit: int, node: str, as_json: bool) -> None:
    """Proposals, oldest first, with their votes counted by organisation."""

    async def fetch() -> Any:
        async with CarbonClient(node) as client:
            params: dict[str, Any] = {"limit": limit}
            if status is not None:
                params["status"] = status
            return await client.query("proposals", **params)

    page = run_async(fetch())
    if as_json:
        emit_result("proposals", page, as_json=True, as_csv=False)
        return
    rows = [
        {
            "id": p["id"],
            "action": p["action"],
            "proposer": p["proposer"],
            "status": p["status"],
            "approvals": ",".join(v["org"] for v in p["approvals"]),
            "rejections": ",".join(v["org"] for v in p["rejections"]),
            "expires_height": p["expires_height"],
        }
        for p in page["items"]
    ]
    click.echo(format_table(rows))


@gov_group.command("show")
@click.argument("proposal", type=click.IntRange(1, 10**16 - 1))
@node_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def gov_show(proposal: int, node: str, as_json: bool) -> None:
    """One proposal: its action and arguments, its votes with the keys that signed them, how it ended."""

    async def fetch() -> Any:
        async with CarbonClient(node) as client:
            return await client.query("proposal", proposal=proposal)

    record = run_async(fetch())
    if as_json:
        emit_result("proposal", record, as_json=True, as_csv=False)
    else:
        click.echo(render_text(record))


@gov_group.command("prove-key")
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The new node key's file.",
)
@click.option("--org", required=True, help="The organisation that will operate the validator.")
@click.option("--replaces", default=None, help="For a rotation: the validator's current node key (hex).")
@click.option("--chain-id", default=None, help="The chain id (default: the node's).")
@node_option()
@passphrase_file_option()
def gov_prove_key(
    key_path: Path,
    org: str,
    replaces: str | None,
    chain_id: str | None,
    node: str,
    passphrase_file: Path | None,
) -> None:
    """Print the proof of possession of a new validator node key (the --proof of add_validator and
    rotate_validator_key): the key's signature of (chain id, org, key, the key it replaces)."""
    key = open_key(key_path, passphrase_file)
    if chain_id is None:

        async def fetch() -> str:
            async with CarbonClient(node) as client:
                return str((await client.status())["chain_id"])

        chain_id = run_async(fetch())
    try:
        old = None if replaces is None else bytes.fromhex(replaces)
    except ValueError:
        raise click.BadParameter("must be 64 hex digits", param_hint="--replaces") from None
    click.echo(key.sign(compute_node_key_proof_digest(chain_id, org, key.public_key, old)).hex())
