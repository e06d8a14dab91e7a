"""Ed25519 keys and signatures.

Signing uses the `cryptography` package; verification uses libsodium through PyNaCl, which measured about
twice as fast on our machines (docs/PERFORMANCE.md) and rejects non-canonical signatures (S >= L) and
small-order public keys. A key is stored as its 32-byte seed; public keys travel as 32 raw bytes
(hex in JSON).
"""

from __future__ import annotations

import hashlib
import os

import nacl.bindings
import nacl.exceptions
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.errors import SignatureError
from core.hashing import Domain, tagged_hash

PUBLIC_KEY_BYTES = 32
SEED_BYTES = 32
SIGNATURE_BYTES = 64


class SigningKey:
    """An Ed25519 private key. Never log it; `repr` shows only the public key."""

    __slots__ = ("_private", "public_key", "seed")

    def __init__(self, seed: bytes) -> None:
        if type(seed) is not bytes or len(seed) != SEED_BYTES:
            raise SignatureError(f"an Ed25519 seed is {SEED_BYTES} bytes")
        self.seed = seed
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key: bytes = self._private.public_key().public_bytes_raw()

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(os.urandom(SEED_BYTES))

    @classmethod
    def from_insecure_label(cls, label: str) -> SigningKey:
        """A key anyone can derive from a public label: for devnets and tests only (see core.devkeys)."""
        return cls(hashlib.sha256(b"carbonchain insecure dev seed\x00" + label.encode()).digest())

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey(public_key={self.public_key.hex()})"


def is_valid_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when `signature` is a canonical Ed25519 signature of `message` by `public_key`."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError, TypeError):
        return False
    return True


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Raise SignatureError unless the signature verifies."""
    if not is_valid_signature(public_key, message, signature):
        raise SignatureError("signature does not verify")


def compute_key_id(public_key: bytes) -> str:
    """A short, stable, printable name for a public key: 16 hex digits of its tagged hash."""
    return tagged_hash(Domain.KEY_ID, public_key)[:8].hex()


def parse_public_key(text: str) -> bytes:
    """A public key from its 64-digit hex form; raises SignatureError naming the problem."""
    try:
        raw = bytes.fromhex(text)
    except (ValueError, TypeError):
        raise SignatureError("public key is not hex") from None
    if len(raw) != PUBLIC_KEY_BYTES:
        raise SignatureError(f"public key is {len(raw)} bytes, expected {PUBLIC_KEY_BYTES}")
    return raw
