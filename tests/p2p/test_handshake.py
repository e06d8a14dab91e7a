"""Unit vectors for the sans-I/O handshake, frames and policy (no sockets)."""

from __future__ import annotations

import msgpack
import pytest

from core import codec
from core.devkeys import dev_node_key
from core.errors import InvariantBroken
from core.hashing import Domain, tagged_hash
from core.keys import SigningKey, is_valid_signature
from p2p import FrameError, FrameTooLarge, HandshakeRefused, PeerId, PeerLimits, RefusalCode
from p2p.framing import decode_frame, encode_frame
from p2p.handshake import (
    HandshakeConfig,
    InitiatorHandshake,
    Phase,
    ResponderHandshake,
    Transcript,
    decode_hello,
    encode_auth,
    encode_refusal,
)
from p2p.identity import PeerDirectory, compute_dial_targets, is_dialer
from p2p.policy import BanList, compute_backoff_ms

from .conftest import make_genesis

GENESIS = make_genesis()
V0, V1, V2, V3 = (PeerId.validator(i) for i in range(4))
O0 = PeerId.observer(0)
NONCE_I = bytes(range(32))
NONCE_R = bytes(range(32, 64))


def config(local: PeerId, genesis: object = GENESIS) -> HandshakeConfig:
    from core.genesis import Genesis

    assert isinstance(genesis, Genesis)
    key = dev_node_key(local.role.value, local.index)
    return HandshakeConfig(genesis.chain_id, genesis.genesis_hash, PeerDirectory(genesis), local, key)


def run_pair(
    initiator: InitiatorHandshake, responder: ResponderHandshake
) -> tuple[bytes, bytes, bytes, bytes]:
    hello = initiator.start()
    hello_ack = responder.receive(hello)
    auth = initiator.receive(hello_ack)
    assert auth is not None
    welcome = responder.receive(auth)
    assert initiator.receive(welcome) is None
    return hello, hello_ack, auth, welcome


def test_handshake_succeeds_and_both_ends_learn_the_peer() -> None:
    initiator = InitiatorHandshake(config(V0), V1, NONCE_I)
    responder = ResponderHandshake(config(V1), NONCE_R)
    run_pair(initiator, responder)
    assert initiator.phase is Phase.DONE and initiator.peer == V1
    assert responder.phase is Phase.AUTHENTICATED and responder.peer == V0


def test_signed_bytes_vector() -> None:
    """The exact transcript bytes; an independent implementation must produce the same digest."""
    transcript = Transcript(
        chain_id="test-devnet",
        genesis_hash=bytes(32),
        initiator=V0,
        initiator_key=bytes([1]) * 32,
        initiator_nonce=NONCE_I,
        responder=V1,
        responder_key=bytes([2]) * 32,
        responder_nonce=NONCE_R,
    )
    expected_document = codec.encode(
        {
            "chain_id": "test-devnet",
            "genesis_hash": bytes(32),
            "initiator_index": 0,
            "initiator_key": bytes([1]) * 32,
            "initiator_nonce": NONCE_I,
            "initiator_role": "validator",
            "responder_index": 1,
            "responder_key": bytes([2]) * 32,
            "responder_nonce": NONCE_R,
            "responder_role": "validator",
            "signer": "initiator",
            "version": 1,
        }
    )
    assert expected_document[:1] == b"\x8c"  # a 12-entry map
    digest = transcript.compute_signed_digest("initiator")
    assert digest == tagged_hash(Domain.PEER_HANDSHAKE, expected_document)
    assert digest.hex() == "7cbd47fd0d8d4ee31866380185fc0ad40cbdbfb26280c3385799ab8c7be6bdac"
    assert transcript.compute_signed_digest("responder") != digest


def test_messages_are_canonical_maps_with_exact_fields() -> None:
    initiator = InitiatorHandshake(config(V0), V1, NONCE_I)
    responder = ResponderHandshake(config(V1), NONCE_R)
    hello, hello_ack, auth, welcome = run_pair(initiator, responder)
    assert codec.decode(hello) == {
        "type": "hello",
        "version": 1,
        "chain_id": "test-devnet",
        "genesis_hash": GENESIS.genesis_hash,
        "role": "validator",
        "index": 0,
        "nonce": NONCE_I,
    }
    ack = codec.decode(hello_ack)
    assert ack["type"] == "hello-ack" and ack["index"] == 1 and ack["nonce"] == NONCE_R
    transcript = Transcript(
        "test-devnet",
        GENESIS.genesis_hash,
        V0,
        dev_node_key("validator", 0).public_key,
        NONCE_I,
        V1,
        dev_node_key("validator", 1).public_key,
        NONCE_R,
    )
    responder_key = dev_node_key("validator", 1).public_key
    assert is_valid_signature(responder_key, transcript.compute_signed_digest("responder"), ack["signature"])
    initiator_key = dev_node_key("validator", 0).public_key
    auth_signature = codec.decode(auth)["signature"]
    assert is_valid_signature(initiator_key, transcript.compute_signed_digest("initiator"), auth_signature)
    assert codec.decode(welcome) == {"type": "welcome"}


