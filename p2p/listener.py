"""The peer port's accept loop, and what a failed link says about its cause: both ends name a TLS mismatch.

A TLS server that receives plaintext, or a plaintext server that receives a TLS ClientHello, fails inside
asyncio's transport without a word (asyncio logs TLS handshake errors only in debug mode), and the dialler
sees a bare "Server disconnected". So `PeerListener` accepts connections itself and looks at the first byte
before anything is consumed (MSG_PEEK): a TLS record starts with 0x16, an HTTP request with a letter. A
mismatch is logged here with the remote address and what to change, and a plaintext dialler of a TLS port
gets `426 Upgrade Required` (RFC 2817), which `describe_dial_failure` turns into the same advice on its
side. Matching connections are handed to the aiohttp server (`loop.connect_accepted_socket`), with the TLS
handshake awaited here so that a certificate the other end does not accept is logged too.

`describe_dial_failure` maps what dialling raised to a `LinkFailure`: a short reason (the label of
`carbonchain_peer_handshake_failures_total`) and one line for the log, /v1/status and /readyz.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from core.ratelog import RateLimitedLog
from p2p.errors import HandshakeRefused
from p2p.identity import PeerId
from p2p.policy import is_ip_literal, split_hosts

log = logging.getLogger("carbonchain.p2p")

HOST_RESOLVE_TIMEOUT_S = 2.0
TLS_RECORD_HANDSHAKE = 0x16  # the first byte of a TLS ClientHello record
TLS_SETTINGS = "[peer] tls_cert, tls_key and tls_ca"
_UPGRADE_REQUIRED = (
    b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: TLS/1.2, TLS/1.3\r\nConnection: close\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 39\r\n\r\nthis peer port requires TLS (wss://...)\n"
)

_PLAINTEXT_PORT = (
    b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 40\r\n"
    b"\r\nthis peer port takes no TLS (ws://...)\n"
)


@dataclass(frozen=True, slots=True)
class LinkFailure:
    reason: str  # "tls", "unreachable", "timeout", "http", "closed" or a handshake RefusalCode value
    text: str  # one line: what happened and what to change


class LinkFailures:
    """Why dialling each peer failed last, until it links; logged when the cause changes (each retry would
    repeat it every few seconds): at WARNING for what an operator must fix, at INFO for a peer that is down."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._failures: dict[PeerId, LinkFailure] = {}

    def note(self, peer: PeerId, failure: LinkFailure) -> None:
        previous = self._failures.get(peer)
        self._failures[peer] = failure
        if previous is not None and previous.reason == failure.reason:
            log.debug("%s: dialling %s failed again: %s", self._name, peer, failure.text)
            return
        level = logging.INFO if failure.reason in ("unreachable", "closed", "timeout") else logging.WARNING
        log.log(level, "%s: cannot link to %s: %s (retrying)", self._name, peer, failure.text)

    def pop(self, peer: PeerId) -> None:
        self._failures.pop(peer, None)

    def texts(self) -> dict[PeerId, str]:
        return {peer: failure.text for peer, failure in sorted(self._failures.items())}


