"""`carbonchain bench --baseline pysyncobj`: the same signed transfers through a PySyncObj (Raft) cluster.

The baseline answers "how does our BFT chain compare with a crash-fault-tolerant replication library a
user might pick instead?" on the same machine, in the same bench invocation. One baseline run = N fresh OS
processes on 127.0.0.1 (N = --validators), each a PySyncObj node (baseline_node.py) whose replicated
operation decodes a pre-signed transfer transaction, validates it with core.tx.validate_transaction (the
same Ed25519 verification, chain id, validity, enrolled-key and replay checks our nodes run) and applies
the transfer to an in-memory balance map. So the work per transaction is Raft replication + one signature
verification per node + apply; there is no disk, no blocks, no state tree and no Byzantine tolerance.

The driver (this process) keeps at most --concurrency transactions submitted but not yet committed, like
our closed loop, sends transaction i to node i mod N, and counts a transaction committed when the node it
was sent to has applied it (PySyncObj's commit callback on that node). Throughput and latency use the same
steady window and percentiles as our runs (tools.bench.stats).

Wire format between driver and node, one TCP connection per node, requests pipelined:
  request = uint32 payload length, uint32 request id, payload (a raw signed transaction; empty = "hello")
  reply   = uint32 request id, uint8 status (RESULT_CODES index; NOT_COMMITTED + PySyncObj's FAIL_REASON;
            READY answers a hello once the node has joined a cluster with a leader)
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import importlib.util
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from core.devkeys import dev_admin_key
from core.errors import ConfigError, InvalidInput, TransactionError
from core.tx import DEFAULT_TX_BYTES_MAX, Rejection, decode_transaction, validate_transaction
from tools.bench.network import (
    BENCH_CONSENSUS,
    CHAIN_ID,
    HOST,
    find_free_port_base,
    read_process_sample,
)
from tools.bench.stats import compute_cpu_us_per_tx, compute_window, compute_window_stats, median
from tools.bench.workloads import OPENING_BALANCE_T, TxFactory, enterprise_id, transfers_load
from tools.devnet import stop_processes

BASELINES = ("pysyncobj",)
INSTALL_HINT = "pip install -e '.[baseline]'"
# each enterprise's opening balance: what transfers_setup allocates on our chain
BALANCE_T = OPENING_BALANCE_T
READY_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 120.0
CONNECT_RETRY_S = 0.05
NODE_METRICS = ("cpu_s", "cpu_share", "cpu_us_per_tx", "peak_rss_mb")
Progress = Callable[[str], None]


class BaselineError(InvalidInput):
    """The other end of a baseline connection sent something that is not the baseline wire format."""


def require_baseline(name: str) -> None:
    """Raise a ConfigError that says how to install the baseline unless it can run here."""
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    if importlib.util.find_spec("pysyncobj") is None:
        raise ConfigError(
            f"--baseline {name} needs the optional PySyncObj package; install it with {INSTALL_HINT} "
            "(in the carbonchain checkout, with the same Python)"
        )


# --- wire format (sans-I/O) -------------------------------------------------------------------------------

_REQUEST_HEAD = struct.Struct(">II")
_REPLY = struct.Struct(">IB")
HELLO_ID = 0xFFFFFFFF
READY = 0xFF
NOT_COMMITTED = 0x80  # + PySyncObj's FAIL_REASON: the operation was not committed
SUCCESS = 0  # PySyncObj's FAIL_REASON.SUCCESS
RESULT_CODES: tuple[str, ...] = (
    "ok",
    Rejection.MALFORMED,
    Rejection.TOO_LARGE,
    Rejection.WRONG_CHAIN,
    Rejection.BAD_SIGNATURE,
    Rejection.EXPIRED,
    Rejection.VALIDITY_TOO_LONG,
    Rejection.REPLAY,
    Rejection.UNKNOWN_SENDER,
    Rejection.REVOKED_KEY,
    "unsupported_function",
    "invalid_args",
    "self_transfer",
    "unknown_receiver",
    "insufficient_balance",
)


def encode_request(request_id: int, payload: bytes) -> bytes:
    return _REQUEST_HEAD.pack(len(payload), request_id) + payload


def encode_reply(request_id: int, status: int) -> bytes:
    return _REPLY.pack(request_id, status)


def compute_status(result: Any, fail_reason: int) -> int:
    """The reply status of a PySyncObj callback(result, fail_reason) for a TransferLedger result."""
    if fail_reason != SUCCESS:
        return NOT_COMMITTED + fail_reason
    return RESULT_CODES.index(result) if result in RESULT_CODES else RESULT_CODES.index(Rejection.MALFORMED)


def describe_status(status: int) -> str:
    if status < len(RESULT_CODES):
        return RESULT_CODES[status]
    if status == READY:
        return "ready"
    return f"not_committed:{status - NOT_COMMITTED}"


class RequestReader:
    """Node side: bytes in, (request id, payload) frames out. Payloads are bounded like our API's."""

    def __init__(self, payload_bytes_max: int = DEFAULT_TX_BYTES_MAX) -> None:
        self._buffer = bytearray()
        self._payload_bytes_max = payload_bytes_max

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        frames = []
        at = 0
        while len(self._buffer) - at >= _REQUEST_HEAD.size:
            length, request_id = _REQUEST_HEAD.unpack_from(self._buffer, at)
            if length > self._payload_bytes_max:
                raise BaselineError(f"request of {length} bytes exceeds {self._payload_bytes_max}")
            end = at + _REQUEST_HEAD.size + length
            if len(self._buffer) < end:
                break
            frames.append((request_id, bytes(self._buffer[at + _REQUEST_HEAD.size : end])))
            at = end
        del self._buffer[:at]
        return frames


