"""`carbonchain node join`: the home of a validator that governance added after genesis.

The member makes its keys as at genesis (`member init --validator`), has a member of the consortium propose
`add_validator` with its node key and a proof of it (`gov propose add-validator --prove-with`), and once
the proposal is approved runs this against any node of the network: the node's number and first peers come
from that node's `validators` query, everything the new validator accepts afterwards from the chain itself,
verified from the genesis on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from client import CarbonClient
from commands.ceremony import choose_node, node_home_options
from commands.query import node_option, run_async
from core.genesis import load_genesis
from p2p.identity import ValidatorEntry
from tools.ceremony import MEMBER_FILE, NodePlace, key_file_names, load_member, write_node_home


@click.command("join")
@node_home_options("--node-index")
@node_option()
def node_join(
    genesis_path: Path,
    folder: Path,
    home: Path,
    node: str,
    node_index: int | None,
    peer_listen_host: str,
    api_listen_host: str,
) -> None:
    """Make the home of a validator added after genesis, once its add_validator change is approved."""
    genesis = load_genesis(genesis_path)
    member = load_member(folder / MEMBER_FILE)
    index = choose_node(member, node_index)
    ours = member.nodes[index]
    if ours.role != "validator":
        raise click.UsageError(
            "node join is for validators; an observer is listed in the genesis (node init)"
        )
    status, answer = run_async(_fetch(node))
    if status["genesis_hash"] != genesis.genesis_hash.hex():
        raise click.UsageError(f"{node} serves another chain ({status['chain_id']}) than this genesis")
    try:  # the node's answer is input like any other: one line, not a traceback, if it is malformed
        validators = admitted_validators(answer)
    except (KeyError, TypeError, ValueError) as exc:
        raise click.ClickException(
            f"{node} answered the validators query with a malformed set: {exc!r}"
        ) from None
    number = next((v.number for v in validators if v.node_key.hex() == ours.node_key), None)
    if number is None:
        raise click.UsageError(
            f"node key {ours.node_key[:16]}… is neither in the validator set nor in an approved change: "
            "have a member propose add_validator for it (carbonchain gov propose add-validator) and wait "
            "until the proposal is approved"
        )
    key_file = folder / key_file_names(member)[f"node {index}"]
    place = NodePlace("validator", number, ours)
    write_node_home(
        home,
        genesis,
        place,
        key_file,
        peer_listen_host=peer_listen_host,
        api_listen_host=api_listen_host,
        validators=validators,
    )
    pending = answer.get("pending")
    click.echo(f"node home {home}: validator {number} of chain {genesis.chain_id}")
    if pending is not None and any(v["number"] == number for v in pending["validators"]):
        click.echo(f"  it votes from height {pending['activation_height'] + 1} (the change's activation)")
    click.echo(f"  start it now to catch up: carbonchain node run --home {home}")


async def _fetch(url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    async with CarbonClient(url) as client:
        status = await client.status()
        answer = await client.query("validators")
    return status, answer


def admitted_validators(answer: dict[str, Any]) -> list[ValidatorEntry]:
    """The set in force and an approved change's new members, from a `validators` query answer (the set in
    force wins for a number listed in both, as node/roster.py decides)."""
    by_number: dict[int, ValidatorEntry] = {}
    pending = answer.get("pending") or {"validators": []}
    for entry in [*pending["validators"], *answer["validators"]]:
        by_number[entry["number"]] = ValidatorEntry(
            entry["number"], bytes.fromhex(entry["node_key"]), entry["peer_address"]
        )
    return [by_number[number] for number in sorted(by_number)]