def describe_dial_failure(exc: BaseException, address: str, *, tls: bool) -> LinkFailure:
    """Why dialling `address` failed, in words an operator can act on."""
    if isinstance(exc, HandshakeRefused):
        return LinkFailure(exc.code.value, str(exc))
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return LinkFailure(
            "tls",
            f"TLS: the certificate of {address} is not accepted ({exc.certificate_error}); it must chain to "
            f"our tls_ca and name the host we dial",
        )
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        detail = getattr(exc, "os_error", exc)
        return LinkFailure(
            "tls",
            f"TLS handshake with {address} failed ({_ssl_reason(detail)}): does it listen without TLS? Every "
            f"node needs the same {TLS_SETTINGS} settings",
        )
    if isinstance(exc, aiohttp.WSServerHandshakeError) and exc.status == 426:
        return LinkFailure(
            "tls",
            f"{address} requires TLS on its peer port and we dial without it: set {TLS_SETTINGS} as on "
            "the other nodes",
        )
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return LinkFailure("http", f"{address} answered HTTP {exc.status} instead of a peer link")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        hint = "" if tls else f" (if it requires TLS, set {TLS_SETTINGS} here too)"
        return LinkFailure("closed", f"{address} closed the connection before the handshake{hint}")
    if tls and isinstance(getattr(exc, "os_error", exc), ConnectionResetError):
        return LinkFailure(
            "tls",
            f"TLS handshake with {address} failed (connection reset): does it listen without TLS? Every node "
            f"needs the same {TLS_SETTINGS} settings",
        )
    if isinstance(exc, TimeoutError):
        return LinkFailure("timeout", f"no handshake with {address} within the deadline")
    if isinstance(exc, aiohttp.ClientConnectorError | ConnectionError | OSError):
        cause = getattr(exc, "os_error", None) or exc
        return LinkFailure("unreachable", f"cannot connect to {address}: {_os_reason(cause)}")
    return LinkFailure("closed", f"the link to {address} failed: {type(exc).__name__}: {exc}")


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason).lower().replace("_", " ") if reason else str(exc).split(" (_ssl")[0]


def _os_reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


