"""The signed transaction envelope: build, sign, decode, convert to and from JSON, and validate.

Wire form (canonical msgpack): {"body": bin, "signature": bin(64)}, where "body" holds the canonical encoding
of the body map. The transaction id is H(tx, body bytes) and the signature is Ed25519 over that id, so the id
never changes with how a signature is encoded (docs/RELIABILITY.md item 6).

Replay protection is by unique ids within a validity window: a body names `valid_until`, the last height at
which it may be included (at most `tx_validity_blocks_max` ahead of the chain), and a node rejects an id that
is already committed. `nonce` is any uint64 the client picks so that otherwise equal bodies differ.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from core import codec
from core.errors import CodecError, TransactionError
from core.hashing import Domain, tagged_hash
from core.keys import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, SigningKey, is_valid_signature

DEFAULT_TX_BYTES_MAX = 64 * 1024
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
ORG_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
CHAIN_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
UINT64_MAX = 2**64 - 1

_BODY_FIELDS = (
    "args",
    "chain_id",
    "chaincode",
    "function",
    "nonce",
    "sender_key",
    "sender_org",
    "valid_until",
)


class Rejection:
    """Stable reason codes of TransactionError; clients may switch on them."""

    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    WRONG_CHAIN = "wrong_chain"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    VALIDITY_TOO_LONG = "validity_too_long"
    REPLAY = "replay"
    UNKNOWN_SENDER = "unknown_sender"
    REVOKED_KEY = "revoked_key"


@dataclass(frozen=True, slots=True)
class TxBody:
    chain_id: str  # the chain this transaction is valid on
    chaincode: str  # which chaincode handles it, e.g. "carbon"
    function: str  # the chaincode function, e.g. "transfer_allowances"
    args: Mapping[
        str, Any
    ]  # JSON-compatible arguments: int, str, bool, None, list, map (no bytes, no floats)
    sender_org: str  # organisation id of the signer
    sender_key: bytes  # the signer's 32-byte Ed25519 public key, enrolled for sender_org
    nonce: int  # client-chosen uint64 that makes equal bodies distinct
    valid_until: int  # last block height at which the transaction may be included

    def to_wire(self) -> dict[str, Any]:
        return {
            "args": dict(self.args),
            "chain_id": self.chain_id,
            "chaincode": self.chaincode,
            "function": self.function,
            "nonce": self.nonce,
            "sender_key": self.sender_key,
            "sender_org": self.sender_org,
            "valid_until": self.valid_until,
        }


@dataclass(frozen=True, slots=True)
class SignedTx:
    body: TxBody
    body_bytes: bytes  # canonical encoding of the body: what the id commits to
    signature: bytes  # Ed25519 signature over tx_id
    tx_id: bytes  # H(tx, body_bytes)
    raw: bytes  # canonical encoding of the whole signed transaction

    def is_signature_valid(self) -> bool:
        return is_valid_signature(self.body.sender_key, self.tx_id, self.signature)


def compute_tx_id(body_bytes: bytes) -> bytes:
    return tagged_hash(Domain.TX, body_bytes)


def sign_transaction(body: TxBody, key: SigningKey) -> SignedTx:
    """Encode and sign a body; the body's sender_key must be the signing key's public key."""
    if body.sender_key != key.public_key:
        raise TransactionError(Rejection.MALFORMED, "sender_key is not the public key of the signing key")
    try:
        body_bytes = codec.encode(body.to_wire())
    except (CodecError, TypeError, ValueError) as exc:  # e.g. a float in args, args not a map
        raise TransactionError(Rejection.MALFORMED, f"body cannot be encoded: {exc}") from None
    validate_body(body_from_wire(codec.decode(body_bytes)))
    tx_id = compute_tx_id(body_bytes)
    signature = key.sign(tx_id)
    raw = codec.encode({"body": body_bytes, "signature": signature})
    return SignedTx(body, body_bytes, signature, tx_id, raw)


def decode_transaction(raw: bytes, *, tx_bytes_max: int = DEFAULT_TX_BYTES_MAX) -> SignedTx:
    """Parse a transaction's wire bytes strictly. The signature is not checked here (see validate_*)."""
    if len(raw) > tx_bytes_max:
        raise TransactionError(Rejection.TOO_LARGE, f"{len(raw)} bytes exceeds the limit of {tx_bytes_max}")
    raw = bytes(raw)
    try:
        body_bytes, signature = _split_envelope(raw) or _decode_envelope(raw, tx_bytes_max)
        body = body_from_wire(codec.decode(body_bytes, max_bytes=tx_bytes_max))
    except CodecError as exc:
        raise TransactionError(Rejection.MALFORMED, str(exc)) from None
    validate_body(body)
    return SignedTx(body, body_bytes, signature, compute_tx_id(body_bytes), raw)


