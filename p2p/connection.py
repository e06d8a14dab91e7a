"""One authenticated link to a peer: a bounded send queue, one writer task, and the reader loop.

The network (p2p.network) creates a PeerConnection after a successful handshake and awaits `run()`, which
returns when the link is gone. Sending never blocks the caller: `try_enqueue` puts an encoded frame on the
peer's queue (bounded in frames and bytes) or reports that it is full; the single writer task drains the queue
into the WebSocket, so a slow peer fills only its own queue. Anything the peer sends that is not a binary
message, or that the dispatcher rejects as a malformed frame, is reported as misbehaviour and ends the link.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

from core.errors import InvariantBroken
from p2p.errors import FrameError, HandshakeRefused, PeerNotConnected, RefusalCode, SendQueueFull
from p2p.handshake import InitiatorHandshake
from p2p.identity import PeerId
from p2p.policy import PeerLimits

log = logging.getLogger("carbonchain.p2p")

WebSocket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse
CLOSE_TIMEOUT_S = 2.0  # how long a close handshake may take before the transport is aborted
CLOSE_REASON_BYTES_MAX = 120  # a WebSocket close reason must fit in a control frame (125 bytes)


class PeerConnection:
    """The shell around one authenticated WebSocket."""

    def __init__(
        self,
        peer: PeerId,
        ws: WebSocket,
        *,
        outbound: bool,
        limits: PeerLimits,
        metrics: dict[str, int],
        abort: Callable[[], None],
        misbehaved: Callable[[PeerId, str], None],
    ) -> None:
        self.peer = peer
        self.outbound = outbound  # True when we dialled
        self._ws = ws
        self._limits = limits
        self._metrics = metrics
        self._abort = abort  # drops the TCP connection without waiting for buffered bytes
        self._misbehaved = misbehaved  # reports a peer fault: the network bans and calls request_close
        self._queue: deque[bytes] = deque()
        self.queued_bytes = 0
        self._has_frames = asyncio.Event()
        self._space_freed = asyncio.Event()
        self._close_code = WSCloseCode.OK
        self.close_reason: str | None = None  # why we ended the link, once we decided to
        self.closed = asyncio.Event()  # set when the link is fully gone
        self._closer: asyncio.Future[None] | None = None

    # --- sending ------------------------------------------------------------------------------------------

    @property
    def queued_frames(self) -> int:
        return len(self._queue)

    def is_open(self) -> bool:
        return self.close_reason is None and not self.closed.is_set()

    def has_room(self, frame_bytes: int) -> bool:
        limits = self._limits
        return (
            len(self._queue) < limits.send_queue_frames_max
            and self.queued_bytes + frame_bytes <= limits.send_queue_bytes_max
        )

    def try_enqueue(self, frame: bytes) -> bool:
        """Queue an encoded frame for the writer; False when the link is closing or the queue is full."""
        if not self.is_open():
            return False
        if not self.has_room(len(frame)):
            self._metrics["frames_dropped_queue_full"] += 1
            return False
        self._queue.append(frame)
        self.queued_bytes += len(frame)
        self._has_frames.set()
        return True

    async def enqueue_wait(self, frame: bytes) -> None:
        """Queue a frame, waiting for room; PeerNotConnected if the link ends first."""
        while True:
            if not self.is_open():
                raise PeerNotConnected(f"{self.peer} disconnected")
            if self.has_room(len(frame)):
                self.try_enqueue(frame)
                return
            if len(frame) > self._limits.send_queue_bytes_max:
                raise SendQueueFull(f"a frame of {len(frame)} bytes never fits the send queue of {self.peer}")
            self._space_freed.clear()
            await self._space_freed.wait()

    # --- lifecycle ----------------------------------------------------------------------------------------

    def request_close(self, reason: str, code: WSCloseCode = WSCloseCode.OK) -> None:
        """Ask the link to end; `run()` then closes the WebSocket and returns. The first reason wins."""
        if self.close_reason is not None:
            return
        self.close_reason = reason
        self._close_code = code
        self._space_freed.set()  # wake senders waiting for room: they now fail
        self._has_frames.set()  # wake the writer, which sees the link closing and stops
        # aiohttp's close() also ends a receive() pending in the reader task.
        self._closer = asyncio.ensure_future(self._close_ws())

    async def run(self, dispatch: Callable[[PeerConnection, bytes], Awaitable[None]]) -> str:
        """Serve the link until it ends; returns the reason. `dispatch` raises FrameError for a bad frame."""
        writer = asyncio.create_task(self._write_loop(), name=f"p2p-writer-{self.peer}")
        try:
            reason = await self._read_loop(dispatch)
        finally:
            self.request_close("shutting down", WSCloseCode.GOING_AWAY)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            if self._closer is not None:
                await self._closer
            self._queue.clear()
            self.queued_bytes = 0
            self.closed.set()
        return reason if self.close_reason in (None, "shutting down") else str(self.close_reason)

    async def _read_loop(self, dispatch: Callable[[PeerConnection, bytes], Awaitable[None]]) -> str:
        ws = self._ws
        while self.close_reason is None:
            message = await ws.receive()
            if self.close_reason is not None:
                break
            kind = message.type
            if kind is WSMsgType.BINARY:
                self._metrics["frames_in"] += 1
                self._metrics["bytes_in"] += len(message.data)
                try:
                    await dispatch(self, message.data)
                except FrameError as exc:
                    self._report(str(exc))
            elif kind is WSMsgType.TEXT:
                self._report("sent a text message (frames are binary)")
            elif kind is WSMsgType.ERROR:
                if isinstance(message.data, aiohttp.WebSocketError):
                    # aiohttp raises these for protocol violations, including frames over max_msg_size.
                    self._report(f"WebSocket protocol error: {message.data}")
                else:
                    self.request_close(f"connection error: {message.data!r}")
            elif kind in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                self.request_close("closed by peer")
            else:
                self._report(f"unexpected WebSocket message type {kind!r}")
        return self.close_reason or "closed"

    def _report(self, reason: str) -> None:
        self._metrics["malformed_frames"] += 1
        self._misbehaved(self.peer, reason)
        self.request_close(reason, WSCloseCode.POLICY_VIOLATION)  # in case the network did not

    async def _write_loop(self) -> None:
        stall_s = self._limits.write_stall_timeout_ms / 1000
        while True:
            while not self._queue:
                if self.close_reason is not None:
                    return
                self._has_frames.clear()
                await self._has_frames.wait()
            if self.close_reason is not None:
                return
            frame = self._queue.popleft()
            self.queued_bytes -= len(frame)
            self._space_freed.set()
            try:
                await asyncio.wait_for(self._ws.send_bytes(frame), stall_s)
            except TimeoutError:
                self.request_close(f"peer accepted no data for {stall_s:g} s", WSCloseCode.POLICY_VIOLATION)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the transport is gone; the reader will notice too
                self.request_close(f"send failed: {exc!r}")
                return
            self._metrics["frames_out"] += 1
            self._metrics["bytes_out"] += len(frame)

    async def _close_ws(self) -> None:
        message = (self.close_reason or "").encode()[:CLOSE_REASON_BYTES_MAX]
        try:
            await asyncio.wait_for(self._ws.close(code=self._close_code, message=message), CLOSE_TIMEOUT_S)
        except asyncio.CancelledError:
            self._abort()
            raise
        except Exception:  # timeout or a broken transport: drop it without flushing
            self._abort()


async def receive_handshake_message(ws: WebSocket) -> bytes:
    message = await ws.receive()
    if message.type is WSMsgType.BINARY:
        data: bytes = message.data
        return data
    if message.type is WSMsgType.TEXT:
        raise HandshakeRefused(RefusalCode.MALFORMED, "handshake messages are binary")
    if message.type is WSMsgType.ERROR and isinstance(message.data, aiohttp.WebSocketError):
        raise HandshakeRefused(RefusalCode.MALFORMED, f"WebSocket protocol error: {message.data}")
    raise ConnectionResetError(f"connection ended during the handshake ({message.type.name})")


async def close_quietly(ws: WebSocket) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await ws.close()


def abort_client(ws: aiohttp.ClientWebSocketResponse) -> None:
    # aiohttp has no public way to drop a client connection without flushing; use the connection object.
    connection: Any = getattr(ws, "_conn", None)
    transport = getattr(connection, "transport", None) if connection is not None else None
    if transport is not None:
        transport.abort()


async def dial_and_authenticate(
    session: aiohttp.ClientSession,
    url: str,
    handshake: InitiatorHandshake,
    limits: PeerLimits,
    refuse: Callable[[WebSocket, HandshakeRefused], Awaitable[None]],
) -> aiohttp.ClientWebSocketResponse:
    """Open a WebSocket to `url` and run the initiator's handshake on it within handshake_timeout_ms; a
    refusal of ours is sent with `refuse` before the socket is dropped."""
    async with asyncio.timeout(limits.handshake_timeout_ms / 1000):
        ws = await session.ws_connect(
            url,
            max_msg_size=limits.frame_bytes_max,
            compress=0,
            heartbeat=limits.heartbeat_ms / 1000,
            timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT_S),
        )
        try:
            await ws.send_bytes(handshake.start())
            auth = handshake.receive(await receive_handshake_message(ws))
            if auth is None:
                raise InvariantBroken("initiator handshake ended before auth")
            await ws.send_bytes(auth)
            handshake.receive(await receive_handshake_message(ws))
        except asyncio.CancelledError:
            abort_client(ws)
            raise
        except BaseException as exc:
            if isinstance(exc, HandshakeRefused):
                await refuse(ws, exc)
            await close_quietly(ws)
            abort_client(ws)
            raise
    return ws
