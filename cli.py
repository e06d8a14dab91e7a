"""The `carbonchain` command: node operation, keys, transactions, governance, queries and audit.

Errors print as one line saying what failed, never a traceback (set CARBONCHAIN_DEBUG=1 for one).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from client import ApiError
from commands.audit import audit_group
from commands.bench import bench
from commands.ceremony import genesis_assemble, genesis_verify, member_group, node_init
from commands.chain import block_command, status_command, tx_show
from commands.gov import gov_group
from commands.join import node_join
from commands.keys import keys_group
from commands.network import genesis_group, init_network
from commands.query import NODE_ENV, query_group
from commands.report import report_group
from commands.run import devnet, node_group
from commands.tx import keys_dev, tx_group
from commands.tx_file import submit_file
from core.errors import CarbonchainError


class _Cli(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CarbonchainError as exc:
            if os.environ.get("CARBONCHAIN_DEBUG"):
                raise
            click.echo(f"error: {exc}{_next_step(exc)}", err=True)
            sys.exit(1)


def _next_step(exc: CarbonchainError) -> str:
    """What to try next, for the errors every command can meet."""
    if isinstance(exc, ApiError) and exc.status == 0:
        return f" (is the node running? pass its API URL with --node URL or set {NODE_ENV})"
    return ""


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="carbonchain")
def main() -> None:
    """carbonchain: a permissioned PBFT ledger for consortium carbon markets."""


main.add_command(keys_group)
main.add_command(init_network)
main.add_command(genesis_group)
main.add_command(member_group)
genesis_group.add_command(genesis_assemble)
genesis_group.add_command(genesis_verify)
main.add_command(node_group)
node_group.add_command(node_init)
node_group.add_command(node_join)
main.add_command(devnet)
main.add_command(tx_group)
main.add_command(gov_group)
main.add_command(query_group)
main.add_command(audit_group)
main.add_command(report_group)
keys_group.add_command(keys_dev)
tx_group.add_command(tx_show)
tx_group.add_command(submit_file)
main.add_command(status_command)
main.add_command(block_command)
main.add_command(bench)


if __name__ == "__main__":
    main()
