"""The load generator and the commit listener of `carbonchain bench`.

The load generator runs in its own OS process (`LoadWorker`), so it never shares a GIL with the listener or
the orchestration, and is driven by jobs sent over a pipe: "submit these pre-signed transactions to these
nodes, closed loop with C connections, or open loop at R transactions a second". It speaks HTTP/1.1 itself
over keep-alive connections with the request bytes built before the clock starts: on a 2-core machine every
CPU microsecond the client spends is taken from the nodes, and a raw asyncio protocol costs a fraction of a
full HTTP client per request. One request is in flight per connection; a 503 (mempool full) is retried after
a short pause when the job asks for it (setup and compliance phases must commit everything).

Send times are CLOCK_MONOTONIC readings (`time.monotonic()`), comparable across processes on one machine; in
open loop a transaction's latency counts from its scheduled send time, so a client that falls behind cannot
hide queueing (no coordinated omission).

`CommitListener` subscribes to one node's `/v1/events` stream (every block and transaction event) and
records when each transaction id was seen committed, with its result code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import multiprocessing.connection
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgpack

RETRY_PAUSE_S = 0.02
ERROR_SAMPLES_MAX = 10
CONNECT_TIMEOUT_S = 10.0
HTTP_CONNECTIONS_MAX = 64  # closed loop: HTTP connections carrying the window of uncommitted transactions
BATCH_CONNECTIONS_PER_NODE = 4  # batched load: requests in flight per node
BATCH_TICK_S = 0.005  # batched open loop: what fell due in this long travels in one request


async def _release_on_commit(events_url: str, tx_ids: set[str], window: asyncio.Semaphore) -> None:
    """Release one window slot per committed transaction of ours seen on the event stream."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(events_url, heartbeat=30, max_msg_size=0) as socket,
    ):
        async for message in socket:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            event = json.loads(message.data)
            if event.get("type") == "tx" and event["tx_id"] in tx_ids:
                window.release()


@dataclass(frozen=True)
class LoadJob:
    urls: tuple[str, ...]  # API base URLs to spread transactions over (round robin by connection)
    bodies: tuple[bytes, ...]  # pre-signed raw transactions (msgpack)
    mode: str  # "closed" (concurrency-bound) or "open" (fixed offered rate)
    concurrency: int  # connections (closed loop) or the most requests in flight (open loop)
    rate_per_s: float = 0.0  # open loop: offered transactions per second
    duration_s: float = 0.0  # stop sending after this long (0 = send every body)
    retry_full: bool = True  # resend on 503 mempool_full (else count it as rejected)
    # closed loop bounded by commits: at most `concurrency` sent-but-uncommitted transactions, as if each of
    # `concurrency` clients waited for its transaction's commit (seen on this node's event stream)
    events_url: str = ""
    tx_ids: tuple[str, ...] = ()
    # transactions per request: above 1, requests are batches (a msgpack array of raw transactions, one
    # result each), built when they are sent; closed loop: a free connection (4 per node) takes the next
    # transactions; open loop: batch k goes to node k mod len(urls)
    batch_max: int = 1


@dataclass
class LoadResult:
    started: float  # monotonic time of the first send
    finished: float  # monotonic time when the last response arrived
    send_times: list[float]  # per body: monotonic send (closed) or scheduled (open) time; 0.0 = not sent
    statuses: list[int]  # per body: final HTTP status, 0 = not sent
    errors: list[str] = field(default_factory=list)  # a few error responses, for the report
    cpu_s: float = 0.0  # the load process's CPU seconds during the job


