"""JSON key files (core.keystore): round trips, encryption, corruption, file modes, no secrets in logs."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from core.errors import KeystoreError
from core.keys import SigningKey
from core.keystore import is_encrypted_key_file, load_key, save_key

FAST_N = 2**10  # keeps scrypt cheap in tests; the default is 2**15


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.from_insecure_label("keystore-test")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _rewrite(path: Path, change: Any) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    os.chmod(path, 0o600)


def test_round_trip_unencrypted(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "k.json"
    save_key(path, key, label="node 0")
    assert not is_encrypted_key_file(path)
    loaded = load_key(path)
    assert loaded.seed == key.seed and loaded.public_key == key.public_key
    document = json.loads(path.read_text())
    assert document == {
        "version": 1,
        "kind": "ed25519",
        "public_key": key.public_key.hex(),
        "label": "node 0",
        "seed": key.seed.hex(),
    }


def test_round_trip_encrypted(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "k.json"
    save_key(path, key, passphrase="correct horse", scrypt_n=FAST_N)
    assert is_encrypted_key_file(path)
    text = path.read_text()
    assert key.seed.hex() not in text
    document = json.loads(text)
    assert "seed" not in document
    assert document["encryption"]["n"] == FAST_N
    assert load_key(path, passphrase="correct horse").seed == key.seed


def test_unicode_passphrase(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "k.json"
    save_key(path, key, passphrase="密码-пароль", scrypt_n=FAST_N)
    assert load_key(path, passphrase="密码-пароль").public_key == key.public_key


def test_wrong_passphrase(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "k.json"
    save_key(path, key, passphrase="right", scrypt_n=FAST_N)
    with pytest.raises(KeystoreError, match="wrong passphrase"):
        load_key(path, passphrase="wrong")


def test_missing_passphrase(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "k.json"
    save_key(path, key, passphrase="right", scrypt_n=FAST_N)
    with pytest.raises(KeystoreError, match="passphrase is required"):
        load_key(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="not found"):
        load_key(tmp_path / "absent.json")


@pytest.mark.parametrize(
    "corruption",
    [
        pytest.param(lambda d: d.pop("public_key"), id="missing-public-key"),
        pytest.param(lambda d: d.pop("seed"), id="missing-seed"),
        pytest.param(lambda d: d.update(seed="zz"), id="seed-not-hex"),
        pytest.param(lambda d: d.update(seed="00" * 31), id="seed-short"),
        pytest.param(lambda d: d.update(seed=None), id="seed-null"),
        pytest.param(lambda d: d.update(public_key=5), id="public-key-int"),
        pytest.param(lambda d: d.update(seed="11" * 32), id="seed-not-matching"),
        pytest.param(lambda d: d.update(public_key="22" * 32), id="public-key-not-matching"),
        pytest.param(lambda d: d.update(encryption="x"), id="encryption-not-object"),
    ],
)
def test_corrupt_unencrypted(tmp_path: Path, key: SigningKey, corruption: Any) -> None:
    path = tmp_path / "k.json"
    save_key(path, key)
    _rewrite(path, corruption)
    with pytest.raises(KeystoreError, match="corrupt"):
        load_key(path, passphrase="p")


def _flip_hex(text: str) -> str:
    raw = bytearray(bytes.fromhex(text))
    raw[0] ^= 0x01
    return raw.hex()


@pytest.mark.parametrize(
    "corruption",
    [
        pytest.param(
            lambda d: d["encryption"].update(ciphertext=_flip_hex(d["encryption"]["ciphertext"])),
            id="ciphertext-altered",
        ),
        pytest.param(lambda d: d["encryption"].update(nonce=_flip_hex(d["encryption"]["nonce"])), id="nonce"),
        pytest.param(lambda d: d["encryption"].update(salt=_flip_hex(d["encryption"]["salt"])), id="salt"),
        pytest.param(lambda d: d["encryption"].update(ciphertext="zz"), id="ciphertext-not-hex"),
        pytest.param(lambda d: d["encryption"].update(ciphertext=""), id="ciphertext-empty"),
        pytest.param(lambda d: d["encryption"].update(nonce="00"), id="nonce-short"),
        pytest.param(lambda d: d["encryption"].pop("salt"), id="missing-salt"),
        pytest.param(lambda d: d["encryption"].update(n=1e999), id="n-infinite"),
        pytest.param(lambda d: d["encryption"].update(n="many"), id="n-string"),
        pytest.param(
            lambda d: d.update(public_key=SigningKey.from_insecure_label("x").public_key.hex()), id="moved"
        ),
    ],
)
def test_corrupt_encrypted(tmp_path: Path, key: SigningKey, corruption: Any) -> None:
    path = tmp_path / "k.json"
    save_key(path, key, passphrase="p", scrypt_n=FAST_N)
    _rewrite(path, corruption)
    with pytest.raises(KeystoreError, match="corrupt"):
        load_key(path, passphrase="p")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["encryption"].update(n=3), "scrypt parameters"),
        (lambda d: d["encryption"].update(n=2**21), "scrypt parameters"),
        (lambda d: d["encryption"].update(r=0), "scrypt parameters"),
        (lambda d: d["encryption"].update(kdf="argon2"), "unsupported encryption"),
        (lambda d: d.update(version=2), "unsupported key file version"),
        (lambda d: d.update(kind="secp256k1"), "unsupported key file version"),
    ],
)
def test_unsupported_parameters(tmp_path: Path, key: SigningKey, change: Any, message: str) -> None:
    path = tmp_path / "k.json"
    save_key(path, key, passphrase="p", scrypt_n=FAST_N)
    _rewrite(path, change)
    with pytest.raises(KeystoreError, match=message):
        load_key(path, passphrase="p")


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '"a string"', "", "\xff"])
def test_bad_json(tmp_path: Path, text: str) -> None:
    path = tmp_path / "k.json"
    path.write_text(text, encoding="latin-1")
    with pytest.raises(KeystoreError, match="corrupt"):
        load_key(path)


def test_oversized_file(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    path.write_text(" " * (65 * 1024))
    with pytest.raises(KeystoreError, match="too large"):
        load_key(path)


def test_written_with_mode_0600(tmp_path: Path, key: SigningKey) -> None:
    path = tmp_path / "sub" / "k.json"
    save_key(path, key)
    assert _mode(path) == 0o600
    save_key(path, key, passphrase="p", scrypt_n=FAST_N)
    assert _mode(path) == 0o600
    assert not (tmp_path / "sub" / "k.json.tmp").exists()


def test_mode_0600_despite_leftover_temporary(tmp_path: Path, key: SigningKey) -> None:
    leftover = tmp_path / "k.json.tmp"
    leftover.write_text("partial write from a crash")
    os.chmod(leftover, 0o644)
    save_key(tmp_path / "k.json", key)
    assert _mode(tmp_path / "k.json") == 0o600


def test_mode_0600_despite_permissive_umask(tmp_path: Path, key: SigningKey) -> None:
    previous = os.umask(0)
    try:
        save_key(tmp_path / "k.json", key)
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "k.json") == 0o600


def test_group_readable_file_warns(tmp_path: Path, key: SigningKey, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "k.json"
    save_key(path, key)
    with caplog.at_level(logging.WARNING, logger="core.keystore"):
        load_key(path)
    assert not caplog.records
    os.chmod(path, 0o640)
    with caplog.at_level(logging.WARNING, logger="core.keystore"):
        load_key(path)
    assert any("chmod 600" in record.getMessage() for record in caplog.records)
    assert all(key.seed.hex() not in record.getMessage() for record in caplog.records)


def test_secrets_never_in_repr_or_errors(tmp_path: Path, key: SigningKey) -> None:
    assert key.seed.hex() not in repr(key)
    assert key.seed.hex() not in str(key)
    path = tmp_path / "k.json"
    save_key(path, key)
    _rewrite(path, lambda d: d.update(public_key="22" * 32))
    with pytest.raises(KeystoreError) as caught:
        load_key(path)
    assert key.seed.hex() not in str(caught.value)