def _decode_envelope(raw: bytes, tx_bytes_max: int) -> tuple[bytes, bytes]:
    """The body bytes and signature of bytes that are not the canonical envelope: this decodes them to say
    what is wrong (or, for bytes `_split_envelope` should have taken, to take them all the same)."""
    outer = codec.decode(raw, max_bytes=tx_bytes_max)
    if type(outer) is not dict or sorted(outer) != ["body", "signature"]:
        raise TransactionError(Rejection.MALFORMED, "a transaction is a map of exactly body and signature")
    body_bytes, signature = outer["body"], outer["signature"]
    if type(body_bytes) is not bytes or type(signature) is not bytes:
        raise TransactionError(Rejection.MALFORMED, "body and signature must be bytes")
    if len(signature) != SIGNATURE_BYTES:
        raise TransactionError(Rejection.MALFORMED, f"signature must be {SIGNATURE_BYTES} bytes")
    return body_bytes, signature


# The canonical encoding of {"body": bin, "signature": bin(64)} is these bytes around the body, whose bin
# header is the shortest of bin8, bin16 and bin32 for its length (docs/PROTOCOL.md).
_ENVELOPE_HEAD = b"\x82\xa4body"
_ENVELOPE_TAIL = b"\xa9signature\xc4\x40"
_BIN_HEADERS = {0xC4: (1, 0), 0xC5: (2, 0x100), 0xC6: (4, 0x10000)}  # marker -> (length bytes, least length)


def _split_envelope(raw: bytes) -> tuple[bytes, bytes] | None:
    """The body bytes and signature of a transaction in exactly the canonical envelope, read by position;
    None for any other bytes, which the strict decoder then refuses with its reason. A valid transaction
    always takes this path: the canonical form is unique, so only its bytes match."""
    if not raw.startswith(_ENVELOPE_HEAD) or len(raw) < 8:
        return None
    header = _BIN_HEADERS.get(raw[6])
    if header is None:
        return None
    width, least = header
    start = 7 + width
    length = int.from_bytes(raw[7:start], "big")
    end = start + length
    if length < least or len(raw) != end + len(_ENVELOPE_TAIL) + SIGNATURE_BYTES:
        return None
    if raw[end : end + len(_ENVELOPE_TAIL)] != _ENVELOPE_TAIL:
        return None
    return raw[start:end], raw[end + len(_ENVELOPE_TAIL) :]


def body_from_wire(value: Any) -> TxBody:
    if type(value) is not dict:
        raise TransactionError(Rejection.MALFORMED, "the body must be a map")
    if tuple(value) != _BODY_FIELDS:
        missing = sorted(set(_BODY_FIELDS) - set(value))
        extra = sorted(set(value) - set(_BODY_FIELDS))
        raise TransactionError(
            Rejection.MALFORMED, f"body fields wrong: missing {missing}, unexpected {extra}"
        )
    return TxBody(
        chain_id=value["chain_id"],
        chaincode=value["chaincode"],
        function=value["function"],
        args=value["args"],
        sender_org=value["sender_org"],
        sender_key=value["sender_key"],
        nonce=value["nonce"],
        valid_until=value["valid_until"],
    )


def validate_body(body: TxBody) -> None:
    """Stateless shape checks of a body: types, patterns and ranges. (Written as plain conditions: this
    runs for every transaction a node receives, and the messages are built only for a refusal.)"""
    names = chain_id, chaincode, function, sender_org = (
        body.chain_id, body.chaincode, body.function, body.sender_org
    )  # fmt: skip
    if (
        type(chain_id) is not str  # only strings are looked up (a list could not even be hashed)
        or type(chaincode) is not str
        or type(function) is not str
        or type(sender_org) is not str
        or names not in _valid_names
    ):
        _validate_names(*names)
        if len(_valid_names) >= VALID_NAMES_MAX:
            _valid_names.clear()  # bounded; forgetting only means matching the patterns again
        _valid_names.add(names)
    key, nonce, valid_until, args = body.sender_key, body.nonce, body.valid_until, body.args
    if type(key) is not bytes or len(key) != PUBLIC_KEY_BYTES:
        raise TransactionError(Rejection.MALFORMED, f"sender_key must be {PUBLIC_KEY_BYTES} bytes")
    if type(nonce) is not int or not 0 <= nonce <= UINT64_MAX:
        raise TransactionError(Rejection.MALFORMED, "nonce must be a uint64")
    if type(valid_until) is not int or not 0 <= valid_until <= UINT64_MAX:
        raise TransactionError(Rejection.MALFORMED, "valid_until must be a uint64")
    if type(args) is not dict and not isinstance(args, Mapping):
        raise TransactionError(Rejection.MALFORMED, "args must be a map")
    if _contains_bytes(args):
        raise TransactionError(Rejection.MALFORMED, "args may not contain bytes (use hex strings)")


# The (chain id, chaincode, function, sender org) tuples whose patterns matched: a node sees the same few
# again and again, and matching four patterns cost more than the rest of the checks together.
VALID_NAMES_MAX = 4096
_valid_names: set[tuple[str, str, str, str]] = set()


