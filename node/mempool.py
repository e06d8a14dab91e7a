"""The bounded mempool: verified transactions waiting to be ordered.

Bounded by count and bytes (docs/RELIABILITY.md item 4); deduplicated by transaction id; kept in arrival order
so the primary proposes oldest first. When full, new transactions are rejected with a clear error rather than
evicting others: a client learns at once that it must retry, and nothing acknowledged is dropped silently.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator

from core.errors import TransactionError
from core.tx import SignedTx


class MempoolFull(TransactionError):
    def __init__(self, message: str) -> None:
        super().__init__("mempool_full", message)


class Mempool:
    def __init__(self, *, txs_max: int, bytes_max: int) -> None:
        self.txs_max = txs_max
        self.bytes_max = bytes_max
        self._txs: OrderedDict[bytes, SignedTx] = OrderedDict()
        self._arrived: dict[bytes, float] = {}  # tx id -> monotonic arrival time (for re-gossip)
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_id: bytes) -> bool:
        return tx_id in self._txs

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def add(self, tx: SignedTx) -> bool:
        """Add a verified transaction; False if already present; MempoolFull if a limit would be passed."""
        if tx.tx_id in self._txs:
            return False
        if len(self._txs) >= self.txs_max:
            raise MempoolFull(f"mempool holds {len(self._txs)} transactions, the limit; retry later")
        if self._bytes + len(tx.raw) > self.bytes_max:
            raise MempoolFull(
                f"mempool holds {self._bytes} bytes, the limit is {self.bytes_max}; retry later"
            )
        self._txs[tx.tx_id] = tx
        self._arrived[tx.tx_id] = time.monotonic()
        self._bytes += len(tx.raw)
        return True

    def get(self, tx_id: bytes) -> SignedTx | None:
        return self._txs.get(tx_id)

    def remove_many(self, tx_ids: Iterable[bytes]) -> None:
        for tx_id in tx_ids:
            tx = self._txs.pop(tx_id, None)
            if tx is not None:
                self._bytes -= len(tx.raw)
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

    def __iter__(self) -> Iterator[SignedTx]:
        """Oldest first."""
        return iter(list(self._txs.values()))
