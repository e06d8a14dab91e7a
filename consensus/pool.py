"""Transactions the replica knows about: pending ones (for proposing and censorship detection) and the ids
committed within the validity window (replay protection).

The pending pool is the node's one pool of transactions waiting to be ordered; its capacity (a count and
a byte total) is defined here once, by `PoolLimits.for_chain`. The node keeps no second copy: it asks the
replica (`Replica.get_pending`) and learns of a refusal from the TxRefused output.

A transaction committed at height c has valid_until <= c + tx_validity_blocks_max, so it can never be
included again after that height: remembering the ids of the last tx_validity_blocks_max heights is enough.
Both structures are bounded and iterate in insertion order only (deterministic).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from dataclasses import dataclass

from core.block import Block
from core.tx import SignedTx

POOL_TXS_MIN = 1000  # never fewer slots than this, however small the blocks
POOL_BLOCKS = 10  # room for this many full blocks of pending transactions
POOL_BYTES_DEFAULT = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PoolLimits:
    txs_max: int
    bytes_max: int

    @classmethod
    def for_chain(
        cls, block_txs_max: int, *, txs_max: int | None = None, bytes_max: int | None = None
    ) -> PoolLimits:
        """Room for POOL_BLOCKS full blocks (at least POOL_TXS_MIN), lowered to what the operator set."""
        ceiling = max(POOL_BLOCKS * block_txs_max, POOL_TXS_MIN)
        return cls(
            ceiling if txs_max is None else min(txs_max, ceiling),
            POOL_BYTES_DEFAULT if bytes_max is None else bytes_max,
        )


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
        self._first_height: int | None = None  # the first block added: every later one was added too
        self._latest_height = 0

    @property
    def is_complete(self) -> bool:
        """Holds every id of the last `window` heights (from genesis, or recovered with that many blocks)."""
        first = 1 if self._first_height is None else self._first_height
        return first <= max(1, self._latest_height - self.window + 1)

    def add_block(self, block: Block) -> None:
        height = block.header.height
        if self._first_height is None:
            self._first_height = height
        self._latest_height = height
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
    """Uncommitted transactions in arrival order, within its limits."""

    def __init__(self, limits: PoolLimits) -> None:
        self.limits = limits
        self._txs: OrderedDict[bytes, PendingTx] = OrderedDict()
        self.size_bytes = 0
        # (valid_until, tx id) of pending transactions, and of some already removed: expiry without a scan
        self._expiry: list[tuple[int, bytes]] = []

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_id: bytes) -> bool:
        return tx_id in self._txs

    def is_full_for(self, tx: SignedTx) -> bool:
        return len(self._txs) >= self.limits.txs_max or self.size_bytes + len(tx.raw) > self.limits.bytes_max

    def add(self, tx: SignedTx, now_ms: int) -> bool:
        """Add a transaction; False if it is already pending. The caller checks is_full_for first."""
        if tx.tx_id in self._txs:
            return False
        self._txs[tx.tx_id] = PendingTx(tx, now_ms)
        self.size_bytes += len(tx.raw)
        heapq.heappush(self._expiry, (tx.body.valid_until, tx.tx_id))
        if len(self._expiry) > 2 * len(self._txs) + POOL_TXS_MIN:
            # most entries are of transactions committed since: rebuild from the pending ones
            self._expiry = [(p.tx.body.valid_until, tx_id) for tx_id, p in self._txs.items()]
            heapq.heapify(self._expiry)
        return True

    def remove(self, tx_id: bytes) -> PendingTx | None:
        """Take a transaction out; what it was (None if it was not pending)."""
        pending = self._txs.pop(tx_id, None)
        if pending is not None:
            self.size_bytes -= len(pending.tx.raw)
        return pending

    def remove_delivered(self, block: Block, *, slack_ms: int) -> bool:
        """Remove a delivered block's transactions; True if it served our backlog: nothing was pending, or
        it took one that arrived here within `slack_ms` of the oldest one pending. The slack absorbs the
        different arrival orders of gossip; a primary that skips a transaction runs out of such blocks
        (docs/protocol/consensus.md, "View change")."""
        oldest = self.oldest()
        served = oldest is None
        horizon_ms = 0 if oldest is None else oldest.arrival_ms + slack_ms
        for tx in block.txs:
            pending = self.remove(tx.tx_id)
            if pending is not None and pending.arrival_ms <= horizon_ms:
                served = True
        return served

    def remove_expired(self, next_height: int) -> None:
        expiry = self._expiry
        while expiry and expiry[0][0] < next_height:
            _, tx_id = heapq.heappop(expiry)
            self.remove(tx_id)

    def get(self, tx_id: bytes) -> SignedTx | None:
        pending = self._txs.get(tx_id)
        return None if pending is None else pending.tx

    def arrived_before(self, arrival_ms: int, limit: int) -> list[SignedTx]:
        """The oldest pending transactions that arrived before `arrival_ms`, at most `limit` of them."""
        found: list[SignedTx] = []
        for pending in self._txs.values():  # arrival order: stop at the first young one
            if pending.arrival_ms >= arrival_ms or len(found) >= limit:
                break
            found.append(pending.tx)
        return found

    def items(self) -> list[PendingTx]:
        return list(self._txs.values())

    def oldest(self) -> PendingTx | None:
        return next(iter(self._txs.values()), None)