class _HttpConnection(asyncio.Protocol):
    """A minimal HTTP/1.1 keep-alive client connection: write a request, await (status, body)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiters: deque[asyncio.Future[tuple[int, bytes]]] = deque()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[:end]).lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                line_end = head.find(b"\r\n", at)
                length = int(head[at + 15 : line_end if line_end >= 0 else len(head)])
            total = end + 4 + length
            if len(self._buffer) < total:
                return
            status = int(head[9:12])
            body = bytes(self._buffer[end + 4 : total])
            del self._buffer[:total]
            if self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_result((status, body))

    def request(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        waiter: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.transport.write(data)
        return waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _split_url(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    return host, int(port)


def _batch_request(host: str, port: int, bodies: list[bytes]) -> bytes:
    """POST /v1/txs with a msgpack array of raw transactions (each a msgpack bin)."""
    payload = msgpack.packb(bodies, use_bin_type=True)
    head = (
        f"POST /v1/txs HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/msgpack\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def _batch_statuses(status: int, body: bytes, count: int) -> list[tuple[int, str]]:
    """(status, error code) per transaction of a batch answer: 202 accepted, 503 pool full, 400 refused."""
    if status != 200:
        return [(status, body[:200].decode(errors="replace"))] * count
    results = json.loads(body)["results"]
    out = []
    for entry in results:
        error = entry.get("error")
        out.append((202, "") if error is None else (503 if error == "mempool_full" else 400, error))
    return out


async def run_job(job: LoadJob) -> LoadResult:
    """Submit a job's transactions; returns per-transaction send times and statuses."""
    if job.batch_max > 1:
        return await _run_batched_job(job)
    loop = asyncio.get_running_loop()
    count = len(job.bodies)
    send_times = [0.0] * count
    statuses = [0] * count
    errors: list[str] = []
    connections: list[tuple[int, _HttpConnection]] = []  # (url index, connection)
    for i in range(min(job.concurrency, HTTP_CONNECTIONS_MAX) if job.mode == "closed" else job.concurrency):
        url_index = i % len(job.urls)
        host, port = _split_url(job.urls[url_index])
        _, protocol = await asyncio.wait_for(
            loop.create_connection(_HttpConnection, host, port), CONNECT_TIMEOUT_S
        )
        connections.append((url_index, protocol))
    # transaction i always goes to node i % len(urls): one copy of each request, built before the clock starts
    requests = []
    for index, body in enumerate(job.bodies):
        host, port = _split_url(job.urls[index % len(job.urls)])
        head = (
            f"POST /v1/txs HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/msgpack\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)

    async def send(connection: tuple[int, _HttpConnection], index: int) -> None:
        _, protocol = connection
        while True:
            try:
                status, body = await protocol.request(requests[index])
            except ConnectionError:
                status, body = 599, b"connection closed"
            if status == 503 and job.retry_full:
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            statuses[index] = status
            if status != 202 and len(errors) < ERROR_SAMPLES_MAX:
                errors.append(f"{status} {body[:200].decode(errors='replace')}")
            return

    cpu_before = time.process_time()
    started = time.monotonic()
    deadline = started + job.duration_s if job.duration_s > 0 else float("inf")
    if job.mode == "closed":
        per_url = [iter(range(u, count, len(job.urls))) for u in range(len(job.urls))]
        window = asyncio.Semaphore(job.concurrency) if job.events_url else None
        watcher = None
        if window is not None:
            watcher = asyncio.create_task(_release_on_commit(job.events_url, set(job.tx_ids), window))

        async def worker(connection: tuple[int, _HttpConnection]) -> None:
            for index in per_url[connection[0]]:
                if window is not None:
                    await window.acquire()
                now = time.monotonic()
                if now > deadline:
                    return
                send_times[index] = now
                await send(connection, index)
                if window is not None and statuses[index] != 202:
                    window.release()  # rejected: it will never commit

        connections_used = connections[: max(len(job.urls), min(len(connections), HTTP_CONNECTIONS_MAX))]
        await asyncio.gather(*(worker(c) for c in connections_used))
        if watcher is not None:
            watcher.cancel()
    else:
        idle: list[asyncio.Queue[tuple[int, _HttpConnection]]] = [asyncio.Queue() for _ in job.urls]
        for connection in connections:
            idle[connection[0]].put_nowait(connection)
        tasks: set[asyncio.Task[None]] = set()

        async def send_then_release(connection: tuple[int, _HttpConnection], index: int) -> None:
            try:
                await send(connection, index)
            finally:
                idle[connection[0]].put_nowait(connection)

        interval_s = 1.0 / job.rate_per_s
        for index in range(count):
            scheduled = started + index * interval_s
            if scheduled > deadline:
                break
            delay = scheduled - time.monotonic()
            if delay > 0.002:
                await asyncio.sleep(delay)
            connection = await idle[index % len(job.urls)].get()
            send_times[index] = scheduled
            task = asyncio.create_task(send_then_release(connection, index))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    finished = time.monotonic()
    for _, protocol in connections:
        protocol.close()
    return LoadResult(started, finished, send_times, statuses, errors, time.process_time() - cpu_before)


async def _run_batched_job(job: LoadJob) -> LoadResult:
    """run_job with batch requests: closed loop fills each request with as many transactions as the
    window allows (up to batch_max); open loop sends what is due every BATCH_TICK_S."""
    loop = asyncio.get_running_loop()
    count = len(job.bodies)
    send_times = [0.0] * count
    statuses = [0] * count
    errors: list[str] = []
    per_url_connections = max(1, BATCH_CONNECTIONS_PER_NODE)
    connections: list[tuple[int, _HttpConnection]] = []
    for i in range(per_url_connections * len(job.urls)):
        url_index = i % len(job.urls)
        host, port = _split_url(job.urls[url_index])
        _, protocol = await asyncio.wait_for(
            loop.create_connection(_HttpConnection, host, port), CONNECT_TIMEOUT_S
        )
        connections.append((url_index, protocol))
    addresses = [_split_url(url) for url in job.urls]
    window = asyncio.Semaphore(job.concurrency) if job.mode == "closed" and job.events_url else None

    async def send_batch(connection: tuple[int, _HttpConnection], indexes: list[int]) -> None:
        url_index, protocol = connection
        host, port = addresses[url_index]
        todo = indexes
        while todo:
            try:
                status, body = await protocol.request(
                    _batch_request(host, port, [job.bodies[i] for i in todo])
                )
            except ConnectionError:
                status, body = 599, b"connection closed"
            retry = []
            for index, (tx_status, code) in zip(todo, _batch_statuses(status, body, len(todo)), strict=True):
                if tx_status == 503 and job.retry_full:
                    retry.append(index)
                    continue
                statuses[index] = tx_status
                if tx_status != 202:
                    if len(errors) < ERROR_SAMPLES_MAX:
                        errors.append(f"{tx_status} {code}")
                    if window is not None:
                        window.release()  # rejected: it will never commit
            todo = retry
            if todo:
                await asyncio.sleep(RETRY_PAUSE_S)

    cpu_before = time.process_time()
    started = time.monotonic()
    deadline = started + job.duration_s if job.duration_s > 0 else float("inf")
    if job.mode == "closed":
        watcher = None
        if window is not None:
            watcher = asyncio.create_task(_release_on_commit(job.events_url, set(job.tx_ids), window))
        pending = iter(range(count))  # shared: whichever node's connection is free takes the next ones

        async def worker(connection: tuple[int, _HttpConnection]) -> None:
            while True:
                indexes: list[int] = []
                if window is not None:
                    await window.acquire()
                index = next(pending, None)
                now = time.monotonic()
                if index is None or now > deadline:
                    return
                indexes.append(index)
                while len(indexes) < job.batch_max and (window is None or not window.locked()):
                    index = next(pending, None)
                    if index is None:
                        break
                    if window is not None:
                        await window.acquire()  # free slots: does not wait
                    indexes.append(index)
                for i in indexes:
                    send_times[i] = now
                await send_batch(connection, indexes)

        await asyncio.gather(*(worker(c) for c in connections))
        if watcher is not None:
            watcher.cancel()
    else:
        tasks: set[asyncio.Task[None]] = set()
        idle: list[asyncio.Queue[tuple[int, _HttpConnection]]] = [asyncio.Queue() for _ in job.urls]
        for connection in connections:
            idle[connection[0]].put_nowait(connection)
        interval_s = 1.0 / job.rate_per_s
        next_index, batch_number = 0, 0

        async def send_then_release(connection: tuple[int, _HttpConnection], indexes: list[int]) -> None:
            try:
                await send_batch(connection, indexes)
            finally:
                idle[connection[0]].put_nowait(connection)

        while next_index < count:
            scheduled = started + next_index * interval_s
            if scheduled > deadline:
                break
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(max(delay, BATCH_TICK_S))
            now = time.monotonic()
            indexes: list[int] = []
            while next_index < count and len(indexes) < job.batch_max:
                due = started + next_index * interval_s
                if due > now or due > deadline:
                    break
                send_times[next_index] = due
                indexes.append(next_index)
                next_index += 1
            if not indexes:
                continue
            connection = await idle[batch_number % len(job.urls)].get()
            batch_number += 1
            task = asyncio.create_task(send_then_release(connection, indexes))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    finished = time.monotonic()
    for _, protocol in connections:
        protocol.close()
    return LoadResult(started, finished, send_times, statuses, errors, time.process_time() - cpu_before)


def _worker_main(connection: multiprocessing.connection.Connection) -> None:
    while True:
        job = connection.recv()
        if job is None:
            return
        try:
            result: LoadResult | str = asyncio.run(run_job(job))
        except Exception as exc:
            result = f"load job failed: {type(exc).__name__}: {exc}"
        connection.send(result)


class LoadWorker:
    """A load-generating child process; `run` sends it a job and waits (in a thread) for the result."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_worker_main, args=(child,), name="bench-load", daemon=True)
        self._process.start()
        child.close()

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    async def run(self, job: LoadJob) -> LoadResult:
        self._connection.send(job)
        result = await asyncio.to_thread(self._connection.recv)
        if isinstance(result, str):
            raise RuntimeError(result)
        assert isinstance(result, LoadResult)
        return result

    def close(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self._connection.send(None)
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._connection.close()


@dataclass(frozen=True, slots=True)
class BlockSeen:
    at: float  # monotonic time the block event arrived
    height: int
    tx_count: int


class CommitListener:
    """Records every committed transaction (id -> (monotonic time, code)) from one node's event stream."""

    def __init__(self, api_url: str) -> None:
        self.url = api_url.replace("http://", "ws://", 1) + "/v1/events"
        self.commits: dict[str, tuple[float, str]] = {}
        self.blocks: list[BlockSeen] = []
        self.failure: str | None = None
        self._waiting: set[str] = set()
        self._all_seen = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self, session: aiohttp.ClientSession) -> None:
        self._task = asyncio.create_task(self._listen(session), name="bench-listener")
        waiter = asyncio.create_task(self._connected.wait())
        await asyncio.wait({waiter, self._task}, timeout=CONNECT_TIMEOUT_S, return_when="FIRST_COMPLETED")
        waiter.cancel()
        if not self._connected.is_set():
            raise RuntimeError(f"cannot subscribe to {self.url}: {self.failure}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # asyncio.wait, not `await task` under suppress(CancelledError): that would also swallow a
            # cancellation of the caller (Ctrl-C), and the bench would carry on with its next run
            await asyncio.wait({self._task})

    async def _listen(self, session: aiohttp.ClientSession) -> None:
        try:
            async with session.ws_connect(self.url, heartbeat=30, max_msg_size=0) as socket:
                self._connected.set()
                async for message in socket:
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        break
                    self._on_event(json.loads(message.data), time.monotonic())
            self.failure = "the event stream ended"
        except aiohttp.ClientError as exc:
            self.failure = f"{type(exc).__name__}: {exc}"
        self._all_seen.set()  # wake waiters: they check failure

    def _on_event(self, event: dict[str, Any], now: float) -> None:
        kind = event.get("type")
        if kind == "tx":
            tx_id = event["tx_id"]
            self.commits[tx_id] = (now, event["code"])
            if tx_id in self._waiting:
                self._waiting.discard(tx_id)
                if not self._waiting:
                    self._all_seen.set()
        elif kind == "block":
            self.blocks.append(BlockSeen(now, event["height"], event["tx_count"]))
        elif kind == "dropped":
            self.failure = f"dropped by the node: {event.get('reason')}"

    async def wait_for(self, tx_ids: Iterable[str], *, timeout_s: float) -> set[str]:
        """Wait until every id is seen committed; returns the ids still missing at the timeout."""
        self._waiting = {t for t in tx_ids if t not in self.commits}
        if not self._waiting:
            return set()
        self._all_seen.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_seen.wait(), timeout_s)
        if self.failure is not None:
            raise RuntimeError(f"commit listener failed: {self.failure}")
        missing, self._waiting = self._waiting, set()
        return missing
