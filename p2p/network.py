"""PeerNetwork: the asyncio shell that listens, dials, authenticates and routes frames between nodes.

It serves `GET /p2p` on its own aiohttp AppRunner (optionally over TLS), keeps one outgoing connection to
every peer that identity.is_dialer says it dials (redialling with capped, jittered exponential backoff), runs
the handshake (p2p.handshake) under a deadline, and hands each authenticated link to a PeerConnection. The node
registers a handler per channel with `on()`, sends with `send()`/`send_wait()`/`broadcast()`, and learns about
links through `on_connect()`/`on_disconnect()`. A peer that sends a malformed frame, or that the node reports
with `punish()`, is disconnected and banned for `PeerLimits.ban_duration_ms`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Literal

import aiohttp
from aiohttp import WSCloseCode, web
from aiohttp.http_exceptions import HttpProcessingError

from core.errors import InvalidInput, InvariantBroken, ResourceFailure
from core.genesis import Genesis
from core.keys import SigningKey
from core.ratelog import OneLineErrors, RateLimitedLog
from p2p.connection import (
    CLOSE_TIMEOUT_S,
    PeerConnection,
    WebSocket,
    abort_client,
    close_quietly,
    dial_and_authenticate,
    receive_handshake_message,
)
from p2p.counters import METRIC_NAMES
from p2p.errors import FrameError, HandshakeRefused, PeerNotConnected, RefusalCode, SendQueueFull
from p2p.framing import decode_frame, encode_frame, is_valid_channel
from p2p.handshake import (
    NONCE_BYTES,
    HandshakeConfig,
    InitiatorHandshake,
    ResponderHandshake,
    encode_refusal,
)
from p2p.identity import PeerDirectory, PeerId, ValidatorEntry, compute_dial_targets
from p2p.listener import (
    LinkFailures,
    PeerListener,
    add_peer_routes,
    bind_peer_socket,
    describe_dial_failure,
    resolve_member_ips,
)
from p2p.policy import BanList, PeerLimits, PendingHandshakes, compute_backoff_ms, split_hosts
from p2p.tls import TlsConfig

log = logging.getLogger("carbonchain.p2p")
# aiohttp's server log for the peer port: garbage that is not even HTTP is the sender's fault, not ours
http_log = logging.getLogger("carbonchain.p2p.http")
http_log.addFilter(OneLineErrors(log, (HttpProcessingError, ConnectionError)))

P2P_PATH = "/p2p"
FrameHandler = Callable[[PeerId, bytes], Awaitable[None] | None]
PeerCallback = Callable[[PeerId], Awaitable[None] | None]
BroadcastTarget = Literal["validators", "observers", "all"]


class PeerNetwork:
    """The peer layer of one node. Construct, register handlers, `await start()`, and `await close()`."""

    def __init__(
        self,
        genesis: Genesis,
        node_key: SigningKey,
        self_id: PeerId,
        listen_host: str = "127.0.0.1",
        listen_port: int | None = 0,
        tls: TlsConfig | None = None,
        limits: PeerLimits | None = None,
        *,
        peer_addresses: Mapping[PeerId, str] | None = None,
        validators: Sequence[ValidatorEntry] | None = None,
    ) -> None:
        """`listen_port=None` means no listener (observers, which only dial); 0 picks a free port.

        `peer_addresses` overrides the `peer_address` of some validators (tests, NAT); `validators` replaces
        the genesis validators (a node that joins later starts from the set in force, `update_validators`).
        """
        self.directory = PeerDirectory(genesis, validators)
        self.self_id = self_id
        self.limits = limits or PeerLimits()
        self._config = HandshakeConfig(
            genesis.chain_id, genesis.genesis_hash, self.directory, self_id, node_key
        )
        self._listen_host = listen_host
        self._listen_port = listen_port
        self._tls = tls
        self._address_overrides = dict(peer_addresses or {})
        genesis_addresses = {peer: self.directory.get_address(peer) for peer in self.directory.validators}
        self._addresses = {
            p: a for p, a in genesis_addresses.items() if a is not None
        } | self._address_overrides
        self._dialling: set[PeerId] = set()  # peers with a dial loop running
        self._handlers: dict[str, FrameHandler] = {}
        self._connect_callbacks: list[PeerCallback] = []
        self._disconnect_callbacks: list[PeerCallback] = []
        self._connections: dict[PeerId, PeerConnection] = {}
        self._bans = BanList(self.limits.ban_duration_ms)
        self._handler_errors: dict[PeerId, int] = {}
        self._inbound_count = 0  # inbound connections past the HTTP upgrade, authenticated or not
        self._pending = PendingHandshakes(self.limits, split_hosts(self._addresses.values()))
        self._pending_aborts: dict[int, Callable[[], None]] = {}  # ticket -> drop that connection
        self._changed = asyncio.Event()  # replaced on every connect/disconnect, for wait_connected()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._listener: PeerListener | None = None
        self._session: aiohttp.ClientSession | None = None
        self._started = False
        self._closing = False
        self.bound_port: int | None = None  # the listening port, once listening
        self.metrics: dict[str, int] = dict.fromkeys(METRIC_NAMES, 0)  # counters for Prometheus export
        self.handshake_failures: dict[str, int] = {}  # LinkFailure.reason -> count, for Prometheus too
        self._link_failures = LinkFailures(str(self_id))  # why dialling a peer fails, until it links
        self._rng = random.Random()  # reconnect jitter only; not consensus
        self._refusals_log = RateLimitedLog(log)  # one line per refusal code a minute: anyone can cause them
        self._failures_log = RateLimitedLog(log)  # our own failures that every frame would repeat

    # --- registration -------------------------------------------------------------------------------------

    def on(self, channel: str, handler: FrameHandler) -> None:
        """Route frames on `channel` to `handler(peer_id, payload)` (sync or async). Register before start()."""
        if not is_valid_channel(channel):
            raise InvariantBroken(f"channel {channel!r} is not a valid channel name")
        if channel in self._handlers:
            raise InvariantBroken(f"channel {channel!r} already has a handler")
        self._handlers[channel] = handler

    def on_connect(self, callback: PeerCallback) -> None:
        """Call `callback(peer_id)` whenever a link to a peer comes up (before its first frame is read)."""
        self._connect_callbacks.append(callback)

    def on_disconnect(self, callback: PeerCallback) -> None:
        """Call `callback(peer_id)` whenever a link to a peer goes down."""
        self._disconnect_callbacks.append(callback)

    def set_peer_address(self, peer: PeerId, address: str) -> None:
        """Dial `peer` at `host:port` from the next attempt on."""
        self._addresses[peer] = address
        self._pending.add_member_hosts(split_hosts([address]))

    def update_validators(self, validators: Sequence[ValidatorEntry]) -> None:
        """Admit and dial exactly these validators from now on (the chain's set in force and an approved
        change's new members): one removed, or known under a new key, loses its link and is refused."""
        change = self.directory.update_validators(validators)
        for peer in change.dropped:
            connection = self._connections.get(peer)
            if connection is not None:
                connection.request_close("no longer an admitted validator", WSCloseCode.POLICY_VIOLATION)
            if not self.directory.is_known(peer):
                self._addresses.pop(peer, None)
                self._link_failures.pop(peer)
        for peer in (*change.added, *change.moved):
            address = self._address_overrides.get(peer) or self.directory.get_address(peer)
            if address is not None:
                self.set_peer_address(peer, address)
        if change.added or change.dropped:
            log.info("%s: validators now %s", self.self_id, ", ".join(map(str, self.directory.validators)))
        if self._started and not self._closing:
            self._dial_targets()

    def _dial_targets(self) -> None:
        for peer in compute_dial_targets(self.directory, self.self_id):
            if peer not in self._dialling:
                self._dialling.add(peer)
                self._spawn(self._dial_loop(peer), f"p2p-dial-{peer}")

    # --- lifecycle ----------------------------------------------------------------------------------------

    async def listen(self) -> int | None:
        """Bind the peer port (if any) without dialling yet; returns the bound port. start() calls this."""
        if self._runner is not None or self._listen_port is None:
            return self.bound_port
        self._pending.add_member_hosts(await resolve_member_ips(self._addresses.values(), str(self.self_id)))
        app = web.Application()
        add_peer_routes(app, P2P_PATH, self._handle_inbound)
        runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=self.limits.close_grace_ms / 1000,
            # A connection that sends no HTTP request is closed after one handshake step (aiohttp's
            # default keeps it an hour); the peer port serves nothing but upgrades.
            keepalive_timeout=self.limits.handshake_step_timeout_ms / 1000,
            logger=http_log,
        )
        await runner.setup()
        try:
            sock = await bind_peer_socket(self._listen_host, self._listen_port)
        except BaseException:
            await runner.cleanup()
            raise
        assert runner.server is not None  # set up above
        self._listener = PeerListener(
            sock,
            runner.server,
            ssl_context=self._tls.create_server_context() if self._tls else None,
            first_byte_timeout_s=self.limits.handshake_step_timeout_ms / 1000,  # silent: gone after a step
            sniffing_max=self.limits.pending_handshakes_max,
            on_failure=self._count_handshake_failure,
            name=str(self.self_id),
        )
        self._listener.start()
        self._runner = runner
        self.bound_port = self._listener.port
        log.info(
            "%s listening for peers on %s:%d (%s)",
            self.self_id,
            self._listen_host,
            self.bound_port,
            "TLS" if self._tls else "plaintext",
        )
        return self.bound_port

    async def start(self) -> None:
        """Listen (unless already listening) and start dialling every peer this node dials."""
        if self._started:
            raise InvariantBroken("PeerNetwork.start() called twice")
        self._started = True
        await self.listen()
        ssl_context = self._tls.create_client_context() if self._tls else None
        connector = aiohttp.TCPConnector(ssl=ssl_context if ssl_context is not None else True)
        self._session = aiohttp.ClientSession(connector=connector)
        self._dial_targets()

    async def close(self) -> None:
        """Stop dialling, close every link and the listener, and wait (up to close_grace_ms) for all tasks."""
        if self._closing:
            return
        self._closing = True
        grace_s = self.limits.close_grace_ms / 1000
        for task in list(self._tasks):
            if task.get_name().startswith("p2p-dial-"):
                task.cancel()
        for connection in list(self._connections.values()):
            connection.request_close("node shutting down", WSCloseCode.GOING_AWAY)
        if self._listener is not None:
            await self._listener.close()
        if self._runner is not None:
            await self._runner.cleanup()  # closes inbound connections, waiting for their handlers
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        log.info("%s peer layer closed", self.self_id)

    def _spawn(self, coroutine: Awaitable[None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- state ----------------------------------------------------------------------------------------------

    def connected_peers(self) -> list[PeerId]:
        """Peers with an authenticated link right now, sorted."""
        return sorted(peer for peer, conn in self._connections.items() if conn.is_open())

    def is_connected(self, peer: PeerId) -> bool:
        connection = self._connections.get(peer)
        return connection is not None and connection.is_open()

    async def wait_connected(self, peers: Iterable[PeerId], timeout_s: float) -> None:
        """Wait until every listed peer is connected; TimeoutError after `timeout_s`."""
        wanted = list(peers)
        async with asyncio.timeout(timeout_s):
            while not all(self.is_connected(peer) for peer in wanted):
                await self._changed.wait()

    def get_send_queue(self, peer: PeerId) -> tuple[int, int]:
        """(frames, bytes) waiting in the send queue to `peer`; (0, 0) when not connected."""
        connection = self._connections.get(peer)
        return (connection.queued_frames, connection.queued_bytes) if connection else (0, 0)

    def get_link_failures(self) -> dict[PeerId, str]:
        """Why each peer we dial and are not linked to failed on the last attempt (one line each)."""
        return self._link_failures.texts()

    def _count_handshake_failure(self, reason: str) -> None:
        self.handshake_failures[reason] = self.handshake_failures.get(reason, 0) + 1

    def is_banned(self, peer: PeerId) -> bool:
        return self._bans.is_banned(peer, _now_ms())

    def _notify_changed(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # --- sending --------------------------------------------------------------------------------------------

    def send(self, peer: PeerId, channel: str, payload: bytes) -> bool:
        """Queue a frame to one peer. False when it is not connected or its send queue is full.

        FrameTooLarge (a bug of the caller) when the frame exceeds frame_bytes_max.
        """
        frame = encode_frame(channel, payload, self.limits.frame_bytes_max)
        connection = self._connections.get(peer)
        return connection is not None and connection.try_enqueue(frame)

    async def send_wait(
        self, peer: PeerId, channel: str, payload: bytes, timeout_s: float | None = None
    ) -> None:
        """Queue a frame to one peer, waiting for room in its queue.

        Raises PeerNotConnected (not connected, or the link ends while waiting) or SendQueueFull (no room
        within `timeout_s`).
        """
        frame = encode_frame(channel, payload, self.limits.frame_bytes_max)
        connection = self._connections.get(peer)
        if connection is None:
            raise PeerNotConnected(f"{peer} is not connected")
        try:
            async with asyncio.timeout(timeout_s):
                await connection.enqueue_wait(frame)
        except TimeoutError:
            raise SendQueueFull(f"no room in the send queue of {peer} within {timeout_s} s") from None

    def broadcast(self, channel: str, payload: bytes, to: BroadcastTarget = "all") -> int:
        """Queue a frame to every connected peer of a kind; returns how many queues accepted it."""
        if to not in ("validators", "observers", "all"):
            raise InvariantBroken(f"unknown broadcast target {to!r}")
        frame = encode_frame(channel, payload, self.limits.frame_bytes_max)
        accepted = 0
        for peer, connection in sorted(self._connections.items()):
            if to == "all" or (to == "validators") == peer.is_validator:
                accepted += connection.try_enqueue(frame)
        return accepted

    # --- misbehaviour -------------------------------------------------------------------------------------

    def punish(self, peer: PeerId, reason: str) -> None:
        """Ban `peer` for ban_duration_ms and drop its link (e.g. it sent an invalid consensus signature)."""
        if not self.directory.is_known(peer):
            raise InvariantBroken(f"cannot punish {peer}: not in the genesis")
        self._bans.ban(peer, _now_ms(), reason)
        self._handler_errors.pop(peer, None)
        self.metrics["bans"] += 1
        log.warning("%s banned %s for %d ms: %s", self.self_id, peer, self.limits.ban_duration_ms, reason)
        connection = self._connections.get(peer)
        if connection is not None:
            connection.request_close(f"banned: {reason}", WSCloseCode.POLICY_VIOLATION)

    async def _dispatch(self, connection: PeerConnection, data: bytes) -> None:
        """Decode one frame and run its handler; FrameError for a bad frame, handler errors are contained."""
        frame = decode_frame(data, self.limits.frame_bytes_max)
        handler = self._handlers.get(frame.channel)
        if handler is None:
            raise FrameError(f"frame on unknown channel {frame.channel!r}")
        peer = connection.peer
        try:
            result = handler(peer, frame.payload)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except InvalidInput as exc:  # the handler says the peer sent something invalid
            self.metrics["handler_errors"] += 1
            self.punish(peer, f"invalid {frame.channel} payload: {exc}")
        except ResourceFailure as exc:  # our machine failed (e.g. a full disk): not the peer's doing
            self.metrics["handler_errors"] += 1
            self._failures_log.log(
                logging.ERROR,
                "resource",
                "%s: handling a %r frame failed: %s",
                self.self_id,
                frame.channel,
                exc,
            )
        except Exception:  # our bug, possibly triggered on purpose: log it, count it against the peer
            self.metrics["handler_errors"] += 1
            count = self._handler_errors.get(peer, 0) + 1
            self._handler_errors[peer] = count
            log.exception("%s: handler for %r failed on a frame from %s", self.self_id, frame.channel, peer)
            if count >= self.limits.handler_errors_max:
                self.punish(peer, f"{count} frames made handlers fail")

    # --- links ----------------------------------------------------------------------------------------------

    async def _serve(self, peer: PeerId, ws: WebSocket, *, outbound: bool, abort: Callable[[], None]) -> None:
        """Register an authenticated link, run it to its end, and unregister it."""
        connection = PeerConnection(
            peer,
            ws,
            outbound=outbound,
            limits=self.limits,
            metrics=self.metrics,
            abort=abort,
            misbehaved=self.punish,
        )
        previous = self._connections.get(peer)
        if previous is not None:  # the peer restarted and redialled; its old link is dead or dying
            previous.request_close("replaced by a newer connection")
        self._connections[peer] = connection
        self.metrics["connects"] += 1
        self._notify_changed()
        log.info("%s connected to %s (%s)", self.self_id, peer, "outbound" if outbound else "inbound")
        try:
            await self._fire(self._connect_callbacks, peer)
            reason = await connection.run(self._dispatch)
        finally:
            if self._connections.get(peer) is connection:
                del self._connections[peer]
            self.metrics["disconnects"] += 1
            self._notify_changed()
        log.info("%s disconnected from %s: %s", self.self_id, peer, reason)
        if peer not in self._connections:  # not when a newer link replaced this one
            await self._fire(self._disconnect_callbacks, peer)

    async def _fire(self, callbacks: list[PeerCallback], peer: PeerId) -> None:
        for callback in callbacks:
            try:
                result = callback(peer)
                if inspect.isawaitable(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: peer event callback failed for %s", self.self_id, peer)

    # --- inbound --------------------------------------------------------------------------------------------

    async def _handle_inbound(self, request: web.Request) -> web.StreamResponse:
        limits = self.limits
        if self._closing or self._inbound_count >= limits.inbound_connections_max:
            self.metrics["inbound_refused"] += 1
            return web.Response(status=503, text="busy\n")
        admission = self._pending.admit(request.remote or "")
        for evicted in admission.evicted:
            self.metrics["pending_evicted"] += 1
            drop = self._pending_aborts.pop(evicted, None)
            if drop is not None:
                drop()
        ticket = admission.ticket
        if ticket is None:
            self.metrics["inbound_refused"] += 1
            return web.Response(status=503, text="busy\n")
        transport = request.transport

        def abort() -> None:
            if transport is not None:
                transport.abort()

        self._pending_aborts[ticket] = abort
        self._inbound_count += 1
        try:
            ws = web.WebSocketResponse(
                max_msg_size=limits.frame_bytes_max,
                compress=False,  # compression would let a small message inflate past our limits
                heartbeat=limits.heartbeat_ms / 1000,
                timeout=CLOSE_TIMEOUT_S,
            )
            peer: PeerId | None = None
            try:
                async with asyncio.timeout(limits.handshake_timeout_ms / 1000):
                    await ws.prepare(request)
                    peer = await self._respond(ws, ticket)
            except TimeoutError:
                refusal = HandshakeRefused(RefusalCode.TIMEOUT, "handshake took too long")
                self._note_inbound_refusal(request.remote, refusal)
                await self._refuse(ws, refusal)
            except HandshakeRefused as exc:
                self._note_inbound_refusal(request.remote, exc)
                await self._refuse(ws, exc)
            except (ConnectionError, aiohttp.ClientError) as exc:
                self.metrics["handshakes_failed"] += 1
                log.debug("%s: inbound handshake failed: %r", self.self_id, exc)
            self._release_pending(ticket)
            if not ws.prepared:
                # the client went away (or stalled) before the upgrade completed: aiohttp cannot finish an
                # unprepared WebSocketResponse ("Call .prepare() first"), so answer with a plain response
                return web.Response(status=400, text="websocket upgrade did not complete\n")
            if peer is not None:
                await self._serve(peer, ws, outbound=False, abort=abort)
            else:
                await close_quietly(ws)
            return ws
        finally:
            self._release_pending(ticket)
            self._inbound_count -= 1

    def _release_pending(self, ticket: int) -> None:
        self._pending.release(ticket)
        self._pending_aborts.pop(ticket, None)

    async def _respond(self, ws: web.WebSocketResponse, ticket: int) -> PeerId:
        """Answer the handshake; each message the (unproven) dialler owes must come within one step."""
        step_s = self.limits.handshake_step_timeout_ms / 1000
        handshake = ResponderHandshake(self._config, os.urandom(NONCE_BYTES))
        async with asyncio.timeout(step_s):
            hello = await receive_handshake_message(ws)
        hello_ack = handshake.receive(hello)
        claimed = handshake.claimed
        if claimed is not None:
            self._check_not_banned(claimed)
            if not self._pending.greet(ticket, claimed):
                raise HandshakeRefused(RefusalCode.BUSY, f"too many pending handshakes as {claimed}")
        await ws.send_bytes(hello_ack)
        async with asyncio.timeout(step_s):
            auth = await receive_handshake_message(ws)
        welcome = handshake.receive(auth)
        peer = handshake.peer
        if peer is None:
            raise InvariantBroken("responder handshake finished without a peer")
        self._check_not_banned(peer)
        if self._closing:
            raise HandshakeRefused(RefusalCode.BUSY, "node is shutting down")
        await ws.send_bytes(welcome)
        self.metrics["handshakes_ok"] += 1
        return peer

    def _check_not_banned(self, peer: PeerId) -> None:
        ban = self._bans.get_ban(peer, _now_ms())
        if ban is not None:
            remaining_ms = ban.until_ms - _now_ms()
            raise HandshakeRefused(RefusalCode.BANNED, f"{peer} is banned for {remaining_ms} ms more")

    def _note_inbound_refusal(self, remote: str | None, refusal: HandshakeRefused) -> None:
        """Count and log a refused inbound handshake, naming the address: one line per reason a minute
        (anyone can open the peer port)."""
        self._count_handshake_failure(refusal.code.value)
        self._refusals_log.warning(
            refusal.code.value, "%s: refused a peer link from %s: %s", self.self_id, remote, refusal
        )

    async def _refuse(self, ws: WebSocket, refusal: HandshakeRefused) -> None:
        """Tell the other end why (unless it refused us), counted in handshakes_failed."""
        self.metrics["handshakes_failed"] += 1
        if refusal.by_peer or ws.closed:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await ws.send_bytes(encode_refusal(refusal.code, refusal.detail))

    # --- outbound -------------------------------------------------------------------------------------------

    async def _dial_loop(self, peer: PeerId) -> None:
        """Keep a link to `peer` up for as long as the network runs and `peer` is one we dial."""
        try:
            await self._keep_dialling(peer)
        finally:
            self._dialling.discard(peer)

    async def _keep_dialling(self, peer: PeerId) -> None:
        attempt = 0
        while not self._closing and peer in compute_dial_targets(self.directory, self.self_id):
            ban = self._bans.get_ban(peer, _now_ms())
            if ban is not None:
                await asyncio.sleep((ban.until_ms - _now_ms()) / 1000)
                continue
            try:
                ws = await self._dial(peer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # refused, unreachable, TLS failure, reset: all mean "try again later"
                self._note_dial_failure(peer, exc)
            else:
                attempt = 0
                self._link_failures.pop(peer)
                await self._serve(peer, ws, outbound=True, abort=functools.partial(abort_client, ws))
            delay_ms = compute_backoff_ms(attempt, self.limits, self._rng.random())
            attempt += 1
            await asyncio.sleep(delay_ms / 1000)

    def _note_dial_failure(self, peer: PeerId, exc: Exception) -> None:
        address = self._addresses.get(peer, "?")
        failure = describe_dial_failure(exc, address, tls=self._tls is not None)
        self._count_handshake_failure(failure.reason)
        self._link_failures.note(peer, failure)

    async def _dial(self, peer: PeerId) -> aiohttp.ClientWebSocketResponse:
        """Connect to `peer` and complete the handshake; the returned WebSocket is authenticated."""
        address = self._addresses.get(peer)
        if address is None or self._session is None:
            raise ConnectionError(f"no address known for {peer}")
        url = f"{'wss' if self._tls is not None else 'ws'}://{address}{P2P_PATH}"
        handshake = InitiatorHandshake(self._config, peer, os.urandom(NONCE_BYTES))
        ws = await dial_and_authenticate(self._session, url, handshake, self.limits, self._refuse)
        self.metrics["handshakes_ok"] += 1
        return ws


def _now_ms() -> int:
    return time.monotonic_ns() // 1_000_000
