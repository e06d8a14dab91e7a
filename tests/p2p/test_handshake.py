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
from p2p.policy import BanList, PendingHandshakes, compute_address_key, compute_backoff_ms

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


SMALL_POOL = PeerLimits(
    pending_handshakes_max=6,
    pending_reserved_for_members=3,
    pending_per_address_max=2,
    pending_per_member_address_max=4,
    pending_per_identity_max=1,
)


def test_address_keys_group_ipv6_sites_and_unmap_ipv4() -> None:
    assert compute_address_key("10.0.0.7") == "10.0.0.7"
    assert compute_address_key("2001:db8:1:2:aaaa::1") == compute_address_key("2001:db8:1:2:bbbb::9")
    assert compute_address_key("2001:db8:1:2::1") != compute_address_key("2001:db8:1:3::1")
    assert compute_address_key("::ffff:10.0.0.7") == "10.0.0.7"
    assert compute_address_key("fe80::1%eth0") == compute_address_key("fe80::2")
    assert compute_address_key("not an address") == "not an address"


def test_silent_connections_from_one_address_make_room_for_newer_ones() -> None:
    pending = PendingHandshakes(SMALL_POOL)
    first, second = pending.admit("10.0.0.9"), pending.admit("10.0.0.9")
    assert first.ticket is not None and second.ticket is not None and not first.evicted
    third = pending.admit("10.0.0.9")  # the address is at its cap: the oldest silent one goes
    assert third.ticket is not None and third.evicted == (first.ticket,) and len(pending) == 2
    assert pending.greet(second.ticket, V0) and pending.greet(third.ticket, V1)
    assert pending.admit("10.0.0.9").ticket is None  # both spoke: nobody to evict, refused
    assert pending.admit("10.0.0.8").ticket is not None  # other addresses are not affected
    pending.release(third.ticket)
    pending.release(third.ticket)  # twice is harmless
    assert pending.admit("10.0.0.9").ticket is not None


def test_room_is_kept_for_members_addresses() -> None:
    pending = PendingHandshakes(SMALL_POOL, member_hosts=["127.0.0.1"])
    strangers = [pending.admit(f"10.0.0.{i}").ticket for i in range(3)]
    assert None not in strangers
    # non-members together may hold pool - reserved = 3: a fourth stranger evicts the oldest silent one
    fourth = pending.admit("10.0.0.50")
    assert fourth.ticket is not None and fourth.evicted == (strangers[0],)
    # the members' address still finds its reserved room, without evicting anyone
    members = [pending.admit("127.0.0.1") for _ in range(3)]
    assert all(a.ticket is not None and not a.evicted for a in members) and len(pending) == 6
    # the pool is full: a member arrival evicts a silent stranger before any member
    assert pending.admit("127.0.0.1").evicted == (strangers[1],)
    # once every stranger has spoken, the oldest silent member connection makes room
    assert strangers[2] is not None and pending.greet(strangers[2], V1) and pending.greet(fourth.ticket, V2)
    assert pending.admit("127.0.0.2").ticket is None  # a stranger: only strangers may make room for it
    pending.add_member_hosts(["127.0.0.2"])
    assert pending.admit("127.0.0.2").evicted == (members[0].ticket,)


def test_greeting_is_bounded_per_claimed_identity() -> None:
    pending = PendingHandshakes(SMALL_POOL)
    a, b = pending.admit("10.0.0.1").ticket, pending.admit("10.0.0.2").ticket
    assert a is not None and b is not None
    assert pending.greet(a, V0)
    assert not pending.greet(b, V0)  # pending_per_identity_max = 1
    assert pending.greet(b, V1)
    pending.release(a)
    assert not pending.greet(a, V2)  # a released ticket greets nothing


def test_pending_limits_must_be_consistent() -> None:
    with pytest.raises(InvariantBroken):
        PeerLimits(pending_handshakes_max=8, pending_reserved_for_members=8)
    with pytest.raises(InvariantBroken):
        PeerLimits(pending_handshakes_max=8, pending_reserved_for_members=4, pending_per_address_max=5)
