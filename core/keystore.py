"""JSON key files, optionally encrypted with a passphrase (scrypt + ChaCha20-Poly1305).

File format (version 1), written with mode 0600:
    {"version": 1, "kind": "ed25519", "public_key": hex, "label": str,
     "seed": hex}                                   # unencrypted
or  {..., "encryption": {"kdf": "scrypt", "n": int, "r": int, "p": int, "salt": hex,
                         "cipher": "chacha20-poly1305", "nonce": hex, "ciphertext": hex}}
The AEAD's associated data is the public key, so a ciphertext cannot be moved to another key's file.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from core.errors import KeystoreError, SignatureError
from core.keys import SigningKey

log = logging.getLogger(__name__)

KEYSTORE_VERSION = 1
PASSPHRASE_ENV = "CARBONCHAIN_PASSPHRASE"  # where nodes and the CLI look for a key passphrase
DEFAULT_SCRYPT_N = 2**15
MAX_KEYSTORE_BYTES = 64 * 1024


def save_key(
    path: Path,
    key: SigningKey,
    *,
    passphrase: str | None = None,
    label: str = "",
    scrypt_n: int = DEFAULT_SCRYPT_N,
) -> None:
    """Write a key file with mode 0600, atomically (write a temporary file, then rename)."""
    document: dict[str, Any] = {
        "version": KEYSTORE_VERSION,
        "kind": "ed25519",
        "public_key": key.public_key.hex(),
        "label": label,
    }
    if passphrase is None:
        document["seed"] = key.seed.hex()
    else:
        salt, nonce = os.urandom(16), os.urandom(12)
        secret = _derive(passphrase, salt, scrypt_n, 8, 1)
        ciphertext = ChaCha20Poly1305(secret).encrypt(nonce, key.seed, key.public_key)
        document["encryption"] = {
            "kdf": "scrypt",
            "n": scrypt_n,
            "r": 8,
            "p": 1,
            "salt": salt.hex(),
            "cipher": "chacha20-poly1305",
            "nonce": nonce.hex(),
            "ciphertext": ciphertext.hex(),
        }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a leftover temporary file
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")
    os.replace(temporary, path)


def is_encrypted_key_file(path: Path) -> bool:
    return "encryption" in _read_document(Path(path))


def load_key(path: Path, *, passphrase: str | None = None) -> SigningKey:
    """Read a key file; raises KeystoreError saying what is wrong (missing, corrupt, wrong passphrase)."""
    path = Path(path)
    document = _read_document(path)
    _warn_if_readable_by_others(path)
    try:
        if document.get("version") != KEYSTORE_VERSION or document.get("kind") != "ed25519":
            raise KeystoreError(f"{path}: unsupported key file version or kind")
        public_key = bytes.fromhex(document["public_key"])
        encryption = document.get("encryption")
        if encryption is None:
            seed = bytes.fromhex(document["seed"])
        else:
            if passphrase is None:
                raise KeystoreError(f"{path}: the key is encrypted; a passphrase is required")
            if encryption.get("kdf") != "scrypt" or encryption.get("cipher") != "chacha20-poly1305":
                raise KeystoreError(f"{path}: unsupported encryption scheme")
            n, r, p = int(encryption["n"]), int(encryption["r"]), int(encryption["p"])
            if not (2 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
                raise KeystoreError(f"{path}: scrypt parameters out of range")
            secret = _derive(passphrase, bytes.fromhex(encryption["salt"]), n, r, p)
            try:
                seed = ChaCha20Poly1305(secret).decrypt(
                    bytes.fromhex(encryption["nonce"]), bytes.fromhex(encryption["ciphertext"]), public_key
                )
            except InvalidTag:
                raise KeystoreError(
                    f"{path}: wrong passphrase, or a corrupt key file (ciphertext or parameters altered)"
                ) from None
        key = SigningKey(seed)
    except KeystoreError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, SignatureError) as exc:
        raise KeystoreError(f"{path}: corrupt key file ({type(exc).__name__}: {exc})") from None
    if key.public_key != public_key:
        raise KeystoreError(f"{path}: corrupt key file (the seed does not match the public key)")
    return key


def _read_document(path: Path) -> dict[str, Any]:
    try:
        size = path.stat().st_size
        if size > MAX_KEYSTORE_BYTES:
            raise KeystoreError(f"{path}: {size} bytes is too large for a key file")
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeystoreError(f"{path}: key file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeystoreError(f"{path}: corrupt key file ({exc})") from None
    if not isinstance(document, dict):
        raise KeystoreError(f"{path}: corrupt key file (not a JSON object)")
    return document


def _warn_if_readable_by_others(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "key file %s is accessible by group or others (mode %o); use chmod 600", path, mode & 0o777
        )


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))