class ReplyReader:
    """Driver side: bytes in, (request id, status) replies out."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        self._buffer += data
        whole = len(self._buffer) - len(self._buffer) % _REPLY.size
        replies = list(_REPLY.iter_unpack(self._buffer[:whole])) if whole else []
        del self._buffer[:whole]
        return replies


# --- the replicated state (sans-I/O) ----------------------------------------------------------------------


class TransferLedger:
    """Balances of the bench's enterprises; `apply` runs one raw signed transfer, returns a RESULT_CODES entry.

    It is a TxCheckContext, so validate_transaction runs the node's own checks. There are no blocks: the
    "next height" is always 1, and pre-signed transactions carry valid_until well above it.
    """

    tx_validity_blocks_max = int(BENCH_CONSENSUS["tx_validity_blocks_max"])

    def __init__(self, chain_id: str, keys: dict[str, bytes], balance_t: int = BALANCE_T) -> None:
        self.chain_id = chain_id
        self.keys = keys  # organisation -> its one enrolled public key
        self.balances_t = dict.fromkeys(keys, balance_t)
        self.committed: set[bytes] = set()  # ids of every applied transaction, for the replay check

    @classmethod
    def for_bench(cls, enterprises: int, chain_id: str = CHAIN_ID) -> TransferLedger:
        """The enterprises of the transfers workload with their insecure devnet admin keys."""
        orgs = [enterprise_id(i) for i in range(enterprises)]
        return cls(chain_id, {org: dev_admin_key(org).public_key for org in orgs})

    @property
    def next_height(self) -> int:
        return 1

    def is_committed(self, tx_id: bytes) -> bool:
        return tx_id in self.committed

    def sender_key_status(self, org_id: str, public_key: bytes) -> str:
        return "active" if self.keys.get(org_id) == public_key else "unknown"

    def apply(self, raw: bytes) -> str:
        try:
            tx = decode_transaction(raw)
            validate_transaction(tx, self)
        except TransactionError as exc:
            return exc.code
        self.committed.add(tx.tx_id)  # like our chain: a transaction that fails in the chaincode is spent
        body = tx.body
        if body.function != "transfer_allowances":
            return "unsupported_function"
        to, amount_t = body.args.get("to"), body.args.get("amount_t")
        if not isinstance(to, str) or not isinstance(amount_t, int) or amount_t <= 0:
            return "invalid_args"
        if to == body.sender_org:
            return "self_transfer"
        if to not in self.balances_t:
            return "unknown_receiver"
        if self.balances_t[body.sender_org] < amount_t:
            return "insufficient_balance"
        self.balances_t[body.sender_org] -= amount_t
        self.balances_t[to] += amount_t
        return "ok"


# --- the cluster's processes ------------------------------------------------------------------------------


class BaselineCluster:
    """N PySyncObj node processes on 127.0.0.1 with free ports; a context manager that stops them all."""

    def __init__(self, *, nodes: int, enterprises: int, workdir: Path | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="carbonchain-baseline-", dir=workdir))
        base = find_free_port_base(nodes)  # raft on base + i, client connections on base + 100 + i
        self.raft_addresses = [f"{HOST}:{base + i}" for i in range(nodes)]
        self.client_addresses = [(HOST, base + 100 + i) for i in range(nodes)]
        self.enterprises = enterprises
        self.processes: list[subprocess.Popen[bytes]] = []
        self.keep = False  # keep the logs, e.g. after a failure

    def __enter__(self) -> BaselineCluster:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        stop_processes(self.processes)
        if kind is None and not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def start(self) -> None:
        for i, address in enumerate(self.raft_addresses):
            partners = [a for a in self.raft_addresses if a != address]
            command = [sys.executable, "-m", "tools.bench.baseline_node", "--self", address]
            command += [arg for partner in partners for arg in ("--partner", partner)]
            command += ["--client-port", str(self.client_addresses[i][1])]
            command += ["--enterprises", str(self.enterprises)]
            with self.log(i).open("ab") as log:
                # stdin stays open as a lifeline: a node exits when its stdin closes, i.e. when we are gone
                self.processes.append(
                    subprocess.Popen(command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
                )

    def log(self, index: int) -> Path:
        return self.root / f"node-{index}.log"

    def dead_nodes(self) -> list[int]:
        return [i for i, process in enumerate(self.processes) if process.poll() is not None]

    def cpu_s(self) -> list[float]:
        samples = [read_process_sample(process.pid) for process in self.processes]
        return [sample.cpu_s if sample else float("nan") for sample in samples]

    def peak_rss_mb(self) -> list[float]:
        samples = [read_process_sample(process.pid) for process in self.processes]
        return [sample.peak_rss_bytes / 2**20 if sample else float("nan") for sample in samples]


# --- the closed-loop driver -------------------------------------------------------------------------------


@dataclass
class LoadSeen:
    started: float  # monotonic time of the first send
    stopped: float  # monotonic time sending stopped (the deadline, or every body sent)
    send_times: list[float]  # per body; 0.0 = not sent
    commit_times: list[float]  # per body: when its reply arrived; 0.0 = none
    statuses: list[int]  # per body: reply status, -1 = no reply


class _NodeLink(asyncio.Protocol):
    """One pipelined connection to a baseline node."""

    def __init__(self, on_reply: Callable[[int, int], None], on_lost: Callable[[str], None]) -> None:
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reader = ReplyReader()
        self._on_reply = on_reply
        self._on_lost = on_lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        for request_id, status in self._reader.feed(data):
            if request_id == HELLO_ID:
                if not self.ready.done():
                    self.ready.set_result(None)
            else:
                self._on_reply(request_id, status)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("a baseline node closed its connection"))
        self._on_lost(f"a baseline node closed its connection ({exc})")

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


async def drive_closed_loop(
    cluster: BaselineCluster,
    bodies: Sequence[bytes],
    *,
    concurrency: int,
    duration_s: float,
    on_start: Callable[[], None] = lambda: None,
) -> LoadSeen:
    """Connect to every node, wait until each is ready, then keep `concurrency` transactions in flight.

    `on_start` is called when the cluster is ready, just before the first send (e.g. to sample CPU).
    """
    count = len(bodies)
    assert count < HELLO_ID, "request ids must not reach the hello id"
    seen = LoadSeen(0.0, 0.0, [0.0] * count, [0.0] * count, [-1] * count)
    window = asyncio.Semaphore(concurrency)
    drained = asyncio.Event()
    outstanding = 0
    sending = True
    closing = False
    failure: str | None = None

    def on_reply(request_id: int, status: int) -> None:
        nonlocal outstanding
        seen.commit_times[request_id] = time.monotonic()
        seen.statuses[request_id] = status
        outstanding -= 1
        window.release()
        if not sending and outstanding == 0:
            drained.set()

    def on_lost(reason: str) -> None:
        nonlocal failure
        if closing or failure is not None:
            return
        failure = reason
        drained.set()
        for _ in range(concurrency):  # wake the sender, which checks `failure`
            window.release()

    links: list[_NodeLink] = []
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        for index, (host, port) in enumerate(cluster.client_addresses):
            links.append(await _connect(cluster, index, host, port, deadline, on_reply, on_lost))
            links[-1].send(encode_request(HELLO_ID, b""))
        try:
            # a node answers its hello once it has joined a cluster with a leader (PySyncObj's onReady)
            await asyncio.wait_for(asyncio.gather(*(link.ready for link in links)), READY_TIMEOUT_S)
        except TimeoutError:
            raise ConfigError(
                f"the baseline cluster elected no leader in {READY_TIMEOUT_S:.0f} s; logs in {cluster.root}"
            ) from None
        except ConnectionError:
            raise ConfigError(f"a baseline node failed before it was ready; logs in {cluster.root}") from None
        requests = [encode_request(i, body) for i, body in enumerate(bodies)]  # built before the clock starts
        on_start()
        seen.started = time.monotonic()
        stop_at = seen.started + duration_s
        for index in range(count):
            await window.acquire()
            now = time.monotonic()
            if failure is not None or now > stop_at:
                break
            seen.send_times[index] = now
            outstanding += 1
            links[index % len(links)].send(requests[index])
        seen.stopped = time.monotonic()
        sending = False
        if outstanding and failure is None:
            with contextlib.suppress(TimeoutError):  # what is still outstanding counts as not committed
                await asyncio.wait_for(drained.wait(), DRAIN_TIMEOUT_S)
    finally:
        closing = True
        for link in links:
            if link.transport is not None:
                link.transport.close()
    if failure is not None:
        raise RuntimeError(failure)
    return seen


async def _connect(
    cluster: BaselineCluster,
    index: int,
    host: str,
    port: int,
    deadline: float,
    on_reply: Callable[[int, int], None],
    on_lost: Callable[[str], None],
) -> _NodeLink:
    loop = asyncio.get_running_loop()
    while True:
        try:
            _, link = await loop.create_connection(lambda: _NodeLink(on_reply, on_lost), host, port)
            return link
        except OSError:
            if index in cluster.dead_nodes():
                raise ConfigError(f"baseline node {index} exited; see {cluster.log(index)}") from None
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"baseline node {index} is not listening; see {cluster.log(index)}"
                ) from None
            await asyncio.sleep(CONNECT_RETRY_S)  # polling another process's port: there is no event to await


# --- runs and their summary -------------------------------------------------------------------------------


def sign_baseline_load(enterprises: int, count: int) -> list[bytes]:
    """The transfers workload's load phase, signed once and reusable: every run starts a fresh ledger."""
    factory = TxFactory(CHAIN_ID, 0, TransferLedger.tx_validity_blocks_max - 10)
    return [tx.raw for tx in transfers_load(factory, enterprises, count)]


