"""The observer's pool: transactions it admitted and relays to the validators until they commit.

A validator keeps its pending transactions in one place, the replica's pool (consensus/pool.py); an
observer has no replica, so this is its pool, bounded by the same PoolLimits. Deduplicated by id and kept
in arrival order; when full, a transaction is refused (mempool_full) rather than another evicted, so a
client learns at once that it must retry and nothing acknowledged is dropped silently (docs/RELIABILITY.md
item 4). Arrival times are monotonic seconds: only the re-gossip of lingering transactions reads them.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable

from consensus.events import REFUSED_FULL
from consensus.pool import PoolLimits
from core.tx import SignedTx


class RelayPool:
    def __init__(self, limits: PoolLimits) -> None:
        self.limits = limits
        self._txs: OrderedDict[bytes, SignedTx] = OrderedDict()
        self._arrived: dict[bytes, float] = {}  # tx id -> monotonic arrival time (for re-gossip)
        self.size_bytes = 0

    def __len__(self) -> int:
        return len(self._txs)

    def get(self, tx_id: bytes) -> SignedTx | None:
        return self._txs.get(tx_id)

    def offer(self, tx: SignedTx) -> str | None:
        """Take a verified transaction; None when taken (or already here), REFUSED_FULL past a limit."""
        if tx.tx_id in self._txs:
            return None
        if len(self._txs) >= self.limits.txs_max or self.size_bytes + len(tx.raw) > self.limits.bytes_max:
            return REFUSED_FULL
        self._txs[tx.tx_id] = tx
        self._arrived[tx.tx_id] = time.monotonic()
        self.size_bytes += len(tx.raw)
        return None

    def remove_many(self, tx_ids: Iterable[bytes]) -> None:
        for tx_id in tx_ids:
            tx = self._txs.pop(tx_id, None)
            if tx is not None:
                self.size_bytes -= len(tx.raw)
                del self._arrived[tx_id]

    def remove_expired(self, next_height: int) -> list[bytes]:
        """Drop transactions that can no longer be included; returns their ids."""
        expired = [tx_id for tx_id, tx in self._txs.items() if tx.body.valid_until < next_height]
        self.remove_many(expired)
        return expired

    def get_lingering(self, older_than_s: float, limit: int) -> list[SignedTx]:
        """The oldest transactions pending for longer than `older_than_s`, at most `limit` of them."""
        cutoff = time.monotonic() - older_than_s
        lingering: list[SignedTx] = []
        for tx_id, tx in self._txs.items():  # arrival order: stop at the first young one
            if self._arrived[tx_id] > cutoff or len(lingering) >= limit:
                break
            lingering.append(tx)
        return lingering
