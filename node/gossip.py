"""Transaction gossip: admitted transactions travel to the validators in batches, and again if they linger.

One frame per transaction per peer overflowed the peers' bounded send queues under load, and a dropped
frame was never sent again, so a transaction could wait forever in one validator's mempool. Now admitted
transactions are collected for a few milliseconds and sent as one frame per peer, and a periodic sweep
re-sends transactions that are still pending after a while (receivers drop duplicates by id).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from core import codec
from core.errors import InvalidInput
from node.channels import CHANNEL_TX
from p2p import PeerNetwork

FLUSH_DELAY_S = 0.005
BATCH_TXS_MAX = 2000  # transactions per frame
BATCH_BYTES_MAX = 4 * 1024 * 1024  # bytes of transactions per frame


class TxGossip:
    def __init__(self, network: PeerNetwork) -> None:
        self.network = network
        self._outbox: list[bytes] = []
        self._outbox_bytes = 0
        self._flush_handle: asyncio.Handle | None = None
        self.frames_sent = 0

    def queue(self, raw_txs: Iterable[bytes]) -> None:
        """Send these transactions to every validator soon, batched with others."""
        for raw in raw_txs:
            self._outbox.append(raw)
            self._outbox_bytes += len(raw)
            if len(self._outbox) >= BATCH_TXS_MAX or self._outbox_bytes >= BATCH_BYTES_MAX:
                self.flush()
        if self._outbox and self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(FLUSH_DELAY_S, self.flush)

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._outbox:
            return
        self.network.broadcast(CHANNEL_TX, encode_tx_batch(self._outbox), to="validators")
        self.frames_sent += 1
        self._outbox = []
        self._outbox_bytes = 0


def encode_tx_batch(raw_txs: list[bytes]) -> bytes:
    """A `tx` channel payload: the canonical list of raw signed transactions."""
    return codec.encode(raw_txs)


def decode_tx_batch(payload: bytes) -> list[bytes]:
    value = codec.decode(payload, max_container_len=BATCH_TXS_MAX)
    if type(value) is not list or any(type(raw) is not bytes for raw in value):
        raise InvalidInput("a tx batch is a list of raw transactions")
    return value
