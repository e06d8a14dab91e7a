"""`carbonchain init-network` and `carbonchain genesis`: create and check networks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from core.genesis import load_genesis
from tools.netinit import DEVNET_GENESIS_TIME, build_network, write_network


@click.command("init-network")
@click.option("--validators", default=4, show_default=True, type=click.IntRange(1, 64))
@click.option("--observers", default=1, show_default=True, type=click.IntRange(0, 64))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--chain-id", default="carbon-devnet", show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Host in every node's addresses.")
@click.option(
    "--base-port", default=7100, show_default=True, type=int, help="Peer ports from here, API +100."
)
@click.option(
    "--insecure-dev-keys",
    is_flag=True,
    help="Derive every key from public labels (devnet chain ids only). Default: fresh random keys.",
)
@click.option("--force", is_flag=True, help="Replace a non-empty output folder.")
def init_network(
    validators: int,
    observers: int,
    out: Path,
    chain_id: str,
    host: str,
    base_port: int,
    insecure_dev_keys: bool,
    force: bool,
) -> None:
    """Write a complete network: genesis.json, one home per node, and every organisation's keys."""
    genesis_time = (
        DEVNET_GENESIS_TIME if insecure_dev_keys else datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    plan = build_network(
        validators=validators,
        observers=observers,
        chain_id=chain_id,
        genesis_time=genesis_time,
        host=host,
        base_port=base_port,
        insecure_dev_keys=insecure_dev_keys,
    )
    homes = write_network(plan, out, overwrite=force)
    click.echo(f"chain id:     {plan.genesis.chain_id}")
    click.echo(f"genesis hash: {plan.genesis.genesis_hash.hex()}")
    for home in homes:
        click.echo(f"node home:    {home}   (carbonchain node run --home {home})")
    click.echo(f"org keys:     {out / 'keys'}/<org>/{{admin,client}}.json")
    # Genesis names each organisation's admin keys; client keys are enrolled on chain by their own admin
    # (so every operational key has an enrolment anyone can audit). Say how, once, here.
    example = plan.genesis.organisations[0].id
    keys = out / "keys" / example
    click.echo(
        "client keys:  not enrolled yet; once the network runs, each organisation's admin enrols its own:"
    )
    click.echo(
        f"              carbonchain tx enrol_key --as {example} --key {keys / 'admin.json'} "
        f"--public-key @{keys / 'client.json'} --wait"
    )


@click.group("genesis")
def genesis_group() -> None:
    """Assemble, verify and validate genesis files."""


@genesis_group.command("validate")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def genesis_validate(path: Path) -> None:
    """Validate a genesis file and print its identity."""
    genesis = load_genesis(path)
    click.echo(f"valid: chain id {genesis.chain_id}, genesis hash {genesis.genesis_hash.hex()}")
    click.echo(
        f"{len(genesis.validators)} validators (tolerates {genesis.max_faulty} faulty), "
        f"{len(genesis.observers)} observers, {len(genesis.organisations)} organisations"
    )
