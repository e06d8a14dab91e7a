"""`carbonchain keys`: create and inspect Ed25519 key files."""

from __future__ import annotations

from pathlib import Path

import click

from commands.common import echo_json, open_key, passphrase_file_option, read_passphrase
from core.keys import SigningKey, compute_key_id
from core.keystore import is_encrypted_key_file, save_key


@click.group("keys")
def keys_group() -> None:
    """Create and inspect key files (JSON keystores, mode 0600)."""


@keys_group.command("new")
@click.option(
    "--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Key file to write."
)
@click.option("--label", default="", help="A note stored in the file, e.g. who the key belongs to.")
@click.option("--encrypt/--no-encrypt", default=True, show_default=True, help="Encrypt with a passphrase.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@passphrase_file_option()
def keys_new(out: Path, label: str, encrypt: bool, force: bool, passphrase_file: Path | None) -> None:
    """Generate a new key and write it to OUT."""
    if out.exists() and not force:
        raise click.UsageError(f"{out} exists (pass --force to overwrite)")
    passphrase = read_passphrase(passphrase_file, confirm=True) if encrypt else None
    key = SigningKey.generate()
    save_key(out, key, passphrase=passphrase, label=label)
    click.echo(f"wrote {out}")
    click.echo(f"public key: {key.public_key.hex()}")
    click.echo(f"key id:     {compute_key_id(key.public_key)}")


@keys_group.command("show")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@passphrase_file_option()
def keys_show(path: Path, as_json: bool, passphrase_file: Path | None) -> None:
    """Show a key file's public key (checks the passphrase of an encrypted file)."""
    key = open_key(path, passphrase_file)
    info = {
        "file": str(path),
        "public_key": key.public_key.hex(),
        "key_id": compute_key_id(key.public_key),
        "encrypted": is_encrypted_key_file(path),
    }
    if as_json:
        echo_json(info)
    else:
        for name, value in info.items():
            click.echo(f"{name + ':':12} {value}")
