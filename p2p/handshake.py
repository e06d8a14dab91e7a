"""The peer handshake as a sans-I/O state machine: bytes in, bytes out, no sockets.

Four binary WebSocket messages, each a canonical msgpack map (docs/protocol/p2p.md has the exact fields):

    initiator -> responder   hello      version, chain id, genesis hash, identity, fresh nonce
    responder -> initiator   hello-ack  the same fields for the responder, plus its signature
    initiator -> responder   auth       the initiator's signature
    responder -> initiator   welcome    the link is up (or `refuse` with a reason, at any step, by either end)

Both signatures cover one transcript that binds the chain id, the genesis hash, both identities, both node
keys and both nonces, hashed under Domain.PEER_HANDSHAKE; a `signer` field differs, so neither signature can
be reflected back as the other's. Each end contributes a fresh 32-byte nonce, so a recorded signature is
useless in any later handshake. Keys are pinned by the genesis: only identities it lists are accepted.
The shell (p2p.network) owns the timeouts, the ban list and the sockets.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from core import codec
from core.errors import CodecError, InvariantBroken
from core.hashing import HASH_BYTES, Domain, tagged_hash
from core.keys import SIGNATURE_BYTES, SigningKey, is_valid_signature
from p2p.errors import HandshakeRefused, RefusalCode
from p2p.identity import PeerDirectory, PeerId, PeerRole, is_dialer

PROTOCOL_VERSION = 1
NONCE_BYTES = 32
HANDSHAKE_MESSAGE_BYTES_MAX = 1024
REFUSAL_DETAIL_CHARS_MAX = 200


@dataclass(frozen=True)
class HandshakeConfig:
    """What one node brings to every handshake."""

    chain_id: str  # genesis chain id; a peer on another chain is refused
    genesis_hash: bytes  # genesis hash; a peer with another genesis is refused
    directory: PeerDirectory  # the identities and node keys the genesis pins
    local: PeerId  # our own identity
    signing_key: SigningKey  # our node key (its public key must be the one the genesis lists for `local`)

    def __post_init__(self) -> None:
        if self.directory.get_key(self.local) != self.signing_key.public_key:
            raise InvariantBroken(f"the node key does not match the genesis key of {self.local}")


@dataclass(frozen=True)
class Hello:
    """The `hello` (initiator) and `hello-ack` (responder) messages; `signature` is empty in `hello`."""

    version: int  # PROTOCOL_VERSION
    chain_id: str  # sender's chain id
    genesis_hash: bytes  # sender's genesis hash, 32 bytes
    role: PeerRole  # sender's claimed role
    index: int  # sender's claimed index in that role's genesis list
    nonce: bytes  # sender's fresh random nonce, 32 bytes
    signature: bytes  # hello-ack only: the responder's signature of the transcript, 64 bytes

    @property
    def peer(self) -> PeerId:
        return PeerId(self.role, self.index)


@dataclass(frozen=True)
class Transcript:
    """Everything both signatures commit to."""

    chain_id: str
    genesis_hash: bytes
    initiator: PeerId
    initiator_key: bytes
    initiator_nonce: bytes
    responder: PeerId
    responder_key: bytes
    responder_nonce: bytes

    def compute_signed_digest(self, signer: str) -> bytes:
        """The 32 bytes a node signs; `signer` is "initiator" or "responder"."""
        if signer not in ("initiator", "responder"):
            raise InvariantBroken(f"unknown signer {signer!r}")
        document = {
            "chain_id": self.chain_id,
            "genesis_hash": self.genesis_hash,
            "initiator_index": self.initiator.index,
            "initiator_key": self.initiator_key,
            "initiator_nonce": self.initiator_nonce,
            "initiator_role": self.initiator.role.value,
            "responder_index": self.responder.index,
            "responder_key": self.responder_key,
            "responder_nonce": self.responder_nonce,
            "responder_role": self.responder.role.value,
            "signer": signer,
            "version": PROTOCOL_VERSION,
        }
        return tagged_hash(Domain.PEER_HANDSHAKE, codec.encode(document))


# --- message encoding -------------------------------------------------------------------------------------


def encode_hello(hello: Hello, *, ack: bool) -> bytes:
    message: dict[str, Any] = {
        "type": "hello-ack" if ack else "hello",
        "version": hello.version,
        "chain_id": hello.chain_id,
        "genesis_hash": hello.genesis_hash,
        "role": hello.role.value,
        "index": hello.index,
        "nonce": hello.nonce,
    }
    if ack:
        message["signature"] = hello.signature
    return codec.encode(message)


def encode_auth(signature: bytes) -> bytes:
    return codec.encode({"type": "auth", "signature": signature})


def encode_welcome() -> bytes:
    return codec.encode({"type": "welcome"})


def encode_refusal(code: RefusalCode, detail: str) -> bytes:
    return codec.encode({"type": "refuse", "code": code.value, "detail": detail[:REFUSAL_DETAIL_CHARS_MAX]})


def decode_message(data: bytes, expected_type: str) -> dict[str, Any]:
    """Decode one handshake message of the expected type; a `refuse` raises HandshakeRefused(by_peer)."""
    try:
        message = codec.decode(data, max_bytes=HANDSHAKE_MESSAGE_BYTES_MAX, max_container_len=16)
    except CodecError as exc:
        raise HandshakeRefused(RefusalCode.MALFORMED, f"not canonical msgpack: {exc}") from None
    if type(message) is not dict or type(message.get("type")) is not str:
        raise HandshakeRefused(RefusalCode.MALFORMED, "a handshake message is a map with a string 'type'")
    if message["type"] == "refuse":
        raise _decode_refusal(message)
    if message["type"] != expected_type:
        raise HandshakeRefused(RefusalCode.MALFORMED, f"expected {expected_type!r}, got {message['type']!r}")
    return message


def _decode_refusal(message: dict[str, Any]) -> HandshakeRefused:
    code_text, detail = message.get("code"), message.get("detail")
    if set(message) != {"type", "code", "detail"} or type(code_text) is not str or type(detail) is not str:
        return HandshakeRefused(RefusalCode.MALFORMED, "malformed refuse message", by_peer=True)
    try:
        code = RefusalCode(code_text)
    except ValueError:
        code = RefusalCode.MALFORMED
    return HandshakeRefused(code, detail[:REFUSAL_DETAIL_CHARS_MAX], by_peer=True)


_HELLO_FIELDS = {"type", "version", "chain_id", "genesis_hash", "role", "index", "nonce"}


def decode_hello(data: bytes, *, ack: bool) -> Hello:
    message = decode_message(data, "hello-ack" if ack else "hello")
    fields = _HELLO_FIELDS | {"signature"} if ack else _HELLO_FIELDS
    if set(message) != fields:
        raise HandshakeRefused(RefusalCode.MALFORMED, f"fields must be exactly {sorted(fields)}")
    version, chain_id, genesis_hash = message["version"], message["chain_id"], message["genesis_hash"]
    role_text, index, nonce = message["role"], message["index"], message["nonce"]
    signature = message.get("signature", b"")
    _require(type(version) is int, "version must be an integer")
    _require(type(chain_id) is str, "chain_id must be a string")
    _require(type(genesis_hash) is bytes and len(genesis_hash) == HASH_BYTES, "genesis_hash must be 32 bytes")
    _require(role_text in PeerRole._value2member_map_, "role must be 'validator' or 'observer'")
    _require(type(index) is int and 0 <= index < 2**16, "index must be a small non-negative integer")
    _require(type(nonce) is bytes and len(nonce) == NONCE_BYTES, f"nonce must be {NONCE_BYTES} bytes")
    if ack:
        _require(type(signature) is bytes and len(signature) == SIGNATURE_BYTES, "signature must be 64 bytes")
    return Hello(version, chain_id, genesis_hash, PeerRole(role_text), index, nonce, signature)


def decode_auth(data: bytes) -> bytes:
    message = decode_message(data, "auth")
    signature = message.get("signature")
    _require(set(message) == {"type", "signature"}, "fields must be exactly ['signature', 'type']")
    _require(type(signature) is bytes and len(signature) == SIGNATURE_BYTES, "signature must be 64 bytes")
    assert type(signature) is bytes
    return signature


def decode_welcome(data: bytes) -> None:
    message = decode_message(data, "welcome")
    _require(set(message) == {"type"}, "welcome has no fields besides 'type'")


def _require(condition: bool, detail: str) -> None:
    if not condition:
        raise HandshakeRefused(RefusalCode.MALFORMED, detail)


def validate_hello(config: HandshakeConfig, hello: Hello) -> bytes:
    """Check a peer's hello against our chain and genesis; return the node key pinned to its identity."""
    if hello.version != PROTOCOL_VERSION:
        raise HandshakeRefused(
            RefusalCode.VERSION, f"protocol version {hello.version}, we speak {PROTOCOL_VERSION}"
        )
    if hello.chain_id != config.chain_id:
        raise HandshakeRefused(
            RefusalCode.CHAIN_ID, f"peer is on chain {hello.chain_id!r}, this node is on {config.chain_id!r}"
        )
    if hello.genesis_hash != config.genesis_hash:
        raise HandshakeRefused(
            RefusalCode.GENESIS_HASH,
            f"peer genesis hash {hello.genesis_hash.hex()[:16]}… differs from ours {config.genesis_hash.hex()[:16]}…",
        )
    key = config.directory.get_key(hello.peer)
    if key is None:
        raise HandshakeRefused(
            RefusalCode.UNKNOWN_PEER, f"{hello.peer} is not a node we admit (genesis or validator set)"
        )
    if hello.peer == config.local:
        raise HandshakeRefused(RefusalCode.SELF, f"{hello.peer} is this node")
    return key