class PeerListener:
    """Accepts peer connections on a bound socket and hands the ones that speak our transport to aiohttp."""

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        *,
        ssl_context: ssl.SSLContext | None,
        first_byte_timeout_s: float,
        sniffing_max: int,
        on_failure: Callable[[str], None],
        name: str,
    ) -> None:
        self._sock = sock
        self._factory = protocol_factory
        self._ssl = ssl_context
        self._timeout_s = first_byte_timeout_s
        self._sniffing_max = sniffing_max  # connections we wait on for a first byte, at most
        self._on_failure = on_failure  # counts a failure by reason
        self._name = name
        self._sniffing: set[asyncio.Task[None]] = set()
        self._accepting: asyncio.Task[None] | None = None
        self._log = RateLimitedLog(log)  # one line a minute per cause and address: anyone can connect

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def start(self) -> None:
        self._sock.setblocking(False)
        self._accepting = asyncio.create_task(self._accept_loop(), name="p2p-accept")

    async def close(self) -> None:
        tasks = [t for t in (self._accepting, *self._sniffing) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._sock.close()

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(self._sock)
            except OSError as exc:  # EMFILE and friends: wait a moment rather than spin
                log.warning("%s: accepting a peer connection failed: %s", self._name, exc)
                await asyncio.sleep(0.1)
                continue
            if len(self._sniffing) >= self._sniffing_max:
                conn.close()  # the same answer aiohttp gives a flood: no room now
                continue
            task = asyncio.create_task(self._hand_over(conn), name="p2p-sniff")
            self._sniffing.add(task)
            task.add_done_callback(self._sniffing.discard)

    async def _hand_over(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        try:
            remote = str(conn.getpeername()[0])
        except OSError:
            conn.close()
            return
        try:
            first = await self._peek_first_byte(conn)
        except (TimeoutError, OSError):
            conn.close()
            return
        if first is None:
            conn.close()
            return
        speaks_tls = first == TLS_RECORD_HANDSHAKE
        if self._ssl is not None and not speaks_tls:
            self._mismatch("plaintext", remote, "a plaintext connection on our TLS peer port: that node dials "
                           f"without TLS; give it the same {TLS_SETTINGS} settings")  # fmt: skip
            _answer_and_close(conn, _UPGRADE_REQUIRED)
            return
        if self._ssl is None and speaks_tls:
            self._mismatch("tls-on-plain", remote, "a TLS connection on our plaintext peer port: that node "
                           f"dials with TLS; set {TLS_SETTINGS} here too, or remove them there")  # fmt: skip
            # not a TLS record: the dialler's TLS library says "wrong version number", not "reset"
            _answer_and_close(conn, _PLAINTEXT_PORT)
            return
        loop = asyncio.get_running_loop()
        try:
            if self._ssl is None:
                await loop.connect_accepted_socket(self._factory, conn)
            else:
                await loop.connect_accepted_socket(
                    self._factory, conn, ssl=self._ssl, ssl_handshake_timeout=self._timeout_s
                )
        except ssl.SSLError as exc:
            self._mismatch(
                "certificate",
                remote,
                f"the TLS handshake failed ({_ssl_reason(exc)}): our certificate and that node's must both "
                "chain to the other's tls_ca",
            )
            conn.close()
        except ConnectionResetError:  # the dialler aborted the TLS handshake: it rejected our certificate
            self._mismatch(
                "certificate",
                remote,
                "the dialler cut the TLS handshake off: it probably does not accept our certificate (ours must "
                "chain to its tls_ca and name the host it dials)",
            )
            conn.close()
        except (OSError, TimeoutError):
            conn.close()

    async def _peek_first_byte(self, conn: socket.socket) -> int | None:
        """The first byte the client sent, left in the socket; None if it closed without sending any."""
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()

        def on_readable() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(conn.fileno(), on_readable)
        try:
            async with asyncio.timeout(self._timeout_s):
                await readable
        finally:
            loop.remove_reader(conn.fileno())
        data = conn.recv(1, socket.MSG_PEEK)
        return data[0] if data else None

    def _mismatch(self, cause: str, remote: str, text: str) -> None:
        self._on_failure("tls")
        self._log.warning(
            f"{cause} {remote}", "%s: refused a peer connection from %s: %s", self._name, remote, text
        )


def _answer_and_close(conn: socket.socket, answer: bytes) -> None:
    """Read what the client sent so far (closing with unread data resets the connection before our answer
    arrives), send the answer, and close."""
    with contextlib.suppress(OSError):
        conn.recv(64 * 1024)
        conn.sendall(answer)
        conn.shutdown(socket.SHUT_WR)
    conn.close()


async def bind_peer_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (the first address the host resolves to)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if not infos:
        raise OSError(f"cannot resolve the peer listen host {host!r}")
    family, _, _, _, address = infos[0]
    return socket.create_server(address[:2], family=family, backlog=128)


def add_peer_routes(
    app: web.Application, path: str, handle_upgrade: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> None:
    """The peer port's routes: the upgrade at `path`, and every other request refused, so that aiohttp's
    own Expect handler (a 500 on a value that is not UTF-8) answers none."""
    app.router.add_get(path, handle_upgrade, expect_handler=refuse_expect)
    app.router.add_route("*", "/{path:.*}", _not_served, expect_handler=refuse_expect)


async def _not_served(request: web.Request) -> web.StreamResponse:
    """Anything on the peer port but the upgrade."""
    return web.Response(status=404, text="the peer port serves only the peer upgrade\n")


async def refuse_expect(request: web.Request) -> web.StreamResponse | None:
    """An upgrade has no body to continue (aiohttp's own handler 500s on a value that is not UTF-8)."""
    return web.Response(status=417, text="no Expect on the peer port\n")


async def resolve_member_ips(addresses: Iterable[str], name: str) -> list[str]:
    """The IP addresses of the members' peer addresses: literals as they are, host names resolved (one that
    does not resolve is logged and skipped)."""
    loop = asyncio.get_running_loop()
    hosts = split_hosts(addresses)
    ips = [host for host in hosts if is_ip_literal(host)]
    for host in [host for host in hosts if not is_ip_literal(host)]:
        try:
            async with asyncio.timeout(HOST_RESOLVE_TIMEOUT_S):
                infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as exc:
            log.warning("%s: cannot resolve peer host %r (%s): no room kept", name, host, exc)
            continue
        ips += [str(info[4][0]) for info in infos]
    return ips
