"""`carbonchain node run` and `carbonchain devnet`: run one node, or a whole local network."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from core.genesis import load_genesis
from tools.devnet import prepare_homes, start_nodes, supervise
from tools.netinit import DEVNET_GENESIS_TIME, build_network

LOG_FORMATS = click.Choice(["text", "json"])


@click.group("node")
def node_group() -> None:
    """Make a node home (node init) and run a node (node run)."""


@node_group.command("run")
@click.option("--home", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--log-format", type=LOG_FORMATS, default=None, help="Overrides [log] format in config.toml.")
def node_run(home: Path, log_format: str | None) -> None:
    """Run one node (validator or observer) from its home (node init, init-network) until SIGTERM or Ctrl-C."""
    from node.runtime import run_node

    sys.exit(run_node(home, log_format=log_format))


@click.command("devnet")
@click.option(
    "--genesis",
    "genesis_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A devnet genesis (well-known dev keys). Default: one made for --validators/--observers.",
)
@click.option("--validators", default=4, show_default=True, type=click.IntRange(1, 16))
@click.option("--observers", default=1, show_default=True, type=click.IntRange(0, 8))
@click.option(
    "--home", default=Path(".devnet"), show_default=True, type=click.Path(file_okay=False, path_type=Path)
)
@click.option("--reset", is_flag=True, help="Delete the devnet's data and start from genesis.")
@click.option("--log-format", type=LOG_FORMATS, default="text", show_default=True)
@click.option(
    "--demo",
    is_flag=True,
    help="Once all nodes are live, run a scripted compliance year and print its report.",
)
def devnet(
    genesis_path: Path | None,
    validators: int,
    observers: int,
    home: Path,
    reset: bool,
    log_format: str,
    demo: bool,
) -> None:
    """Run a local network, one OS process per node on 127.0.0.1; Ctrl-C stops every node cleanly."""
    if genesis_path is not None:
        genesis = load_genesis(genesis_path)
    else:
        genesis = build_network(
            validators=validators,
            observers=observers,
            chain_id="carbon-devnet",
            genesis_time=DEVNET_GENESIS_TIME,
            insecure_dev_keys=True,
        ).genesis
    nodes = prepare_homes(genesis, home, reset=reset)
    click.echo(
        f"devnet {genesis.chain_id}: {len(genesis.validators)} validators, {len(genesis.observers)} observers"
    )
    start_nodes(nodes, log_format=log_format)
    api_url = nodes[0].api_url

    def run_demo() -> None:
        from commands.report import run_demo_and_print

        run_demo_and_print(api_url, genesis)

    sys.exit(supervise(nodes, after_ready=run_demo if demo else None))
