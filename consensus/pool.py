"""Transactions the replica knows about: pending ones (for proposing and censorship detection) and the ids
committed within the validity window (replay protection).

A transaction committed at height c has valid_until <= c + tx_validity_blocks_max, so it can never be
included again after that height: remembering the ids of the last tx_validity_blocks_max heights is enough.
Both structures are bounded and iterate in insertion order only (deterministic).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from core.block import Block
from core.tx import SignedTx


@dataclass(slots=True)
class PendingTx:
    tx: SignedTx
    arrival_ms: int  # local time it arrived (censorship detection and batch wait)


class CommittedWindow:
    """Ids of transactions committed in the last `window` heights."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._height_of: dict[bytes, int] = {}
        self._by_height: deque[tuple[int, tuple[bytes, ...]]] = deque()

    def add_block(self, block: Block) -> None:
        height = block.header.height
        ids = tuple(tx.tx_id for tx in block.txs)
        self._by_height.append((height, ids))
        for tx_id in ids:
            self._height_of[tx_id] = height
        while self._by_height and self._by_height[0][0] <= height - self.window:
            _, old = self._by_height.popleft()
            for tx_id in old:
                if self._height_of.get(tx_id, height) <= height - self.window:
                    del self._height_of[tx_id]

    def contains(self, tx_id: bytes) -> bool:
        return tx_id in self._height_of


class PendingPool:
    """Uncommitted transactions in arrival order, at most `limit` of them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._txs: OrderedDict[bytes, PendingTx] = OrderedDict()

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_id: bytes) -> bool:
        return tx_id in self._txs

    def add(self, tx: SignedTx, now_ms: int) -> bool:
        if tx.tx_id in self._txs or len(self._txs) >= self.limit:
            return False
        self._txs[tx.tx_id] = PendingTx(tx, now_ms)
        return True

    def remove(self, tx_id: bytes) -> None:
        self._txs.pop(tx_id, None)

    def remove_expired(self, next_height: int) -> None:
        expired = [tx_id for tx_id, p in self._txs.items() if p.tx.body.valid_until < next_height]
        for tx_id in expired:
            del self._txs[tx_id]

    def items(self) -> list[PendingTx]:
        return list(self._txs.values())

    def oldest(self) -> PendingTx | None:
        return next(iter(self._txs.values()), None)
