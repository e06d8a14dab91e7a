"""Options and helpers shared by CLI commands: passphrases, key loading, printing."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from core.keys import SigningKey
from core.keystore import PASSPHRASE_ENV, is_encrypted_key_file, load_key


def read_passphrase(
    passphrase_file: Path | None, *, confirm: bool = False, prompt: bool = True
) -> str | None:
    """A passphrase from a file, else the environment, else an interactive prompt (if allowed)."""
    if passphrase_file is not None:
        return Path(passphrase_file).read_text(encoding="utf-8").rstrip("\n")
    if PASSPHRASE_ENV in os.environ:
        return os.environ[PASSPHRASE_ENV]
    if prompt:
        return str(click.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm))
    return None


def open_key(path: Path, passphrase_file: Path | None = None) -> SigningKey:
    """Load a key file, asking for the passphrase only when the file is encrypted."""
    passphrase = read_passphrase(passphrase_file) if is_encrypted_key_file(path) else None
    return load_key(path, passphrase=passphrase)


def passphrase_file_option() -> Any:
    return click.option(
        "--passphrase-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help=f"Read the key passphrase from this file (else ${PASSPHRASE_ENV}, else a prompt).",
    )


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))