async def run_baseline_once(
    *,
    nodes: int,
    enterprises: int,
    bodies: Sequence[bytes],
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    workdir: Path | None,
    progress: Progress,
) -> dict[str, Any]:
    """One fresh PySyncObj cluster under the closed-loop transfer load; the same metrics as our runs."""
    progress(f"baseline: starting {nodes} PySyncObj nodes")
    with BaselineCluster(nodes=nodes, enterprises=enterprises, workdir=workdir) as cluster:
        try:
            cluster.start()
            cpu_before: list[float] = []

            def on_start() -> None:  # CPU over the load only, not start-up and leader election
                cpu_before.extend(cluster.cpu_s())
                progress(f"baseline: closed loop for {duration_s:.0f} s")

            seen = await drive_closed_loop(
                cluster, bodies, concurrency=concurrency, duration_s=duration_s, on_start=on_start
            )
            cpu_after = cluster.cpu_s()
            peak_rss_mb = cluster.peak_rss_mb()
            dead = cluster.dead_nodes()
        except BaseException:
            cluster.keep = True
            progress(f"baseline logs kept in {cluster.root}")
            raise
    return compute_baseline_metrics(seen, warmup_s, duration_s, cpu_after, cpu_before, peak_rss_mb, dead)


def compute_baseline_metrics(
    seen: LoadSeen,
    warmup_s: float,
    duration_s: float,
    cpu_after: list[float],
    cpu_before: list[float],
    peak_rss_mb: list[float],
    dead: list[int],
) -> dict[str, Any]:
    sent = sum(1 for t in seen.send_times if t)
    committed = [i for i, status in enumerate(seen.statuses) if 0 <= status < NOT_COMMITTED]
    codes: dict[str, int] = {}
    for i in committed:
        code = describe_status(seen.statuses[i])
        codes[code] = codes.get(code, 0) + 1
    reasons: dict[str, int] = {}  # PySyncObj's FAIL_REASON of what was sent but not committed
    for i, status in enumerate(seen.statuses):
        if seen.send_times[i] and not 0 <= status < NOT_COMMITTED:
            reason = describe_status(status) if status >= 0 else "no_reply"
            reasons[reason] = reasons.get(reason, 0) + 1
    window_start, window_end = compute_window(seen.started, seen.stopped, warmup_s, duration_s)
    window = compute_window_stats(
        ((seen.send_times[i], seen.commit_times[i]) for i in committed), window_start, window_end
    )
    load_s = max(1e-9, seen.stopped - seen.started)
    span_commits = sum(1 for i in committed if seen.started <= seen.commit_times[i] <= seen.stopped)
    return {
        "txs": sent,
        "committed": len(committed),
        "not_committed": sent - len(committed),
        "ran_out_of_txs": sent == len(seen.send_times),  # sending stopped before the duration: raise --txs
        "failed_in_apply": len(committed) - codes.get("ok", 0),
        "codes": codes,
        "not_committed_reasons": reasons,
        "window_s": window.window_s,
        "tx_per_s": window.tx_per_s,
        **window.latency_ms(),
        "nodes": {
            f"pysyncobj-{i}": {
                "cpu_s": cpu_after[i] - cpu_before[i],
                "cpu_share": (cpu_after[i] - cpu_before[i]) / load_s,
                "cpu_us_per_tx": compute_cpu_us_per_tx(cpu_after[i] - cpu_before[i], span_commits),
                "peak_rss_mb": peak_rss_mb[i],
            }
            for i in range(len(cpu_after))
        },
        "dead_nodes": dead,
    }