def refusal_of(action: object) -> RefusalCode:
    with pytest.raises(HandshakeRefused) as info:
        assert callable(action)
        action()
    return info.value.code


def test_wrong_chain_id_and_genesis_hash_are_refused() -> None:
    other_chain = make_genesis(chain_id="other-devnet")
    other_genesis = make_genesis(genesis_time="2026-02-01T00:00:00Z")
    responder = ResponderHandshake(config(V1), NONCE_R)
    hello = InitiatorHandshake(config(V0, other_chain), V1, NONCE_I).start()
    assert refusal_of(lambda: responder.receive(hello)) is RefusalCode.CHAIN_ID
    assert responder.phase is Phase.FAILED
    responder = ResponderHandshake(config(V1), NONCE_R)
    hello = InitiatorHandshake(config(V0, other_genesis), V1, NONCE_I).start()
    assert refusal_of(lambda: responder.receive(hello)) is RefusalCode.GENESIS_HASH
    # and the initiator refuses a responder from another chain just the same
    initiator = InitiatorHandshake(config(V0), V1, NONCE_I)
    foreign = ResponderHandshake(config(V1, other_chain), NONCE_R)
    foreign_ack = foreign.receive(InitiatorHandshake(config(V0, other_chain), V1, NONCE_I).start())
    initiator.start()
    assert refusal_of(lambda: initiator.receive(foreign_ack)) is RefusalCode.CHAIN_ID


def test_unknown_identity_and_wrong_key_are_refused() -> None:
    responder = ResponderHandshake(config(V1), NONCE_R)
    hello = InitiatorHandshake(config(V0), V1, NONCE_I).start()
    hello = codec.encode({**codec.decode(hello), "index": 9})  # "validator-9" is not in the genesis
    assert refusal_of(lambda: responder.receive(hello)) is RefusalCode.UNKNOWN_PEER
    # A stranger claiming validator-0's identity cannot produce its signature.
    impostor_key = SigningKey.from_insecure_label("impostor")
    responder = ResponderHandshake(config(V1), NONCE_R)
    responder.receive(InitiatorHandshake(config(V0), V1, NONCE_I).start())
    transcript = Transcript(
        GENESIS.chain_id,
        GENESIS.genesis_hash,
        V0,
        dev_node_key("validator", 0).public_key,
        NONCE_I,
        V1,
        dev_node_key("validator", 1).public_key,
        NONCE_R,
    )
    auth = encode_auth(impostor_key.sign(transcript.compute_signed_digest("initiator")))
    assert refusal_of(lambda: responder.receive(auth)) is RefusalCode.BAD_SIGNATURE
    # The impostor's own view (its key in the transcript) does not match v1's signature either.
    directory = PeerDirectory(GENESIS)
    directory._keys[V0] = impostor_key.public_key
    impostor = HandshakeConfig(GENESIS.chain_id, GENESIS.genesis_hash, directory, V0, impostor_key)
    initiator = InitiatorHandshake(impostor, V1, NONCE_I)
    ack = ResponderHandshake(config(V1), NONCE_R).receive(initiator.start())
    assert refusal_of(lambda: initiator.receive(ack)) is RefusalCode.BAD_SIGNATURE


def test_direction_and_self_rules() -> None:
    assert is_dialer(V0, V1) and not is_dialer(V1, V0) and is_dialer(O0, V3)
    assert not is_dialer(V0, O0) and not is_dialer(O0, PeerId.observer(1)) and not is_dialer(V1, V1)
    directory = PeerDirectory(GENESIS)
    assert compute_dial_targets(directory, V1) == [V2, V3]
    assert compute_dial_targets(directory, O0) == [V0, V1, V2, V3]
    assert compute_dial_targets(directory, V3) == []
    responder = ResponderHandshake(config(V0), NONCE_R)
    hello = codec.encode({**codec.decode(InitiatorHandshake(config(V0), V2, NONCE_I).start()), "index": 2})
    assert refusal_of(lambda: responder.receive(hello)) is RefusalCode.WRONG_DIRECTION
    responder = ResponderHandshake(config(V1), NONCE_R)
    hello = codec.encode({**codec.decode(InitiatorHandshake(config(V0), V2, NONCE_I).start()), "index": 1})
    assert refusal_of(lambda: responder.receive(hello)) is RefusalCode.SELF
    with pytest.raises(InvariantBroken):
        InitiatorHandshake(config(V2), V1, NONCE_I)


