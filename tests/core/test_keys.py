"""Ed25519 keys and signatures (core.keys)."""

from __future__ import annotations

import pytest

from core.errors import SignatureError
from core.hashing import Domain, tagged_hash
from core.keys import (
    SigningKey,
    compute_key_id,
    is_valid_signature,
    parse_public_key,
    verify_signature,
)

# The order of the Ed25519 group (RFC 8032, "L").
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493


def test_sign_and_verify() -> None:
    key = SigningKey.from_insecure_label("test-signer")
    signature = key.sign(b"message")
    assert len(signature) == 64
    assert is_valid_signature(key.public_key, b"message", signature)
    verify_signature(key.public_key, b"message", signature)


def test_signing_is_deterministic() -> None:
    key = SigningKey.from_insecure_label("test-signer")
    assert key.sign(b"m") == key.sign(b"m")


def test_wrong_message_or_key_rejected() -> None:
    key = SigningKey.from_insecure_label("a")
    other = SigningKey.from_insecure_label("b")
    signature = key.sign(b"message")
    assert not is_valid_signature(key.public_key, b"messagE", signature)
    assert not is_valid_signature(other.public_key, b"message", signature)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_signature(other.public_key, b"message", signature)


def test_non_canonical_signature_rejected() -> None:
    key = SigningKey.from_insecure_label("malleable")
    signature = key.sign(b"message")
    s = int.from_bytes(signature[32:], "little")
    malleated = signature[:32] + (s + GROUP_ORDER).to_bytes(32, "little")
    assert malleated != signature
    assert not is_valid_signature(key.public_key, b"message", malleated)


def test_truncated_and_extended_signatures_rejected() -> None:
    key = SigningKey.from_insecure_label("a")
    signature = key.sign(b"message")
    assert not is_valid_signature(key.public_key, b"message", signature[:63])
    assert not is_valid_signature(key.public_key, b"message", signature + b"\x00")
    assert not is_valid_signature(key.public_key, b"message", b"")
    assert not is_valid_signature(key.public_key[:31], b"message", signature)


def test_small_order_public_key_rejected() -> None:
    identity_point = b"\x01" + b"\x00" * 31  # the neutral element: any "signature" would pass a naive check
    assert not is_valid_signature(identity_point, b"message", identity_point + b"\x00" * 32)


def test_seed_must_be_32_bytes() -> None:
    with pytest.raises(SignatureError):
        SigningKey(b"\x00" * 31)
    with pytest.raises(SignatureError):
        SigningKey("00" * 32)  # type: ignore[arg-type]


def test_generated_keys_differ() -> None:
    assert SigningKey.generate().public_key != SigningKey.generate().public_key


def test_repr_hides_seed() -> None:
    key = SigningKey.from_insecure_label("secret")
    assert key.seed.hex() not in repr(key)
    assert key.public_key.hex() in repr(key)


def test_key_id() -> None:
    key = SigningKey.from_insecure_label("a")
    assert compute_key_id(key.public_key) == tagged_hash(Domain.KEY_ID, key.public_key)[:8].hex()
    assert len(compute_key_id(key.public_key)) == 16


def test_parse_public_key() -> None:
    key = SigningKey.from_insecure_label("a")
    assert parse_public_key(key.public_key.hex()) == key.public_key
    with pytest.raises(SignatureError, match="not hex"):
        parse_public_key("zz")
    with pytest.raises(SignatureError, match="31 bytes"):
        parse_public_key("00" * 31)
