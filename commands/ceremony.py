"""The genesis ceremony's commands (tools/ceremony.py; docs/OPERATIONS.md walks through them):

    member init --dir D --org ID --name N --role R [--validator PEER API]... [--observer API]...
                                       each member, on its own machine: keys and the public member file
    genesis assemble --member F... --chain-id C --out genesis.json
                                       the coordinator: the genesis from the member files
    genesis verify genesis.json --member D/member.json
                                       each member: its own entry is exactly right; the hash to compare
    node init --genesis genesis.json --member-dir D --home H
                                       each node operator: a node home from the genesis and its own key

No command reads another member's private key: the member file is public and the genesis is assembled
from member files only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from commands.common import passphrase_file_option, read_passphrase
from core.genesis import Role, genesis_to_json, load_genesis
from core.keys import compute_key_id
from tools.ceremony import (
    MEMBER_FILE,
    MemberFile,
    assemble_genesis,
    create_member,
    key_file_names,
    load_member,
    load_params,
    locate_member,
    write_member,
    write_node_home,
)

ROLES = click.Choice([role.value for role in Role])


@click.group("member")
def member_group() -> None:
    """A consortium member's own keys and public member file (the genesis ceremony)."""


@member_group.command("init")
@click.option("--dir", "folder", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The member's folder: keys/ (private, 0600) and member.json (public).")  # fmt: skip
@click.option("--org", "org_id", required=True, help="Organisation id, e.g. mee.")
@click.option("--name", required=True, help="The organisation's name.")
@click.option("--role", required=True, type=ROLES, help="The organisation's role.")
@click.option("--validator", "validators", type=(str, str), multiple=True, metavar="PEER_ADDRESS API_ADDRESS",
              help="Run a validator reachable at these host:port addresses (repeat for more).")  # fmt: skip
@click.option("--observer", "observers", multiple=True, metavar="API_ADDRESS",
              help="Run an observer with its API at this host:port (repeat for more).")  # fmt: skip
@click.option("--encrypt/--no-encrypt", default=True, show_default=True,
              help="Encrypt the admin and client keys with a passphrase.")  # fmt: skip
@click.option("--encrypt-node-keys", is_flag=True,
              help="Encrypt the node keys too (the node then needs $CARBONCHAIN_PASSPHRASE to start).")  # fmt: skip
@passphrase_file_option()
def member_init(
    folder: Path,
    org_id: str,
    name: str,
    role: str,
    validators: tuple[tuple[str, str], ...],
    observers: tuple[str, ...],
    encrypt: bool,
    encrypt_node_keys: bool,
    passphrase_file: Path | None,
) -> None:
    """Make this member's keys and its public member file, on this machine.

    Writes DIR/keys/{admin,client,node-K}.json (private: mode 0600, never leave this machine) and
    DIR/member.json (public: send it to the coordinator of the genesis).
    """
    if encrypt_node_keys and not encrypt:
        raise click.UsageError("--encrypt-node-keys needs --encrypt")
    member, keys = create_member(org_id, name, role, validators=list(validators), observers=list(observers))
    passphrase = read_passphrase(passphrase_file, confirm=True) if encrypt else None
    written = write_member(folder, member, keys, passphrase=passphrase, encrypt_node_keys=encrypt_node_keys)
    click.echo(f"member {org_id} ({role}): {_count(len(member.nodes), 'node')}")
    click.echo("private keys (mode 0600; they never leave this machine):")
    public = {"admin": keys.admin, "client": keys.client}
    public |= {f"node {i}": key for i, key in enumerate(keys.nodes)}
    for kind, path in written.items():
        encrypted = passphrase is not None and (not kind.startswith("node") or encrypt_node_keys)
        click.echo(
            f"  {path!s:28} {kind:8} key id {compute_key_id(public[kind].public_key)}"
            + ("  (encrypted)" if encrypted else "")
        )
    click.echo(
        f"public member file: {folder / MEMBER_FILE}   (send it to the coordinator; it holds no secret)"
    )


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}" + ("" if number == 1 else "s")


def _now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@click.command("assemble")
@click.option("--member", "member_files", required=True, multiple=True,
              type=click.Path(dir_okay=False, path_type=Path), help="A member file (repeat, one per member).")  # fmt: skip
@click.option("--chain-id", required=True, help="The chain's id, e.g. carbon-pilot.")
@click.option("--genesis-time", default=None, help="UTC, e.g. 2026-03-01T00:00:00Z (default: now).")
@click.option("--consensus", "consensus_file", type=click.Path(dir_okay=False, path_type=Path),
              help="A JSON object of consensus parameters (docs/OPERATIONS.md); defaults otherwise.")  # fmt: skip
