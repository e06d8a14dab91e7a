"""The `carbonchain` command: node operation, keys, transactions, governance, queries and audit.

Errors print as one line saying what failed, never a traceback (set CARBONCHAIN_DEBUG=1 for one).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from core.errors import CarbonchainError

# Each command by name, with the subcommands other modules add to it ("module:attribute"). A command's
# module is imported only when that command runs (or for --help), so `carbonchain tx ...` does not pay for
# the audit, benchmark and ceremony code.
COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "keys": ("commands.keys:keys_group", ("commands.tx:keys_dev",)),
    "init-network": ("commands.network:init_network", ()),
    "genesis": (
        "commands.network:genesis_group",
        ("commands.ceremony:genesis_assemble", "commands.ceremony:genesis_verify"),
    ),
    "member": ("commands.ceremony:member_group", ()),
    "node": ("commands.run:node_group", ("commands.ceremony:node_init", "commands.join:node_join")),
    "devnet": ("commands.run:devnet", ()),
    "tx": ("commands.tx:tx_group", ("commands.chain:tx_show", "commands.tx_file:submit_file")),
    "gov": ("commands.gov:gov_group", ()),
    "query": ("commands.query:query_group", ()),
    "audit": ("commands.audit:audit_group", ()),
    "report": ("commands.report:report_group", ()),
    "status": ("commands.chain:status_command", ()),
    "block": ("commands.chain:block_command", ()),
    "bench": ("commands.bench:bench", ()),
}


def _load(target: str) -> click.Command:
    module, attribute = target.split(":")
    command = getattr(importlib.import_module(module), attribute)
    assert isinstance(command, click.Command), target
    return command


class _Cli(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        target, extras = entry
        command = _load(target)
        if isinstance(command, click.Group):
            for extra in extras:
                sub = _load(extra)
                command.commands.setdefault(sub.name or "", sub)
        return command

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
    from client import ApiError  # here, not at the top: only commands that talk to a node need the client
    from commands.query import NODE_ENV

    if isinstance(exc, ApiError) and exc.status == 0:
        return f" (is the node running? pass its API URL with --node URL or set {NODE_ENV})"
    return ""


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="carbonchain")
def main() -> None:
    """carbonchain: a permissioned PBFT ledger for consortium carbon markets."""


if __name__ == "__main__":
    main()
