"""Signed transactions (core.tx): signing, strict decoding, JSON form, tamper evidence and validation."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from core import codec
from core import tx as tx_module
from core.devkeys import dev_admin_key
from core.errors import TransactionError
from core.hashing import Domain, tagged_hash
from core.keys import SigningKey
from core.tx import (
    Rejection,
    SignedTx,
    TxBody,
    decode_transaction,
    sign_transaction,
    transaction_from_json,
    transaction_to_json,
    validate_transaction,
)

CHAIN = "carbon-devnet"
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493
KEY = dev_admin_key("ent-a")


def make_body(**changes: Any) -> TxBody:
    body = TxBody(
        chain_id=CHAIN,
        chaincode="carbon",
        function="transfer_allowances",
        args={"to": "ent-b", "amount": 5, "memo": "年度配额", "tags": ["a", None, True], "nested": {"k": -1}},
        sender_org="ent-a",
        sender_key=KEY.public_key,
        nonce=7,
        valid_until=100,
    )
    return dataclasses.replace(body, **changes)


def make_tx(**changes: Any) -> SignedTx:
    return sign_transaction(make_body(**changes), KEY)


@dataclass
class Context:
    chain_id: str = CHAIN
    next_height: int = 50
    tx_validity_blocks_max: int = 100
    committed: set[bytes] = field(default_factory=set)
    keys: dict[tuple[str, bytes], str] = field(default_factory=lambda: {("ent-a", KEY.public_key): "active"})

    def is_committed(self, tx_id: bytes) -> bool:
        return tx_id in self.committed

    def sender_key_status(self, org_id: str, public_key: bytes) -> str:
        return self.keys.get((org_id, public_key), "unknown")


def _raw(body_wire: Any, signature: bytes = b"\x00" * 64) -> bytes:
    return codec.encode({"body": codec.encode(body_wire), "signature": signature})


def _expect(code: str, call: Any, *fragments: str) -> TransactionError:
    with pytest.raises(TransactionError) as caught:
        call()
    assert caught.value.code == code, caught.value
    for fragment in fragments:
        assert fragment in caught.value.message, caught.value.message
    return caught.value


# --- signing and decoding ---------------------------------------------------------------------------------


def test_sign_decode_round_trip() -> None:
    tx = make_tx()
    decoded = decode_transaction(tx.raw)
    assert decoded == tx
    assert decoded.is_signature_valid()
    assert decoded.body.args["memo"] == "年度配额"
    validate_transaction(decoded, Context())


def test_wire_layout() -> None:
    tx = make_tx()
    assert codec.decode(tx.raw) == {"body": tx.body_bytes, "signature": tx.signature}
    assert codec.decode(tx.body_bytes) == tx.body.to_wire()
    assert tx.tx_id == tagged_hash(Domain.TX, tx.body_bytes)
    assert KEY.sign(tx.tx_id) == tx.signature


def test_json_round_trip() -> None:
    tx = make_tx()
    document = transaction_to_json(tx)
    assert document["body"]["sender_key"] == KEY.public_key.hex()
    assert document["signature"] == tx.signature.hex()
    again = transaction_from_json(document)
    assert again.raw == tx.raw
    assert again.tx_id == tx.tx_id


def test_json_rejects_bad_documents() -> None:
    document = transaction_to_json(make_tx())
    _expect(Rejection.MALFORMED, lambda: transaction_from_json({"body": document["body"]}))
    _expect(Rejection.MALFORMED, lambda: transaction_from_json([document]))
    bad_hex = {"body": document["body"], "signature": "zz"}
    _expect(Rejection.MALFORMED, lambda: transaction_from_json(bad_hex))
    float_body = {**document["body"], "nonce": 7.0}
    _expect(Rejection.MALFORMED, lambda: transaction_from_json({**document, "body": float_body}), "float")
    no_key = {k: v for k, v in document["body"].items() if k != "sender_key"}
    _expect(Rejection.MALFORMED, lambda: transaction_from_json({**document, "body": no_key}))


def test_tx_id_does_not_depend_on_signature_encoding() -> None:
    tx = make_tx()
    s = int.from_bytes(tx.signature[32:], "little")
    malleated = tx.signature[:32] + (s + GROUP_ORDER).to_bytes(32, "little")
    other = decode_transaction(codec.encode({"body": tx.body_bytes, "signature": malleated}))
    assert other.tx_id == tx.tx_id  # the id commits to the body only...
    assert not other.is_signature_valid()  # ...and the non-canonical signature is refused
    _expect(Rejection.BAD_SIGNATURE, lambda: validate_transaction(other, Context()))


def test_every_single_bit_flip_is_detected() -> None:
    tx = make_tx()
    for position in range(len(tx.raw)):
        for bit in range(8):
            tampered = bytearray(tx.raw)
            tampered[position] ^= 1 << bit
            try:
                decoded = decode_transaction(bytes(tampered))
            except TransactionError:
                continue
            assert not decoded.is_signature_valid(), (position, bit)
            assert decoded.tx_id != tx.tx_id or decoded.signature != tx.signature


# --- validation -------------------------------------------------------------------------------------------


def test_wrong_chain() -> None:
    tx = make_tx(chain_id="other-devnet")
    _expect(Rejection.WRONG_CHAIN, lambda: validate_transaction(tx, Context()), "other-devnet")


def test_bad_signature_from_another_key() -> None:
    tx = make_tx()
    forged = codec.encode({"body": tx.body_bytes, "signature": dev_admin_key("ent-b").sign(tx.tx_id)})
    _expect(Rejection.BAD_SIGNATURE, lambda: validate_transaction(decode_transaction(forged), Context()))


def test_signature_cache_hook() -> None:
    tx = make_tx()
    forged = decode_transaction(codec.encode({"body": tx.body_bytes, "signature": b"\x01" * 64}))
    # A caller that already verified the id may skip the check; it is then trusted.
    validate_transaction(forged, Context(), signature_checked=lambda _: True)
    _expect(
        Rejection.BAD_SIGNATURE,
        lambda: validate_transaction(forged, Context(), signature_checked=lambda _: False),
    )


def test_replay() -> None:
    tx = make_tx()
    context = Context(committed={tx.tx_id})
    _expect(Rejection.REPLAY, lambda: validate_transaction(tx, context), tx.tx_id.hex())


def test_expired() -> None:
    validate_transaction(make_tx(valid_until=50), Context(next_height=50))  # the last height it may enter
    _expect(Rejection.EXPIRED, lambda: validate_transaction(make_tx(valid_until=49), Context(next_height=50)))


def test_validity_too_long() -> None:
    validate_transaction(make_tx(valid_until=150), Context(next_height=50, tx_validity_blocks_max=100))
    _expect(
        Rejection.VALIDITY_TOO_LONG,
        lambda: validate_transaction(
            make_tx(valid_until=151), Context(next_height=50, tx_validity_blocks_max=100)
        ),
    )


def test_unknown_sender_and_revoked_key() -> None:
    tx = make_tx()
    _expect(Rejection.UNKNOWN_SENDER, lambda: validate_transaction(tx, Context(keys={})), "ent-a")
    revoked = Context(keys={("ent-a", KEY.public_key): "revoked"})
    _expect(Rejection.REVOKED_KEY, lambda: validate_transaction(tx, revoked), "ent-a")


def test_too_large() -> None:
    tx = make_tx(args={"blob": "x" * 2000})
    decode_transaction(tx.raw, tx_bytes_max=len(tx.raw))
    _expect(Rejection.TOO_LARGE, lambda: decode_transaction(tx.raw, tx_bytes_max=len(tx.raw) - 1))
    huge = sign_transaction(make_body(args={"blob": "x" * 70_000}), KEY)
    _expect(Rejection.TOO_LARGE, lambda: decode_transaction(huge.raw))


# --- malformed transactions (the outside-input path: raw bytes) --------------------------------------------


def _body_wire(**changes: Any) -> dict[str, Any]:
    wire = make_body().to_wire()
    for name, value in changes.items():
        if value is _DROP:
            del wire[name]
        else:
            wire[name] = value
    return wire


_DROP = object()


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"nonce": _DROP}, "missing ['nonce']"),
        ({"args": _DROP, "chain_id": _DROP}, "missing ['args', 'chain_id']"),
        ({"extra": 1}, "unexpected ['extra']"),
        ({"chain_id": 5}, "chain_id"),
        ({"chain_id": "Carbon Devnet"}, "chain_id"),
        ({"chain_id": ""}, "chain_id"),
        ({"chaincode": "Carbon"}, "chaincode"),
        ({"chaincode": b"carbon"}, "chaincode"),
        ({"function": "1transfer"}, "function"),
        ({"function": "a" * 65}, "function"),
        ({"function": "trans-fer"}, "function"),
        ({"function": "transfer\n"}, "function"),  # Python's "$" would accept a trailing newline
        ({"chaincode": "carbon\n"}, "chaincode"),
        ({"sender_org": "ent-a\n"}, "sender_org"),
        ({"chain_id": "carbon-devnet\n"}, "chain_id"),
        ({"sender_org": "ENT"}, "sender_org"),
        ({"sender_org": None}, "sender_org"),
        ({"sender_key": b"\x01" * 31}, "sender_key"),
        ({"sender_key": KEY.public_key.hex()}, "sender_key"),
        ({"nonce": -1}, "nonce"),
        ({"nonce": "7"}, "nonce"),
        ({"nonce": True}, "nonce"),
        ({"valid_until": -5}, "valid_until"),
        ({"valid_until": None}, "valid_until"),
        ({"args": [1, 2]}, "args"),
        ({"args": "x"}, "args"),
        ({"args": {"key": b"\x00"}}, "bytes"),
        ({"args": {"deep": [{"x": [b"\x00"]}]}}, "bytes"),
    ],
)
def test_malformed_body(changes: dict[str, Any], fragment: str) -> None:
    raw = _raw(_body_wire(**changes))
    _expect(Rejection.MALFORMED, lambda: decode_transaction(raw), fragment)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (codec.encode([1, 2]), "map of exactly"),
        (codec.encode({"body": b"", "signature": b"\x00" * 64, "x": 1}), "map of exactly"),
        (codec.encode({"body": "text", "signature": b"\x00" * 64}), "bytes"),
        (codec.encode({"body": codec.encode(_body_wire()), "signature": b"\x00" * 63}), "64 bytes"),
        (codec.encode({"body": codec.encode([1]), "signature": b"\x00" * 64}), "map"),
        (codec.encode({"body": b"\xcd\x00\x05", "signature": b"\x00" * 64}), "canonical"),
        (b"\x82\xa4body\xc4\x00\xa9signature\xc4\x40" + b"\x00" * 64 + b"\x00", "trailing"),
        (b"", "empty"),
    ],
)
def test_malformed_envelope(raw: bytes, fragment: str) -> None:
    _expect(Rejection.MALFORMED, lambda: decode_transaction(raw), fragment)


def test_non_canonical_body_bytes_rejected() -> None:
    # Keys of the body map out of order: a second encoding of the same body must not get another id.
    wire = _body_wire()
    unsorted = b"\x88" + b"".join(codec.encode(k) + codec.encode(wire[k]) for k in reversed(sorted(wire)))
    raw = codec.encode({"body": unsorted, "signature": b"\x00" * 64})
    _expect(Rejection.MALFORMED, lambda: decode_transaction(raw), "sorted")


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"args": {"price": 1.5}}, "float"),
        ({"args": {"blob": b"\x00"}}, "bytes"),
        ({"args": [1]}, ""),
        ({"nonce": -1}, "nonce"),
        ({"nonce": 2**64}, "outside"),
        ({"nonce": 2**70}, "outside"),
        ({"function": "Bad"}, "function"),
    ],
)
def test_sign_rejects_malformed_body(changes: dict[str, Any], fragment: str) -> None:
    _expect(Rejection.MALFORMED, lambda: sign_transaction(make_body(**changes), KEY), fragment)


def test_sign_requires_matching_key() -> None:
    _expect(Rejection.MALFORMED, lambda: sign_transaction(make_body(), SigningKey.from_insecure_label("x")))


def test_error_string_carries_code() -> None:
    error = _expect(Rejection.WRONG_CHAIN, lambda: validate_transaction(make_tx(chain_id="x"), Context()))
    assert str(error).startswith("wrong_chain: ")


# --- the envelope read by position (the decoder's fast path) ------------------------------------------------


@pytest.mark.parametrize("memo_chars", [0, 40, 150, 300, 20_000])  # bodies around the bin8 / bin16 limit
def test_the_envelope_read_by_position_gives_what_the_strict_decoder_gives(memo_chars: int) -> None:
    tx = make_tx(args={"memo": "m" * memo_chars})
    decoded = decode_transaction(tx.raw)
    assert (decoded.body_bytes, decoded.signature, decoded.tx_id, decoded.raw) == (
        tx.body_bytes,
        tx.signature,
        tx.tx_id,
        tx.raw,
    )
    assert tx_module._split_envelope(tx.raw) == tx_module._decode_envelope(tx.raw, 10**6)


def test_a_longer_bin_header_than_needed_is_refused() -> None:
    body = codec.encode(_body_wire())
    assert len(body) < 256  # so bin8 is the canonical header
    raw = b"\x82\xa4body\xc5" + len(body).to_bytes(2, "big") + body + b"\xa9signature\xc4\x40" + b"\x00" * 64
    assert tx_module._split_envelope(raw) is None
    _expect(Rejection.MALFORMED, lambda: decode_transaction(raw), "canonical")


def test_the_envelope_read_by_position_never_takes_bytes_the_strict_decoder_refuses() -> None:
    """Seeded mutations of a valid envelope (bytes changed, dropped and inserted): whatever the fast path
    takes, the strict decoder takes too, with the same parts."""
    rng = random.Random(7)
    base = make_tx().raw
    taken = 0
    for _ in range(20_000):
        mutated = bytearray(base)
        for _ in range(rng.randint(1, 3)):
            at, roll = rng.randrange(len(mutated)), rng.random()
            if roll < 0.5:
                mutated[at] = rng.randrange(256)
            elif roll < 0.75:
                del mutated[at]
            else:
                mutated.insert(at, rng.randrange(256))
        split = tx_module._split_envelope(bytes(mutated))
        if split is not None:
            taken += 1
            assert split == tx_module._decode_envelope(bytes(mutated), 10**6)
    assert taken > 0  # mutations inside the body and the signature keep the envelope's layout


def test_remembered_names_do_not_let_a_malformed_field_through() -> None:
    decode_transaction(make_tx().raw)  # its names are now remembered
    _expect(Rejection.MALFORMED, lambda: decode_transaction(_raw(_body_wire(sender_org="ENT"))), "sender_org")
    _expect(Rejection.MALFORMED, lambda: decode_transaction(_raw(_body_wire(function="Bad"))), "function")
    _expect(Rejection.MALFORMED, lambda: decode_transaction(_raw(_body_wire(chaincode=["x"]))), "chaincode")


def test_the_remembered_names_are_bounded() -> None:
    for n in range(tx_module.VALID_NAMES_MAX + 10):
        tx_module.validate_body(make_body(sender_org=f"ent-{n}"))
        assert len(tx_module._valid_names) <= tx_module.VALID_NAMES_MAX
