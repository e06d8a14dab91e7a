"""One node of the PySyncObj baseline cluster of `carbonchain bench --baseline pysyncobj`, as a process.

    python -m tools.bench.baseline_node --self 127.0.0.1:P --partner 127.0.0.1:Q ... --client-port C \\
        --enterprises N

The node replicates one operation, `apply_transaction(raw)`, through PySyncObj's Raft log; every node
applies it to its own TransferLedger (baseline.py: decode, core validation with one Ed25519 verification,
in-memory balances). The bench driver connects to the client port and pipelines requests (baseline.py's
wire format); a request is answered when PySyncObj calls back on *this* node, i.e. once the entry is
committed and applied here. The node exits when its stdin closes, so it never outlives the bench.

PySyncObj runs with its defaults (batched append entries, in-memory log, log compaction every 5,000
entries): the configuration a user would start from.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import socket
import sys
import threading
from typing import Any

from pysyncobj import SyncObj, SyncObjConf, SyncObjConsumer, replicated

from tools.bench.baseline import (
    HELLO_ID,
    READY,
    BaselineError,
    RequestReader,
    TransferLedger,
    compute_status,
    encode_reply,
)

CLIENT_RECV_BYTES = 1 << 16
CLIENTS_MAX = 16


class ReplicatedLedger(SyncObjConsumer):
    """The ledger as PySyncObj replicated state."""

    def __init__(self, ledger: TransferLedger) -> None:
        super().__init__()
        self.ledger = ledger  # set after SyncObjConsumer.__init__, so snapshots (log compaction) include it

    @replicated
    def apply_transaction(self, raw: bytes) -> str:
        return self.ledger.apply(raw)


class ClientConnection:
    """One driver connection: requests read on its own thread, replies flushed on PySyncObj's tick thread."""

    def __init__(
        self, sock: socket.socket, replicated_ledger: ReplicatedLedger, ready: threading.Event
    ) -> None:
        self._sock = sock
        self._ledger = replicated_ledger
        self._ready = ready
        self._lock = threading.Lock()
        self._pending = bytearray()  # replies not yet written
        self.closed = False

    def serve(self) -> None:
        reader = RequestReader()
        try:
            while data := self._sock.recv(CLIENT_RECV_BYTES):
                for request_id, payload in reader.feed(data):
                    if request_id == HELLO_ID:
                        self._ready.wait()  # answered once this node follows or is a leader
                        self._queue(encode_reply(HELLO_ID, READY))
                        self.flush()
                    else:
                        callback = functools.partial(self._on_result, request_id)
                        self._ledger.apply_transaction(payload, callback=callback)
        except (OSError, BaselineError) as exc:
            print(f"client connection closed: {exc}", file=sys.stderr)
        finally:
            self.closed = True
            with contextlib.suppress(OSError):
                self._sock.close()

    def _on_result(self, request_id: int, result: Any, fail_reason: int) -> None:
        self._queue(encode_reply(request_id, compute_status(result, fail_reason)))

    def _queue(self, reply: bytes) -> None:
        with self._lock:
            self._pending += reply

    def flush(self) -> None:
        """Write queued replies: one write per tick rather than one per committed transaction."""
        with self._lock:
            if not self._pending or self.closed:
                return
            try:
                self._sock.sendall(self._pending)
            except OSError:
                self.closed = True
            self._pending.clear()


class ClientServer:
    """Accepts driver connections and flushes their replies from PySyncObj's tick callback."""

    def __init__(self, port: int, replicated_ledger: ReplicatedLedger, ready: threading.Event) -> None:
        self._listener = socket.create_server(("127.0.0.1", port))
        self._ledger = replicated_ledger
        self._ready = ready
        self._clients: list[ClientConnection] = []
        self._lock = threading.Lock()

    def flush(self) -> None:
        with self._lock:
            self._clients = [c for c in self._clients if not c.closed]
            clients = list(self._clients)
        for client in clients:
            client.flush()

    def serve_forever(self) -> None:
        while True:
            sock, _ = self._listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if len(self._clients) >= CLIENTS_MAX:
                    sock.close()
                    continue
                client = ClientConnection(sock, self._ledger, self._ready)
                self._clients.append(client)
            threading.Thread(target=client.serve, name="baseline-client", daemon=True).start()


def _exit_when_stdin_closes() -> None:
    """The bench holds our stdin open; EOF means it is gone, and so should we be."""
    sys.stdin.buffer.read()
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--self", dest="self_address", required=True, help="this node's Raft host:port")
    parser.add_argument("--partner", action="append", default=[], help="another node's Raft host:port")
    parser.add_argument("--client-port", type=int, required=True, help="where the bench driver connects")
    parser.add_argument("--enterprises", type=int, required=True)
    args = parser.parse_args(argv)
    threading.Thread(target=_exit_when_stdin_closes, name="lifeline", daemon=True).start()
    replicated_ledger = ReplicatedLedger(TransferLedger.for_bench(args.enterprises))
    ready = threading.Event()
    # the client port is bound before Raft starts, so the driver's connection attempts succeed early
    server = ClientServer(args.client_port, replicated_ledger, ready)
    node = SyncObj(
        args.self_address, args.partner, SyncObjConf(onReady=ready.set), consumers=[replicated_ledger]
    )
    node.addOnTickCallback(server.flush)
    print(f"baseline node {args.self_address} up, clients on port {args.client_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
