"""The peer layer over real sockets on 127.0.0.1: mesh, refusals, bad input, backpressure, reconnect, TLS."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import aiohttp
import msgpack
import pytest

from core import codec
from core.errors import InvalidInput, ResourceFailure
from core.keys import SigningKey
from p2p import HandshakeRefused, PeerId, PeerLimits, PeerNetwork, RefusalCode, SendQueueFull, TlsConfig
from p2p.handshake import InitiatorHandshake, ResponderHandshake
from tests.tlskit import write_self_signed_cert

from .conftest import FAST_LIMITS, P2PKit, handshake_config, make_genesis, receive_binary, run_initiator

V0, V1, V2, V3 = (PeerId.validator(i) for i in range(4))
O0 = PeerId.observer(0)
TIMEOUT_S = 5


class Inbox:
    """Collects frames delivered to one handler and lets a test await a count."""

    def __init__(self) -> None:
        self.items: list[tuple[PeerId, bytes]] = []
        self._changed = asyncio.Event()

    def __call__(self, peer: PeerId, payload: bytes) -> None:
        self.items.append((peer, payload))
        self._changed.set()

    async def wait_for(self, count: int) -> list[tuple[PeerId, bytes]]:
        async with asyncio.timeout(TIMEOUT_S):
            while len(self.items) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.items


async def test_mesh_of_four_validators_and_an_observer(kit: P2PKit) -> None:
    peers = [V0, V1, V2, V3, O0]
    networks = {peer: kit.network(peer) for peer in peers}
    inboxes = {peer: Inbox() for peer in peers}
    for peer, network in networks.items():
        network.on("test", inboxes[peer])
    await kit.start_all(list(networks.values()))
    for peer, network in networks.items():
        expected = [p for p in peers if p != peer] if peer.is_validator else [V0, V1, V2, V3]
        await network.wait_connected(expected, TIMEOUT_S)
        assert network.connected_peers() == sorted(expected)
    # both directions of a link: v3 (listener) to v0 (dialler) and back
    assert networks[V3].send(V0, "test", b"from v3")
    assert networks[V0].send(V3, "test", b"from v0")
    assert await inboxes[V0].wait_for(1) == [(V3, b"from v3")]
    assert await inboxes[V3].wait_for(1) == [(V0, b"from v0")]
    # broadcast to validators reaches the other three, not the observer
    assert networks[V1].broadcast("test", b"to validators", to="validators") == 3
    for peer in (V0, V2, V3):
        assert (V1, b"to validators") in await inboxes[peer].wait_for(2 if peer in (V0, V3) else 1)
    # an observer receives from validators, and can send to them
    assert networks[V2].broadcast("test", b"to all", to="all") == 4
    assert await inboxes[O0].wait_for(1) == [(V2, b"to all")]
    assert networks[O0].broadcast("test", b"from observer", to="validators") == 4
    assert (O0, b"from observer") in await inboxes[V1].wait_for(2)
    assert networks[V0].metrics["frames_out"] >= 1 and networks[V0].metrics["bans"] == 0


async def test_refusals_over_real_sockets(kit: P2PKit) -> None:
    server = kit.network(V1)
    await server.start()
    assert server.bound_port is not None
    port = server.bound_port
    with pytest.raises(HandshakeRefused) as info:
        await kit.raw_handshake(port, V0, V1, genesis=make_genesis(chain_id="other-devnet"))
    assert info.value.by_peer and info.value.code is RefusalCode.CHAIN_ID
    assert "other-devnet" in info.value.detail
    with pytest.raises(HandshakeRefused) as info:
        await kit.raw_handshake(port, V0, V1, genesis=make_genesis(genesis_time="2026-02-02T00:00:00Z"))
    assert info.value.code is RefusalCode.GENESIS_HASH
    # An unknown key claiming validator-0: its auth signature does not verify.
    stranger = SigningKey.from_insecure_label("stranger")
    ws = await kit.raw_connect(port)
    honest = handshake_config(V0, kit.genesis)
    initiator = InitiatorHandshake(honest, V1, b"\x02" * 32)
    await ws.send_bytes(initiator.start())
    await receive_binary(ws)
    await ws.send_bytes(codec.encode({"type": "auth", "signature": stranger.sign(b"x" * 32)}))
    refusal = codec.decode(await receive_binary(ws))
    assert refusal["type"] == "refuse" and refusal["code"] == "bad-signature"
    # An identity the genesis does not list, and a validator dialling against the direction rule.
    hello = codec.decode(InitiatorHandshake(honest, V1, b"\x04" * 32).start())
    for index, code in ((9, "unknown-peer"), (2, "wrong-direction")):
        ws = await kit.raw_connect(port)
        await ws.send_bytes(codec.encode({**hello, "index": index}))
        refusal = codec.decode(await receive_binary(ws))
        assert (refusal["type"], refusal["code"]) == ("refuse", code)
    assert server.connected_peers() == []
    assert server.metrics["handshakes_failed"] >= 5


async def test_replayed_handshake_is_refused(kit: P2PKit) -> None:
    server = kit.network(V1)
    await server.start()
    assert server.bound_port is not None
    ws = await kit.raw_connect(server.bound_port)
    auth = await run_initiator(ws, handshake_config(V0, kit.genesis), V1)  # a genuine session, recorded
    await server.wait_connected([V0], TIMEOUT_S)
    await ws.close()
    # Replay the recorded hello (same nonce) and auth on a new connection.
    replay = await kit.raw_connect(server.bound_port)
    hello = InitiatorHandshake(handshake_config(V0, kit.genesis), V1, b"\x01" * 32).start()
    await replay.send_bytes(hello)
    await receive_binary(replay)  # the server's hello-ack carries a fresh nonce
    await replay.send_bytes(auth)
    refusal = codec.decode(await receive_binary(replay))
    assert refusal == {"type": "refuse", "code": "bad-signature", "detail": refusal["detail"]}
    assert (await replay.receive(timeout=TIMEOUT_S)).type in (
        aiohttp.WSMsgType.CLOSE,
        aiohttp.WSMsgType.CLOSED,
    )


def _bad_inputs(frame_bytes_max: int) -> dict[str, tuple[str, object]]:
    good = codec.encode(["test", b"payload"])
    return {
        "garbage": ("bytes", b"\xc1\xc1\xc1 not msgpack"),
        "truncated": ("bytes", good[:-3]),
        "oversized": ("bytes", codec.encode(["test", bytes(frame_bytes_max + 1)])),
        "text": ("str", "hello"),
        "non-canonical": ("bytes", msgpack.packb(["test", b"payload"], use_bin_type=False)),
        "unknown-channel": ("bytes", codec.encode(["nobody-listens", b"payload"])),
        "wrong-shape": ("bytes", codec.encode({"channel": "test"})),
    }


@pytest.mark.parametrize("case", sorted(_bad_inputs(1024)))
async def test_bad_input_costs_the_sender_its_link_and_a_ban(kit: P2PKit, case: str) -> None:
    limits = PeerLimits(
        frame_bytes_max=64 * 1024, handshake_timeout_ms=1_000, reconnect_base_ms=20, reconnect_max_ms=200
    )
    server, neighbour = kit.network(V1, limits=limits), kit.network(V2, limits=limits)
    inbox = Inbox()
    server.on("test", lambda peer, payload: None)
    neighbour.on("test", inbox)
    await kit.start_all([server, neighbour])
    await server.wait_connected([V2], TIMEOUT_S)
    assert server.bound_port is not None
    ws = await kit.raw_handshake(server.bound_port, V0, V1)  # an authenticated but misbehaving validator-0
    await server.wait_connected([V0], TIMEOUT_S)
    kind, data = _bad_inputs(limits.frame_bytes_max)[case]
    if kind == "str":
        assert isinstance(data, str)
        await ws.send_str(data)
    else:
        assert isinstance(data, bytes)
        await ws.send_bytes(data)
    closing = await ws.receive(timeout=TIMEOUT_S)
    assert closing.type is aiohttp.WSMsgType.CLOSE
    assert closing.data in (aiohttp.WSCloseCode.POLICY_VIOLATION, aiohttp.WSCloseCode.MESSAGE_TOO_BIG)
    assert server.is_banned(V0) and V0 not in server.connected_peers()
    assert server.metrics["bans"] == 1
    # its reconnect is refused during the ban
    with pytest.raises(HandshakeRefused) as info:
        await kit.raw_handshake(server.bound_port, V0, V1)
    assert info.value.code is RefusalCode.BANNED
    # the node keeps running and its other links keep working
    assert server.send(V2, "test", b"still here")
    assert await inbox.wait_for(1) == [(V1, b"still here")]


async def test_unauthenticated_connections_time_out_and_are_capped(kit: P2PKit) -> None:
    limits = PeerLimits(
        handshake_step_timeout_ms=300,
        pending_handshakes_max=4,
        pending_reserved_for_members=2,
        pending_per_address_max=2,
        pending_per_member_address_max=2,
        inbound_connections_max=8,
    )
    server = kit.network(V1, limits=limits)
    await server.start()
    assert server.bound_port is not None
    silent = [await kit.raw_connect(server.bound_port) for _ in range(2)]
    # a third silent connection from the same address evicts the oldest one instead of waiting for it
    third = await kit.raw_connect(server.bound_port)
    assert (await silent[0].receive(timeout=TIMEOUT_S)).type in (
        aiohttp.WSMsgType.CLOSE,
        aiohttp.WSMsgType.CLOSED,
        aiohttp.WSMsgType.ERROR,
    )
    assert server.metrics["pending_evicted"] == 1
    # the others are dropped after one handshake step with a timeout refusal
    for ws in (silent[1], third):
        refusal = codec.decode(await receive_binary(ws))
        assert refusal["code"] == "timeout"
        assert (await ws.receive(timeout=TIMEOUT_S)).type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
        )
    # a TCP connection that never sends its HTTP request is closed after one step, too
    reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
    async with asyncio.timeout(TIMEOUT_S):
        assert await reader.read() == b""
    writer.close()
    # once they are gone a real peer still gets in
    ws = await kit.raw_handshake(server.bound_port, V0, V1)
    await server.wait_connected([V0], TIMEOUT_S)
    await ws.close()


async def test_pending_connections_that_spoke_are_not_evicted(kit: P2PKit) -> None:
    limits = PeerLimits(
        handshake_step_timeout_ms=2_000,
        pending_handshakes_max=4,
        pending_reserved_for_members=2,
        pending_per_address_max=2,
        pending_per_member_address_max=2,
        pending_per_identity_max=1,
    )
    server = kit.network(V2, limits=limits)
    await server.start()
    assert server.bound_port is not None
    hello = InitiatorHandshake(handshake_config(V0, kit.genesis), V2, b"\x05" * 32).start()
    spoke = await kit.raw_connect(server.bound_port)
    await spoke.send_bytes(hello)
    await receive_binary(spoke)  # hello-ack: it is greeted, waiting for auth
    # a second hello as the same identity is refused as busy (one pending handshake per identity)
    again = await kit.raw_connect(server.bound_port)
    await again.send_bytes(hello)
    assert codec.decode(await receive_binary(again))["code"] == "busy"
    # the address's other slot is taken by a silent connection; the next arrival evicts that one, not `spoke`
    silent = await kit.raw_connect(server.bound_port)
    newest = await kit.raw_connect(server.bound_port)
    assert (await silent.receive(timeout=TIMEOUT_S)).type in (
        aiohttp.WSMsgType.CLOSE,
        aiohttp.WSMsgType.CLOSED,
        aiohttp.WSMsgType.ERROR,
    )
    assert not spoke.closed
    # with `spoke` (spoke) and `newest` (silent, then speaking) both greeted, a further arrival is refused
    await newest.send_bytes(InitiatorHandshake(handshake_config(V1, kit.genesis), V2, b"\x06" * 32).start())
    await receive_binary(newest)
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await kit.raw_connect(server.bound_port)
    assert info.value.status == 503
    for ws in (spoke, newest):
        await ws.close()


_UPGRADE_REQUEST = (
    b"GET /p2p HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class _Answers(list[bytes]):
    """The status lines the flood got back; `warm` is set once there are 80 (every loop answered twice)."""

    def __init__(self) -> None:
        super().__init__()
        self.warm = asyncio.Event()

    def append(self, line: bytes) -> None:
        super().append(line)
        if len(self) >= 80:
            self.warm.set()


async def _silent_upgrade_loop(port: int, source_host: str, stop: asyncio.Event, answers: _Answers) -> None:
    """The flood of issue 17: upgrade GET /p2p, stay silent until dropped, retry 20 ms after a 503 or close."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source_host, 0))
        except OSError:
            await asyncio.sleep(0.02)
            continue
        try:
            writer.write(_UPGRADE_REQUEST)
            answers.append(await reader.readline())
            read = asyncio.ensure_future(reader.read())  # silent until the node drops us
            await asyncio.wait(
                [read, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED
            )
            read.cancel()
        except OSError:
            pass
        finally:
            writer.transport.abort()
        await asyncio.sleep(0.02)


@pytest.mark.serial
@pytest.mark.parametrize(
    "flood_host", ["127.0.0.1", "127.0.0.2"], ids=["from-members-host", "from-elsewhere"]
)
async def test_members_link_within_2_s_while_silent_upgrades_flood_the_port(
    kit: P2PKit, flood_host: str
) -> None:
    # Issue 17 item 2: 40 loops that upgrade and stay silent kept a restarted validator from re-linking.
    # Real reconnect backoff (the node's 250 ms .. 3 s) and handshake deadlines, not the fast test limits.
    limits = PeerLimits(reconnect_base_ms=250, reconnect_max_ms=3_000)
    listener = kit.network(V3, limits=limits)
    await listener.listen()
    assert listener.bound_port is not None
    port = listener.bound_port
    await listener.start()
    stop = asyncio.Event()
    answers = _Answers()
    flood = [asyncio.ensure_future(_silent_upgrade_loop(port, flood_host, stop, answers)) for _ in range(40)]
    try:
        async with asyncio.timeout(TIMEOUT_S):  # the flood is running: the loops got upgrades or 503s
            await answers.warm.wait()
        dialers = [kit.network(peer, limits=limits) for peer in (V0, V1, V2)]
        for dialer in dialers:
            dialer.set_peer_address(V3, f"127.0.0.1:{port}")
        started = asyncio.get_running_loop().time()
        for dialer in dialers:
            await dialer.start()
        await listener.wait_connected([V0, V1, V2], 2.0)
        elapsed_s = asyncio.get_running_loop().time() - started
        assert elapsed_s < 2.0
        flooded = len(answers)
        await asyncio.sleep(0.2)
        assert len(answers) > flooded  # the flood was still running when they linked
    finally:
        stop.set()
        await asyncio.gather(*flood, return_exceptions=True)
    assert listener.metrics["pending_evicted"] + listener.metrics["inbound_refused"] > 0


async def test_slow_peer_fills_its_bounded_queue(kit: P2PKit) -> None:
    limits = PeerLimits(
        send_queue_frames_max=8,
        send_queue_bytes_max=1024 * 1024,
        write_stall_timeout_ms=1_000,
        handshake_timeout_ms=1_000,
    )
    sender = kit.network(V0, limits=limits)
    # validator-1 is played by a raw socket that completes the handshake and then never reads
    listener = await _RawListener.start(kit, V1)
    sender.set_peer_address(V1, f"127.0.0.1:{listener.port}")
    gone = asyncio.Event()
    sender.on_disconnect(lambda peer: gone.set())
    await sender.start()
    await sender.wait_connected([V1], TIMEOUT_S)
    payload = bytes(200 * 1024)
    accepted = 0
    for _ in range(2_000):  # at most ~400 MB offered; socket buffers hold a few MB at most
        if not sender.send(V1, "test", payload):
            break
        accepted += 1
        frames, queued = sender.get_send_queue(V1)
        assert frames <= 8 and queued <= 1024 * 1024
        await asyncio.sleep(0)  # let the writer run
    else:
        pytest.fail("the send queue never filled")
    assert sender.metrics["frames_dropped_queue_full"] >= 1
    # send_wait gives up with SendQueueFull once the peer's buffers are saturated and nothing drains
    for _ in range(200):
        try:
            await sender.send_wait(V1, "test", payload, timeout_s=0.05)
        except SendQueueFull:
            break
    else:
        pytest.fail("send_wait never reported a full queue")
    frames, queued = sender.get_send_queue(V1)
    assert frames <= 8 and queued <= 1024 * 1024
    # a peer that accepts nothing for write_stall_timeout_ms is dropped, freeing its queue (the bound is
    # generous: on a loaded machine the sender's own writes to the socket buffers take a while first)
    async with asyncio.timeout(4 * TIMEOUT_S):
        await gone.wait()
    assert sender.get_send_queue(V1) == (0, 0) and accepted > 0
    await listener.close()


class _RawListener:
    """A peer port served by hand: it answers the handshake as `local` and then reads nothing."""

    def __init__(self, kit: P2PKit, local: PeerId, runner: aiohttp.web.AppRunner, port: int) -> None:
        self.kit, self.local, self.runner, self.port = kit, local, runner, port
        self.release = asyncio.Event()

    @classmethod
    async def start(cls, kit: P2PKit, local: PeerId) -> _RawListener:
        from aiohttp import web

        holder: list[_RawListener] = []

        async def handle(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse(max_msg_size=64 * 1024 * 1024)
            await ws.prepare(request)
            handshake = ResponderHandshake(handshake_config(local, kit.genesis), b"\x03" * 32)
            for _ in range(2):
                await ws.send_bytes(handshake.receive((await ws.receive()).data))
            await holder[0].release.wait()  # never read again
            return ws

        app = web.Application()
        app.router.add_get("/p2p", handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        listener = cls(kit, local, runner, int(runner.addresses[0][1]))
        holder.append(listener)
        return listener

    async def close(self) -> None:
        self.release.set()
        await self.runner.cleanup()


async def test_reconnect_after_peer_restarts(kit: P2PKit) -> None:
    v0, v1 = kit.network(V0), kit.network(V1)
    events: list[tuple[str, PeerId]] = []
    changed = asyncio.Event()

    def record(kind: str) -> Callable[[PeerId], None]:
        def callback(peer: PeerId) -> None:
            events.append((kind, peer))
            changed.set()

        return callback

    v0.on_connect(record("up"))
    v0.on_disconnect(record("down"))
    await kit.start_all([v0, v1])
    await v0.wait_connected([V1], TIMEOUT_S)
    port = v1.bound_port
    assert port is not None
    # the listener (v1) restarts on the same port: the dialler (v0) redials with backoff
    await v1.close()
    async with asyncio.timeout(TIMEOUT_S):
        while ("down", V1) not in events:
            changed.clear()
            await changed.wait()
    restarted = kit.network(V1, listen_port=port)
    await restarted.start()
    await v0.wait_connected([V1], TIMEOUT_S)
    await restarted.wait_connected([V0], TIMEOUT_S)
    assert events == [("up", V1), ("down", V1), ("up", V1)]
    # the dialler (v0) restarts: it dials again at start, and v1 replaces the dead link
    await v0.close()
    again = kit.network(V0)
    again.set_peer_address(V1, f"127.0.0.1:{port}")
    inbox = Inbox()
    restarted.on("test", inbox)
    await again.start()
    await again.wait_connected([V1], TIMEOUT_S)
    assert again.send(V1, "test", b"back")
    assert await inbox.wait_for(1) == [(V0, b"back")]


async def test_handler_errors_and_punish(kit: P2PKit) -> None:
    limits = PeerLimits(handler_errors_max=2, handshake_timeout_ms=1_000, reconnect_base_ms=20)
    v0, v1 = kit.network(V0, limits=limits), kit.network(V1, limits=limits)
    seen = Inbox()

    async def flaky(peer: PeerId, payload: bytes) -> None:
        seen(peer, payload)
        if payload == b"bug":
            raise RuntimeError("our own bug")
        if payload == b"invalid":
            raise InvalidInput("bad consensus signature")

    v1.on("test", flaky)
    await kit.start_all([v0, v1])
    await v1.wait_connected([V0], TIMEOUT_S)
    await v0.wait_connected([V1], TIMEOUT_S)
    assert v0.send(V1, "test", b"bug") and v0.send(V1, "test", b"fine")
    await seen.wait_for(2)
    assert v1.is_connected(V0) and v1.metrics["handler_errors"] == 1  # one bug does not cost the link
    assert v0.send(V1, "test", b"invalid")
    await seen.wait_for(3)
    assert v1.is_banned(V0) and not v1.is_connected(V0)
    # the node can punish directly, too
    assert not v0.is_banned(V1)
    v0.punish(V1, "invalid consensus signature")
    assert v0.is_banned(V1) and v0.metrics["bans"] == 1


async def test_tls_round_trip(kit: P2PKit, tmp_path: Path) -> None:
    cert_file, key_file = write_self_signed_cert(tmp_path)
    tls = TlsConfig(cert_file, key_file, ca_file=cert_file)
    v0, v1 = kit.network(V0, tls=tls), kit.network(V1, tls=tls)
    inbox0, inbox1 = Inbox(), Inbox()
    v0.on("test", inbox0)
    v1.on("test", inbox1)
    await kit.start_all([v0, v1])
    await v0.wait_connected([V1], TIMEOUT_S)
    assert v0.send(V1, "test", b"over tls") and v1.send(V0, "test", b"back over tls")
    assert await inbox1.wait_for(1) == [(V0, b"over tls")]
    assert await inbox0.wait_for(1) == [(V1, b"back over tls")]
    # a plaintext client cannot talk to the TLS port
    assert v1.bound_port is not None
    with pytest.raises(aiohttp.ClientError):
        await kit.raw_connect(v1.bound_port)


def test_fast_limits_are_valid() -> None:
    assert FAST_LIMITS.reconnect_max_ms <= 200 and isinstance(FAST_LIMITS, PeerLimits)
    assert PeerNetwork.__init__.__doc__ is not None


async def test_client_gone_during_the_upgrade_is_no_unhandled_error(
    kit: P2PKit, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Seen in a loaded integration run: a peer shutting down reset its connection while we were still
    # completing the WebSocket upgrade, and aiohttp logged "Unhandled exception ... Call .prepare() first".
    server = kit.network(V1)
    await server.start()
    assert server.bound_port is not None

    async def reset_during_prepare(self: aiohttp.web.WebSocketResponse, request: object) -> None:
        raise ConnectionResetError("peer reset the connection")

    monkeypatch.setattr(aiohttp.web.WebSocketResponse, "prepare", reset_during_prepare)
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await kit.raw_connect(server.bound_port)
    assert info.value.status == 400
    monkeypatch.undo()
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    ws = await kit.raw_handshake(server.bound_port, V0, V1)  # and the port still serves real peers
    await server.wait_connected([V0], TIMEOUT_S)
    await ws.close()


async def test_our_own_resource_failures_do_not_count_against_the_peer(kit: P2PKit) -> None:
    # A full disk made every handler fail, and the node banned all its honest peers after ten frames each.
    limits = PeerLimits(handler_errors_max=2, handshake_timeout_ms=1_000, reconnect_base_ms=20)
    v0, v1 = kit.network(V0, limits=limits), kit.network(V1, limits=limits)
    seen = Inbox()

    def disk_full(peer: PeerId, payload: bytes) -> None:
        seen(peer, payload)
        raise ResourceFailure("writing the consensus log failed: No space left on device")

    v1.on("test", disk_full)
    await kit.start_all([v0, v1])
    await v1.wait_connected([V0], TIMEOUT_S)
    await v0.wait_connected([V1], TIMEOUT_S)
    for i in range(5):
        assert v0.send(V1, "test", bytes([i]))
    await seen.wait_for(5)
    assert v1.is_connected(V0) and not v1.is_banned(V0)
    assert v1.metrics["handler_errors"] == 5 and v1.metrics["bans"] == 0