def test_initiator_refuses_an_unexpected_responder() -> None:
    initiator = InitiatorHandshake(config(V0), V1, NONCE_I)
    hello = initiator.start()
    ack = ResponderHandshake(config(V2), NONCE_R).receive(hello)  # validator-2 answers at v1's address
    assert refusal_of(lambda: initiator.receive(ack)) is RefusalCode.UNEXPECTED_PEER


def test_replayed_signatures_are_useless() -> None:
    # Session 1 is recorded by an eavesdropper.
    initiator = InitiatorHandshake(config(V0), V1, NONCE_I)
    hello, hello_ack, auth, _ = run_pair(initiator, ResponderHandshake(config(V1), NONCE_R))
    # Replaying v0's hello and auth to v1 fails: v1 picked a fresh nonce.
    fresh_responder = ResponderHandshake(config(V1), bytes(range(100, 132)))
    fresh_responder.receive(hello)
    assert refusal_of(lambda: fresh_responder.receive(auth)) is RefusalCode.BAD_SIGNATURE
    # Replaying v1's hello-ack to v0 fails: v0 picked a fresh nonce.
    fresh_initiator = InitiatorHandshake(config(V0), V1, bytes(range(200, 232)))
    fresh_initiator.start()
    assert refusal_of(lambda: fresh_initiator.receive(hello_ack)) is RefusalCode.BAD_SIGNATURE


def test_malformed_and_refusal_messages() -> None:
    hello = InitiatorHandshake(config(V0), V1, NONCE_I).start()
    document = codec.decode(hello)
    non_canonical = msgpack.packb(dict(reversed(list(document.items()))), use_bin_type=True)
    cases = [
        b"\xc1garbage",
        non_canonical,
        codec.encode({**document, "extra": 1}),
        codec.encode({**document, "nonce": b"short"}),
        codec.encode({**document, "role": "king"}),
        codec.encode({**document, "type": "auth"}),
        codec.encode([1, 2]),
        b"\x00" * 2000,
    ]
    for data in cases:
        with pytest.raises(HandshakeRefused) as info:
            ResponderHandshake(config(V1), NONCE_R).receive(data)
        assert info.value.code is RefusalCode.MALFORMED
    responder = ResponderHandshake(config(V1), NONCE_R)
    with pytest.raises(HandshakeRefused) as info:
        responder.receive(encode_refusal(RefusalCode.BANNED, "go away"))
    assert info.value.by_peer and info.value.code is RefusalCode.BANNED
    assert decode_hello(hello, ack=False).nonce == NONCE_I


def test_frames_round_trip_and_reject_bad_input() -> None:
    data = encode_frame("consensus", b"\x00\x01", 1024)
    assert data == codec.encode(["consensus", b"\x00\x01"])
    frame = decode_frame(data, 1024)
    assert (frame.channel, frame.payload) == ("consensus", b"\x00\x01")
    with pytest.raises(FrameTooLarge):
        encode_frame("blocks", bytes(2000), 1024)
    bad = [
        data[:-1],
        b"\xc1",
        codec.encode(["consensus", "text payload"]),
        codec.encode(["Bad Channel", b""]),
        codec.encode(["consensus", b"", b""]),
        codec.encode({"channel": "x"}),
        msgpack.packb(["consensus", b"\x00\x01"], use_bin_type=False),  # payload as str8, not bin
        bytes(2000),
    ]
    for item in bad:
        with pytest.raises(FrameError):
            decode_frame(item, 1024)


def test_backoff_is_capped_and_jittered() -> None:
    limits = PeerLimits(reconnect_base_ms=100, reconnect_max_ms=1_000)
    assert compute_backoff_ms(0, limits, 0.0) == 50
    assert compute_backoff_ms(0, limits, 1.0) == 100
    assert compute_backoff_ms(3, limits, 1.0) == 800
    assert [compute_backoff_ms(a, limits, 1.0) for a in (4, 10, 1000)] == [1_000] * 3
    assert compute_backoff_ms(1000, limits, 0.0) == 500


def test_ban_list_expires() -> None:
    bans = BanList(duration_ms=1_000)
    bans.ban(V2, now_ms=5_000, reason="garbage")
    assert bans.is_banned(V2, 5_999) and not bans.is_banned(V1, 5_999)
    assert not bans.is_banned(V2, 6_000)
    assert bans.get_ban(V2, 5_500) is None  # forgotten once expired