# --- the two state machines -------------------------------------------------------------------------------


class Phase(Enum):
    """Where a handshake stands; each phase accepts exactly one kind of message."""

    START = "start"  # initiator before sending hello
    AWAIT_HELLO = "await-hello"  # responder
    AWAIT_HELLO_ACK = "await-hello-ack"  # initiator
    AWAIT_AUTH = "await-auth"  # responder
    AWAIT_WELCOME = "await-welcome"  # initiator
    AUTHENTICATED = "authenticated"  # responder: the peer is proven; the shell sends welcome or refuse
    DONE = "done"  # initiator: welcome received
    FAILED = "failed"


class InitiatorHandshake:
    """The dialling end: it knows whom it dialled and checks that this node answered."""

    def __init__(self, config: HandshakeConfig, expected: PeerId, nonce: bytes) -> None:
        if len(nonce) != NONCE_BYTES:
            raise InvariantBroken(f"a nonce is {NONCE_BYTES} bytes")
        if not is_dialer(config.local, expected):
            raise InvariantBroken(f"{config.local} does not dial {expected}")
        self.config = config
        self.expected = expected
        self.nonce = nonce
        self.phase = Phase.START
        self.peer: PeerId | None = None

    def start(self) -> bytes:
        """Our hello, the first message of the connection."""
        self._expect(Phase.START)
        self.phase = Phase.AWAIT_HELLO_ACK
        config = self.config
        local = config.local
        hello = Hello(
            PROTOCOL_VERSION, config.chain_id, config.genesis_hash, local.role, local.index, self.nonce, b""
        )
        return encode_hello(hello, ack=False)

    def receive(self, data: bytes) -> bytes | None:
        """Process one message; returns the message to send next (auth), or None once welcomed."""
        try:
            if self.phase is Phase.AWAIT_HELLO_ACK:
                return self._receive_hello_ack(data)
            self._expect(Phase.AWAIT_WELCOME)
            decode_welcome(data)
            self.phase = Phase.DONE
            self.peer = self.expected
            return None
        except HandshakeRefused:
            self.phase = Phase.FAILED
            raise

    def _receive_hello_ack(self, data: bytes) -> bytes:
        config = self.config
        hello = decode_hello(data, ack=True)
        responder_key = validate_hello(config, hello)
        if hello.peer != self.expected:
            raise HandshakeRefused(
                RefusalCode.UNEXPECTED_PEER, f"dialled {self.expected}, {hello.peer} answered"
            )
        transcript = Transcript(
            chain_id=config.chain_id,
            genesis_hash=config.genesis_hash,
            initiator=config.local,
            initiator_key=config.signing_key.public_key,
            initiator_nonce=self.nonce,
            responder=hello.peer,
            responder_key=responder_key,
            responder_nonce=hello.nonce,
        )
        if not is_valid_signature(
            responder_key, transcript.compute_signed_digest("responder"), hello.signature
        ):
            raise HandshakeRefused(RefusalCode.BAD_SIGNATURE, f"{hello.peer} did not prove its node key")
        self.phase = Phase.AWAIT_WELCOME
        return encode_auth(config.signing_key.sign(transcript.compute_signed_digest("initiator")))

    def _expect(self, phase: Phase) -> None:
        if self.phase is not phase:
            raise InvariantBroken(f"initiator handshake is in phase {self.phase.value}, not {phase.value}")


