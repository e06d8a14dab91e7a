"""A userspace TCP proxy between the nodes of a test network that injects network faults, driven by a seed.

This kernel has no netem and no iptables, so faults are injected in userspace. Every directed link of a
Cluster (validator-i dials validator-j for i < j; an observer dials every validator) gets its own listening
port, and each node's config dials its peers through the proxy of that link (`[peer.dial_addresses]`); the
genesis keeps the real addresses. Each direction of each link has its own LinkFaults and its own random
stream, seeded from (seed, link, direction, connection number): a failing seed names the fault sequence that
was injected (the timing of real processes around it is not reproducible, as on any real network).

What the proxy does, and why this models a real network faithfully. The peer layer runs WebSocket over TCP,
and TCP hands the application every byte, once and in order, or breaks the connection. So:
- **delay and jitter** are applied per unit of data (a WebSocket frame, or a read chunk over TLS), and units
  are delivered in arrival order: a late unit holds back the ones behind it, like TCP's in-order delivery.
- **loss** is modelled as TCP experiences it: each 1448-byte segment is lost with the given probability and
  then costs a retransmission timeout (200 ms, doubling when the retransmission is lost too) during which the
  stream stalls (head-of-line blocking). Dropping bytes out of a live stream would instead corrupt the
  WebSocket framing, which no real network does (it would only measure our reaction to garbage).
- **one-way partitions** (`blocked`): bytes in that direction are held, and delivered when the partition
  heals, as TCP retransmission would, unless an endpoint gave up first (the WebSocket heartbeat notices that
  no pong arrives). The proxy buffers at most WINDOW_BYTES per direction, then stops reading, so the
  sender's writes stall as with a full TCP window.
- **cuts** reset both sockets (RST), losing whatever was in flight; a link that is **down** resets every new
  connection at once; `flap()` alternates down and up.
Beyond TCP, on purpose: on plaintext links the proxy parses WebSocket frame boundaries (RFC 6455) and can
**drop, duplicate or reorder whole messages** (`frame_*`). TCP never does that on one connection, but a node
must survive it all the same: it is what a faulty or Byzantine peer can send, and losing messages is what a
link that breaks mid-stream does. These are off unless a scenario asks for them; over TLS the bytes are
opaque and only the TCP-level faults apply.

The proxies run on their own event loop in a thread, so a test that blocks its own loop (waiting for a
process) does not freeze the network. Every method of FaultNetwork may be called from the test's thread.
`observe()` shows every whole WebSocket message to a LinkObserver as the proxy reads it (on plaintext
links); tests/integration/frametap.py decodes them into handshakes and consensus messages.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import random
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, TypeVar

MSS_BYTES = 1448  # TCP payload per segment on a 1500-byte MTU
RTO_MS = 200  # Linux's minimum retransmission timeout
RTO_MAX_MS = 3_200
WINDOW_BYTES = 1024 * 1024  # held per direction before the proxy stops reading from the sender
WS_PAYLOAD_BYTES_MAX = 256 * 1024 * 1024  # a larger frame header means the stream is not WebSocket
READ_BYTES = 64 * 1024
REORDER_WAIT_S = 0.05  # a message held back to be reordered goes out alone if nothing follows within this

T = TypeVar("T")
Direction = Literal["forward", "backward"]  # forward: dialler -> listener; backward: listener -> dialler


class LinkObserver(Protocol):
    """Sees every whole WebSocket message a proxy reads; called on the proxies' thread, so it must be quick
    and thread-safe. `frame` is the complete frame as sent (header, mask and payload)."""

    def on_message(self, link: str, direction: Direction, frame: bytes, at_s: float) -> None: ...


@dataclass(frozen=True)
class LinkFaults:
    """What one direction of a link suffers. The default is a perfect link."""

    latency_ms: float = 0.0  # fixed one-way delay
    jitter_ms: float = 0.0  # plus a uniform random delay in [0, jitter_ms]
    loss: float = 0.0  # probability that a TCP segment is lost (each loss stalls the stream for an RTO)
    blocked: bool = False  # one-way partition: nothing is delivered in this direction until unblocked
    frame_drop: float = 0.0  # probability that a whole WebSocket message is dropped (beyond TCP)
    frame_duplicate: float = 0.0  # ... delivered twice (beyond TCP)
    frame_reorder: float = 0.0  # ... swapped with the message after it (beyond TCP)


@dataclass
class LinkStats:
    """What the proxy of one link did, for assertions that the faults really happened."""

    connections: int = 0
    refused: int = 0  # connections reset because the link was down or the listener unreachable
    units: int = 0  # frames or chunks delivered
    bytes: int = 0
    stalls: int = 0  # segments "lost" and retransmitted
    held: int = 0  # times a one-way partition held data back
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    cuts: int = 0


@dataclass
class _Unit:
    data: bytes  # empty: the sender closed its side (FIN), after everything before it
    arrived_at: float  # loop time when the proxy read it
    is_message: bool  # a complete WebSocket data message (the only kind frame faults touch)


class _StreamParser:
    """Splits one direction's bytes into units: the HTTP upgrade head, then WebSocket frames; raw chunks for
    TLS or anything that is not a WebSocket upgrade."""

    def __init__(self, direction: Direction) -> None:
        self.direction = direction
        self.mode: Literal["start", "http", "ws", "raw"] = "start"
        self._buffer = bytearray()
        self._fragmented = False  # inside a message split over continuation frames

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        """(unit bytes, is a whole data message) for everything complete so far."""
        if self.mode == "start":
            # A TLS record starts with 0x16 (handshake); anything else is plaintext HTTP.
            self.mode = "raw" if data[:1] == b"\x16" else "http"
        if self.mode == "raw":
            return [(data, False)]
        self._buffer += data
        units: list[tuple[bytes, bool]] = []
        if self.mode == "http":
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > 64 * 1024:
                    self.mode = "raw"
                    return self._flush_raw()
                return []
            head = bytes(self._buffer[: end + 4])
            del self._buffer[: end + 4]
            units.append((head, False))
            lowered = head.lower()
            if self.direction == "forward":
                upgrading = b"upgrade: websocket" in lowered
            else:
                upgrading = head.startswith(b"HTTP/1.1 101")
            self.mode = "ws" if upgrading else "raw"
            if self.mode == "raw":
                return units + self._flush_raw()
        while self.mode == "ws":
            frame = self._next_frame()
            if frame is None:
                break
            units.append(frame)
        if self.mode == "raw":
            units += self._flush_raw()
        return units

    def _flush_raw(self) -> list[tuple[bytes, bool]]:
        if not self._buffer:
            return []
        data = bytes(self._buffer)
        self._buffer.clear()
        return [(data, False)]

    def _next_frame(self) -> tuple[bytes, bool] | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        fin, opcode = buffer[0] & 0x80, buffer[0] & 0x0F
        masked, length = buffer[1] & 0x80, buffer[1] & 0x7F
        header = 2
        if length == 126:
            if len(buffer) < 4:
                return None
            length, header = int.from_bytes(buffer[2:4], "big"), 4
        elif length == 127:
            if len(buffer) < 10:
                return None
            length, header = int.from_bytes(buffer[2:10], "big"), 10
        if length > WS_PAYLOAD_BYTES_MAX:
            self.mode = "raw"  # not a WebSocket stream after all: pass it through untouched
            return None
        total = header + (4 if masked else 0) + length
        if len(buffer) < total:
            return None
        data = bytes(buffer[:total])
        del buffer[:total]
        whole_message = False
        if opcode in (0x1, 0x2):  # text, binary
            whole_message = bool(fin) and not self._fragmented
            self._fragmented = not fin
        elif opcode == 0x0:  # continuation
            self._fragmented = not fin
        return data, whole_message


class _Pipe:
    """One direction of one proxied connection: read, parse, apply the faults, write in order."""

    def __init__(
        self,
        link: _Link,
        direction: Direction,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        rng: random.Random,
    ) -> None:
        self.link = link
        self.direction = direction
        self.reader = reader
        self.writer = writer
        self.rng = rng
        self.parser = _StreamParser(direction)
        self.inbox: deque[_Unit] = deque()
        self.inbox_bytes = 0
        self.has_units = asyncio.Event()
        self.has_room = asyncio.Event()
        self.has_room.set()
        self.last_delivery = 0.0

    @property
    def faults(self) -> LinkFaults:
        return self.link.faults[self.direction]

    async def read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.has_room.wait()
            data = await self.reader.read(READ_BYTES)
            now = loop.time()
            if not data:
                self._put(_Unit(b"", now, False))
                return
            observer = self.link.observer
            for unit, is_message in self.parser.feed(data):
                self._put(_Unit(unit, now, is_message))
                if is_message and observer is not None:
                    observer.on_message(self.link.name, self.direction, unit, now)

    def _put(self, unit: _Unit) -> None:
        self.inbox.append(unit)
        self.inbox_bytes += len(unit.data)
        if self.inbox_bytes >= WINDOW_BYTES:
            self.has_room.clear()
        self.has_units.set()

    async def write_loop(self) -> None:
        """Deliver units in order at their delivery times; returns after passing on the sender's FIN."""
        loop = asyncio.get_running_loop()
        stats = self.link.stats
        swapped: _Unit | None = None  # a message to deliver after the next one (reorder)
        while True:
            unit = await self._next_unit(REORDER_WAIT_S if swapped is not None else None)
            if unit is None:  # nothing followed the held-back message: let it go alone
                unit, swapped = swapped, None
                assert unit is not None
            faults = self.faults
            if unit.is_message and self._chance(faults.frame_drop):
                stats.dropped += 1
                continue
            if unit.is_message and swapped is None and self._chance(faults.frame_reorder):
                stats.reordered += 1
                swapped = unit
                continue
            delay_s = (faults.latency_ms + self.rng.uniform(0, faults.jitter_ms)) / 1000
            delay_s += self._retransmission_stall_s(len(unit.data), faults.loss)
            self.last_delivery = max(self.last_delivery, unit.arrived_at + delay_s)
            wait_s = self.last_delivery - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            if self.writer.transport.is_closing():
                return
            if not unit.data:
                if self.writer.can_write_eof():
                    self.writer.write_eof()
                return
            copies = 2 if unit.is_message and self._chance(faults.frame_duplicate) else 1
            stats.duplicated += copies - 1
            outgoing = [unit.data] * copies
            if swapped is not None:
                outgoing.append(swapped.data)
                swapped = None
            for data in outgoing:
                self.writer.write(data)
                stats.units += 1
                stats.bytes += len(data)
            await self.writer.drain()

    async def _next_unit(self, timeout_s: float | None) -> _Unit | None:
        """The next unit the faults let through; None if `timeout_s` passes first."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while True:
            if self.inbox and not self.faults.blocked:
                unit = self.inbox.popleft()
                self.inbox_bytes -= len(unit.data)
                if self.inbox_bytes < WINDOW_BYTES:
                    self.has_room.set()
                return unit
            if self.inbox:
                self.link.stats.held += 1
            self.has_units.clear()
            waits = [
                asyncio.ensure_future(self.has_units.wait()),
                asyncio.ensure_future(self.link.changed.wait()),
            ]
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                done, _ = await asyncio.wait(waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()
            if not done:
                return None

    def _chance(self, probability: float) -> bool:
        return probability > 0 and self.rng.random() < probability

    def _retransmission_stall_s(self, size: int, loss: float) -> float:
        if loss <= 0:
            return 0.0
        stall_ms = 0.0
        for _ in range(math.ceil(size / MSS_BYTES)):
            rto_ms = RTO_MS
            while self.rng.random() < loss:
                self.link.stats.stalls += 1
                stall_ms += rto_ms
                rto_ms = min(2 * rto_ms, RTO_MAX_MS)
        return stall_ms / 1000


@dataclass
class _Link:
    """One directed link: its listening port, its faults per direction, its live connections."""

    name: str  # "validator-0->validator-1": dialler -> listener
    upstream: tuple[str, int]  # the listener's real peer address
    seed: str
    faults: dict[Direction, LinkFaults] = field(
        default_factory=lambda: {"forward": LinkFaults(), "backward": LinkFaults()}
    )
    down: bool = False
    stats: LinkStats = field(default_factory=LinkStats)
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # replaced whenever faults change
    transports: set[asyncio.WriteTransport] = field(default_factory=set)
    server: asyncio.Server | None = None
    port: int = 0
    observer: LinkObserver | None = None

    def notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    def cut(self) -> None:
        for transport in list(self.transports):
            transport.abort()
        self.transports.clear()
        self.stats.cuts += 1

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        number = self.stats.connections
        self.stats.connections += 1
        client = client_writer.transport
        if self.down:
            self.stats.refused += 1
            client.abort()
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            self.stats.refused += 1
            client.abort()
            return
        upstream = server_writer.transport
        self.transports |= {client, upstream}
        pipes = [
            _Pipe(self, "forward", client_reader, server_writer, random.Random(f"{self.seed}/{number}/f")),
            _Pipe(self, "backward", server_reader, client_writer, random.Random(f"{self.seed}/{number}/b")),
        ]
        tasks = [asyncio.ensure_future(c) for pipe in pipes for c in (pipe.read_loop(), pipe.write_loop())]
        try:
            # Both directions end with a FIN passed on, or anything fails (a reset, a cut): then all ends.
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # A closed or reset side ends the whole connection, as a TCP connection ends.
            for transport in (client, upstream):
                transport.abort()
                self.transports.discard(transport)


class FaultNetwork:
    """The proxies of one test network, on an event loop of their own."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._links: dict[str, _Link] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        self._flappers: list[concurrent.futures.Future[None]] = []
        self._observer: LinkObserver | None = None

    # --- setup -------------------------------------------------------------------------------------------

    def add_link(self, name: str, upstream: tuple[str, int]) -> int:
        """Start the proxy of a directed link; returns its port on 127.0.0.1."""
        link = self._call(self._make_link, name, upstream)
        self._links[name] = link
        return link.port

    async def _make_link(self, name: str, upstream: tuple[str, int]) -> _Link:
        link = _Link(name, upstream, seed=f"{self.seed}/{name}", observer=self._observer)
        link.server = await asyncio.start_server(link.handle, "127.0.0.1", 0)
        link.port = int(link.server.sockets[0].getsockname()[1])
        return link

    def observe(self, observer: LinkObserver) -> None:
        """Show every whole WebSocket message of every link, present and future, to `observer`."""
        self._observer = observer

        def apply() -> None:
            for link in self._links.values():
                link.observer = observer

        self._loop.call_soon_threadsafe(apply)

    @property
    def links(self) -> list[str]:
        return list(self._links)

    # --- faults --------------------------------------------------------------------------------------------

    def set_faults(
        self, faults: LinkFaults, *, links: Iterable[str] | None = None, directions: Iterable[Direction] = ()
    ) -> None:
        """Apply `faults` to the named links (all by default), in both directions unless some are named."""
        chosen = list(directions) or ["forward", "backward"]
        names = list(self._links) if links is None else list(links)

        def apply() -> None:
            for name in names:
                link = self._links[name]
                for direction in chosen:
                    link.faults[direction] = faults
                link.notify()

        self._loop.call_soon_threadsafe(apply)

    def block(self, sender: str, receiver: str, blocked: bool = True) -> None:
        """One-way partition: nothing `sender` writes to `receiver` arrives (until unblocked)."""
        name, direction = self._find(sender, receiver)

        def apply() -> None:
            link = self._links[name]
            link.faults[direction] = replace(link.faults[direction], blocked=blocked)
            link.notify()

        self._loop.call_soon_threadsafe(apply)

    def isolate_one_way(self, sender: str, blocked: bool = True) -> None:
        """Block everything `sender` sends to anyone, while it still hears everyone."""
        for name in self._links:
            dialler, listener = name.split("->")
            if sender in (dialler, listener):
                self.block(sender, listener if sender == dialler else dialler, blocked)

    def cut(self, a: str, b: str) -> None:
        """Reset the live connections between `a` and `b`."""
        name, _ = self._find(a, b)
        self._loop.call_soon_threadsafe(self._links[name].cut)

    def set_down(self, a: str, b: str, down: bool) -> None:
        """Take the link between `a` and `b` down (cut, and reset new connections) or bring it up."""
        name, _ = self._find(a, b)

        def apply() -> None:
            link = self._links[name]
            link.down = down
            if down:
                link.cut()

        self._loop.call_soon_threadsafe(apply)

    def flap(self, a: str, b: str, *, up_ms: tuple[int, int], down_ms: tuple[int, int]) -> None:
        """Until stop_flapping(): the link goes down and up again, for seeded durations in the given ranges."""
        name, _ = self._find(a, b)
        rng = random.Random(f"{self.seed}/{name}/flap")

        async def run() -> None:
            link = self._links[name]
            while True:
                await asyncio.sleep(rng.uniform(*up_ms) / 1000)
                link.down = True
                link.cut()
                await asyncio.sleep(rng.uniform(*down_ms) / 1000)
                link.down = False

        self._flappers.append(asyncio.run_coroutine_threadsafe(run(), self._loop))

    def stop_flapping(self) -> None:
        for flapper in self._flappers:
            flapper.cancel()
        self._flappers.clear()
        for name in self._links:
            self._loop.call_soon_threadsafe(setattr, self._links[name], "down", False)

    def heal(self) -> None:
        """Every link perfect and up again."""
        self.stop_flapping()
        self.set_faults(LinkFaults())

    # --- results ---------------------------------------------------------------------------------------------

    def stats(self, name: str | None = None) -> LinkStats:
        """One link's counters, or the sum over all links."""
        if name is not None:
            return replace(self._links[name].stats)
        total = LinkStats()
        for link in self._links.values():
            for key, value in vars(link.stats).items():
                setattr(total, key, getattr(total, key) + value)
        return total

    def close(self) -> None:
        self.stop_flapping()

        async def shutdown() -> None:
            for link in self._links.values():
                if link.server is not None:
                    link.server.close()
                link.cut()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # --- helpers -------------------------------------------------------------------------------------------

    def _find(self, a: str, b: str) -> tuple[str, Direction]:
        """The link between two nodes and the direction in which `a` sends to `b`."""
        if f"{a}->{b}" in self._links:
            return f"{a}->{b}", "forward"
        if f"{b}->{a}" in self._links:
            return f"{b}->{a}", "backward"
        raise KeyError(f"no link between {a} and {b}")

    def _call(self, function: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        return asyncio.run_coroutine_threadsafe(function(*args), self._loop).result(timeout=10)