def _validate_names(chain_id: object, chaincode: object, function: object, sender_org: object) -> None:
    _require(type(chain_id) is str and CHAIN_ID_PATTERN.fullmatch(chain_id), "chain_id is malformed")
    _require(type(chaincode) is str and NAME_PATTERN.fullmatch(chaincode), "chaincode name is malformed")
    _require(type(function) is str and NAME_PATTERN.fullmatch(function), "function name is malformed")
    _require(type(sender_org) is str and ORG_ID_PATTERN.fullmatch(sender_org), "sender_org is malformed")


def _contains_bytes(value: Any) -> bool:
    kind = type(value)
    if kind is bytes:
        return True
    if kind is dict:
        value = value.values()
    elif kind is not list:
        return False
    for item in value:  # a loop rather than any(): most args are a few scalars
        kind = type(item)
        if kind is bytes or ((kind is dict or kind is list) and _contains_bytes(item)):
            return True
    return False


def _require(condition: object, message: str) -> None:
    if not condition:
        raise TransactionError(Rejection.MALFORMED, message)


# --- JSON form (the HTTP API and the CLI) -----------------------------------------------------------------


def transaction_to_json(tx: SignedTx) -> dict[str, Any]:
    """The JSON form: the body with sender_key as hex, and the signature as hex."""
    body = tx.body.to_wire()
    body["sender_key"] = tx.body.sender_key.hex()
    return {"body": body, "signature": tx.signature.hex()}


def transaction_from_json(document: Any, *, tx_bytes_max: int = DEFAULT_TX_BYTES_MAX) -> SignedTx:
    """Rebuild the canonical transaction from its JSON form; the id is the same as for the msgpack form."""
    if not isinstance(document, dict) or sorted(document) != ["body", "signature"]:
        raise TransactionError(
            Rejection.MALFORMED, "a transaction is an object of exactly body and signature"
        )
    body, signature_hex = document["body"], document["signature"]
    if not isinstance(body, dict) or not isinstance(signature_hex, str):
        raise TransactionError(Rejection.MALFORMED, "body must be an object and signature a hex string")
    try:
        wire_body = dict(body)
        wire_body["sender_key"] = bytes.fromhex(body["sender_key"])
        signature = bytes.fromhex(signature_hex)
        body_bytes = codec.encode(wire_body)
        raw = codec.encode({"body": body_bytes, "signature": signature})
    except (KeyError, TypeError, ValueError, CodecError) as exc:
        raise TransactionError(Rejection.MALFORMED, f"invalid JSON transaction: {exc}") from None
    return decode_transaction(raw, tx_bytes_max=tx_bytes_max)


# --- complete validation ----------------------------------------------------------------------------------


class TxCheckContext(Protocol):
    """What validating a transaction needs to know about the chain (implemented by the node)."""

    chain_id: str
    tx_validity_blocks_max: int  # how far beyond next_height valid_until may reach

    @property
    def next_height(self) -> int:
        """The height of the next block to be ordered."""
        ...

    def is_committed(self, tx_id: bytes) -> bool: ...

    def sender_key_status(self, org_id: str, public_key: bytes) -> str:
        """'active', 'revoked' or 'unknown'."""
        ...


def validate_transaction(
    tx: SignedTx,
    context: TxCheckContext,
    *,
    signature_checked: Callable[[SignedTx], bool] | None = None,
) -> None:
    """Check a decoded transaction completely; raises TransactionError with the first problem found.

    `signature_checked` lets a caller with a cache of verified ids skip a second verification.
    """
    if tx.body.chain_id != context.chain_id:
        raise TransactionError(
            Rejection.WRONG_CHAIN, f"signed for chain {tx.body.chain_id!r}, this is {context.chain_id!r}"
        )
    already_verified = signature_checked is not None and signature_checked(tx)
    if not already_verified and not tx.is_signature_valid():
        raise TransactionError(Rejection.BAD_SIGNATURE, "the signature does not verify for sender_key")
    if tx.body.valid_until < context.next_height:
        raise TransactionError(
            Rejection.EXPIRED,
            f"valid_until {tx.body.valid_until} is below the next height {context.next_height}",
        )
    if tx.body.valid_until > context.next_height + context.tx_validity_blocks_max:
        raise TransactionError(
            Rejection.VALIDITY_TOO_LONG,
            f"valid_until {tx.body.valid_until} is more than {context.tx_validity_blocks_max} blocks ahead",
        )
    status = context.sender_key_status(tx.body.sender_org, tx.body.sender_key)
    if status == "unknown":
        raise TransactionError(
            Rejection.UNKNOWN_SENDER, f"key is not enrolled for organisation {tx.body.sender_org!r}"
        )
    if status == "revoked":
        raise TransactionError(
            Rejection.REVOKED_KEY, f"key was revoked for organisation {tx.body.sender_org!r}"
        )
    if context.is_committed(tx.tx_id):
        raise TransactionError(Rejection.REPLAY, f"transaction {tx.tx_id.hex()} is already committed")