class ResponderHandshake:
    """The listening end: it learns who is calling and checks they hold that identity's key."""

    def __init__(self, config: HandshakeConfig, nonce: bytes) -> None:
        if len(nonce) != NONCE_BYTES:
            raise InvariantBroken(f"a nonce is {NONCE_BYTES} bytes")
        self.config = config
        self.nonce = nonce
        self.phase = Phase.AWAIT_HELLO
        self.claimed: PeerId | None = None  # who the hello says is calling (not yet proven)
        self.peer: PeerId | None = None  # set once the caller proved its key
        self._transcript: Transcript | None = None

    def receive(self, data: bytes) -> bytes:
        """Process one message; returns hello-ack after hello, and welcome after a valid auth.

        After auth the phase is AUTHENTICATED: the shell may still refuse (e.g. a banned peer) by sending
        `encode_refusal` instead of the returned welcome.
        """
        try:
            if self.phase is Phase.AWAIT_HELLO:
                return self._receive_hello(data)
            self._expect(Phase.AWAIT_AUTH)
            return self._receive_auth(data)
        except HandshakeRefused:
            self.phase = Phase.FAILED
            raise

    def _receive_hello(self, data: bytes) -> bytes:
        config = self.config
        hello = decode_hello(data, ack=False)
        initiator_key = validate_hello(config, hello)
        if not is_dialer(hello.peer, config.local):
            raise HandshakeRefused(
                RefusalCode.WRONG_DIRECTION, f"{config.local} dials {hello.peer}, not the reverse"
            )
        self.claimed = hello.peer
        self._transcript = Transcript(
            chain_id=config.chain_id,
            genesis_hash=config.genesis_hash,
            initiator=hello.peer,
            initiator_key=initiator_key,
            initiator_nonce=hello.nonce,
            responder=config.local,
            responder_key=config.signing_key.public_key,
            responder_nonce=self.nonce,
        )
        signature = config.signing_key.sign(self._transcript.compute_signed_digest("responder"))
        local = config.local
        ack = Hello(
            PROTOCOL_VERSION,
            config.chain_id,
            config.genesis_hash,
            local.role,
            local.index,
            self.nonce,
            signature,
        )
        self.phase = Phase.AWAIT_AUTH
        return encode_hello(ack, ack=True)

    def _receive_auth(self, data: bytes) -> bytes:
        signature = decode_auth(data)
        transcript = self._transcript
        if transcript is None:
            raise InvariantBroken("auth phase without a transcript")
        digest = transcript.compute_signed_digest("initiator")
        if not is_valid_signature(transcript.initiator_key, digest, signature):
            raise HandshakeRefused(
                RefusalCode.BAD_SIGNATURE, f"{transcript.initiator} did not prove its node key"
            )
        self.peer = transcript.initiator
        self.phase = Phase.AUTHENTICATED
        return encode_welcome()

    def _expect(self, phase: Phase) -> None:
        if self.phase is not phase:
            raise InvariantBroken(f"responder handshake is in phase {self.phase.value}, not {phase.value}")
