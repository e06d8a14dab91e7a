"""`carbonchain keys`: create, inspect and list Ed25519 key files."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import click

from client import CarbonClient
from commands.common import echo_json, open_key, passphrase_file_option, read_passphrase
from commands.query import CELL_CHARS_MAX, format_table, node_option, run_async
from core.keys import SigningKey, compute_key_id
from core.keystore import MAX_KEYSTORE_BYTES, is_encrypted_key_file, save_key

KEY_FILES_MAX = 1000  # files `keys list` looks at, at most
KEY_DIR_DEPTH_MAX = 4


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


@keys_group.command("list")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--org", help="Also show each key's status on chain for this organisation (needs --node).")
@node_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def keys_list(paths: tuple[Path, ...], org: str | None, node: str, as_json: bool) -> None:
    """List the key files in PATHS (files or folders, searched a few levels deep; default: .): label, key
    id, public key, encryption and file mode; with --org, whether the chain has each key enrolled for it.

    No passphrase is needed: only the public part of a file is read.
    """
    keys = find_key_files(paths or (Path("."),))
    if org is not None:
        enrolled = run_async(_enrolled_keys(node, org))
        for key in keys:
            record = enrolled.get(key["public_key"])
            if record is None:
                key["on_chain"] = f"not enrolled for {org}"
            else:
                kind = "admin" if record.get("admin") else "client"
                key["on_chain"] = f"{kind}, {record.get('status')}"
    if as_json:
        echo_json(keys)
        return
    if not keys:
        click.echo("no key files found (carbonchain keys new --out FILE writes one)")
        return
    rows = [
        {
            "file": _tail(key["file"]),
            "label": key["label"],
            "key_id": key["key_id"],
            "public_key": key["public_key"][:16] + "…",
            "encrypted": key["encrypted"],
            "mode": key["mode"] + ("" if key["private_mode"] else " (readable by others: chmod 600)"),
            **({"on_chain": key["on_chain"]} if org is not None else {}),
        }
        for key in keys
    ]
    click.echo(format_table(rows))


def _tail(path: str, chars: int = CELL_CHARS_MAX) -> str:
    """A long path shortened from the left, so that the file name stays visible in the table."""
    return path if len(path) <= chars else "…" + path[-(chars - 1) :]


async def _enrolled_keys(node: str, org: str) -> dict[str, dict[str, Any]]:
    async with CarbonClient(node) as client:
        page = await client.query_all("keys", "items", org=org)
    return {str(record["public_key"]): record for record in page["items"]}


def find_key_files(paths: tuple[Path, ...]) -> list[dict[str, Any]]:
    """The key files (carbonchain keystores) among `paths`, in path order; other files are skipped."""
    found: list[dict[str, Any]] = []
    candidates: list[Path] = []
    for path in paths:
        if path.is_dir():
            candidates += sorted(
                p for p in path.rglob("*.json") if len(p.relative_to(path).parts) <= KEY_DIR_DEPTH_MAX
            )
        else:
            candidates.append(path)
    for path in candidates[:KEY_FILES_MAX]:
        document = _read_public_part(path)
        if document is None:
            continue
        public_key = str(document["public_key"])
        mode = stat.S_IMODE(path.stat().st_mode)
        found.append(
            {
                "file": str(path),
                "label": str(document.get("label", "")),
                "public_key": public_key,
                "key_id": compute_key_id(bytes.fromhex(public_key)),
                "encrypted": "encryption" in document,
                "mode": f"{mode:04o}",
                "private_mode": not mode & (stat.S_IRWXG | stat.S_IRWXO),
            }
        )
    return found


def _read_public_part(path: Path) -> dict[str, Any] | None:
    try:
        if not path.is_file() or path.stat().st_size > MAX_KEYSTORE_BYTES:
            return None
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("kind") != "ed25519":
        return None
    public_key = document.get("public_key")
    if not isinstance(public_key, str) or len(public_key) != 64:
        return None
    try:
        bytes.fromhex(public_key)
    except ValueError:
        return None
    return document