def summarise_baseline(runs: list[dict[str, Any]], nodes: int) -> dict[str, Any]:
    """Medians over baseline runs, under the report's `baseline_*` keys."""
    try:
        version = importlib.metadata.version("pysyncobj")
    except importlib.metadata.PackageNotFoundError:  # the version is only for the record
        version = "unknown"
    return {
        "baseline": "pysyncobj",
        "baseline_tx_per_s": median([r["tx_per_s"] for r in runs]),
        "baseline_p50_ms": median([r["p50_ms"] for r in runs]),
        "baseline_p95_ms": median([r["p95_ms"] for r in runs]),
        "baseline_p99_ms": median([r["p99_ms"] for r in runs]),
        "baseline_nodes": {
            name: {metric: median([r["nodes"][name][metric] for r in runs]) for metric in NODE_METRICS}
            for name in runs[0]["nodes"]
        },
        "baseline_detail": {
            "system": f"PySyncObj {version} (Raft), {nodes} nodes, in-memory log, default SyncObjConf",
            "runs_tx_per_s": [r["tx_per_s"] for r in runs],
            "runs": runs,
        },
    }


def compute_ratio(ours_tx_per_s: float, baseline_tx_per_s: float) -> float:
    return ours_tx_per_s / baseline_tx_per_s if baseline_tx_per_s > 0 else float("nan")