@click.option("--chaincode", "chaincode_file", type=click.Path(dir_okay=False, path_type=Path),
              help='A JSON object of chaincode parameters, e.g. {"carbon": {...}}.')  # fmt: skip
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The genesis file to write."
)
@click.option("--force", is_flag=True, help="Overwrite --out.")
def genesis_assemble(
    member_files: tuple[Path, ...],
    chain_id: str,
    genesis_time: str | None,
    consensus_file: Path | None,
    chaincode_file: Path | None,
    out: Path,
    force: bool,
) -> None:
    """Assemble the genesis from the members' public member files (the coordinator's step).

    Validators and observers are numbered in the order of the --member options.
    """
    if out.exists() and not force:
        raise click.UsageError(f"{out} exists (pass --force to overwrite)")
    members = [(str(path), load_member(path)) for path in member_files]
    genesis = assemble_genesis(
        members,
        chain_id=chain_id,
        genesis_time=genesis_time or _now_utc(),
        consensus=None if consensus_file is None else load_params(consensus_file),
        chaincode=None if chaincode_file is None else load_params(chaincode_file),
    )
    out.write_text(genesis_to_json(genesis), encoding="utf-8")
    click.echo(f"wrote {out}: chain {genesis.chain_id}, genesis time {genesis.genesis_time}")
    for index, validator in enumerate(genesis.validators):
        click.echo(
            f"  validator {index}: {validator.org:12} peer {validator.peer_address}, api {validator.api_address}"
        )
    for index, observer in enumerate(genesis.observers):
        click.echo(f"  observer {index}:  {observer.org:12} api {observer.api_address}")
    click.echo(
        f"  {len(genesis.organisations)} organisations; {len(genesis.validators)} validators tolerate "
        f"{genesis.max_faulty} faulty"
    )
    click.echo(f"genesis hash: {genesis.genesis_hash.hex()}")
    click.echo(
        f"send {out} to every member; each checks it with `carbonchain genesis verify` and compares this hash"
    )


@click.command("verify")
@click.argument("genesis_path", metavar="GENESIS", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--member", "member_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Your own member file: the genesis must have you exactly as it says.")  # fmt: skip
def genesis_verify(genesis_path: Path, member_file: Path) -> None:
    """Check a genesis against your own member file, and print the genesis hash to compare out of band."""
    genesis = load_genesis(genesis_path)
    member = load_member(member_file)
    places = locate_member(genesis, member)
    org = member.org
    click.echo(
        f"{genesis_path}: organisation {org.id} ({org.role.value}) with its {_count(len(org.admin_keys), 'admin key')}"
    )
    for place in places:
        where = f"peer {place.node.peer_address}, " if place.node.peer_address else ""
        click.echo(f"  our {place.role} {place.index}: {where}api {place.node.api_address}")
    click.echo(
        f"chain {genesis.chain_id}: {len(genesis.validators)} validators (tolerate {genesis.max_faulty} faulty), "
        f"{len(genesis.observers)} observers, {len(genesis.organisations)} organisations"
    )
    click.echo(f"genesis hash: {genesis.genesis_hash.hex()}")
    click.echo("compare this hash with every other member (by phone, not by the channel the file came by)")


def node_home_options(node_index_flag: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options `node init` and `node join` share: the genesis, the member folder, the home to make,
    which of the member's nodes (`node_index_flag`), and the listen hosts."""

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option("--genesis", "genesis_path", required=True,
                         type=click.Path(dir_okay=False, path_type=Path)),
            click.option("--member-dir", "folder", required=True, type=click.Path(file_okay=False, path_type=Path),
                         help="Your member folder (member init --dir): its member.json and node key."),
            click.option("--home", required=True, type=click.Path(file_okay=False, path_type=Path),
                         help="The node home to make."),
            click.option(node_index_flag, "node_index", type=click.IntRange(0, 15), default=None,
                         help="Which of your nodes (as numbered in member.json), when you run several."),
            click.option("--peer-listen-host", default="0.0.0.0", show_default=True,
                         help="Where the peer port listens."),
            click.option("--api-listen-host", default="127.0.0.1", show_default=True,
                         help="Where the API listens (put a reverse proxy in front for anything public)."),
        ]  # fmt: skip
        for option in reversed(options):
            command = option(command)
        return command

    return apply


@click.command("init")
@node_home_options("--node")
def node_init(
    genesis_path: Path,
    folder: Path,
    home: Path,
    node_index: int | None,
    peer_listen_host: str,
    api_listen_host: str,
) -> None:
    """Make a node home from the genesis and your own node key (after `genesis verify`)."""
    genesis = load_genesis(genesis_path)
    member = load_member(folder / MEMBER_FILE)
    places = locate_member(genesis, member)
    index = choose_node(member, node_index)
    place = places[index]
    key_file = folder / key_file_names(member)[f"node {index}"]
    write_node_home(
        home, genesis, place, key_file, peer_listen_host=peer_listen_host, api_listen_host=api_listen_host
    )
    click.echo(f"node home {home}: {place.role} {place.index} of chain {genesis.chain_id}")
    click.echo(f"  genesis hash {genesis.genesis_hash.hex()}")
    click.echo(f"  start it: carbonchain node run --home {home}")


def choose_node(member: MemberFile, node_index: int | None) -> int:
    if not member.nodes:
        raise click.UsageError(f"member {member.org.id} runs no node (member init --validator/--observer)")
    if node_index is None:
        if len(member.nodes) > 1:
            raise click.UsageError(f"member {member.org.id} runs {len(member.nodes)} nodes: pass --node 0..")
        return 0
    if node_index >= len(member.nodes):
        raise click.UsageError(f"member {member.org.id} has nodes 0..{len(member.nodes) - 1}")
    return node_index
