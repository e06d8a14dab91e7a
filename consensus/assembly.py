"""Proposals known by header and transaction ids, assembled into blocks from the transactions we hold.

A PRE-PREPARE names its transactions by id (dissemination apart from ordering: they already travelled by
gossip). Most are in our pending pool; the rest are fetched with FetchTxs, from the proposer first, then
from the other validators in turn, one request per block at a time, each with a deadline of a quarter of
the view timeout. A fetched or gossiped transaction counts only if a waiting proposal names it. A
proposal whose transactions nobody serves never completes: we never vote on it, and the view times out
(a primary that cannot serve its own block is as good as a silent one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from consensus.events import TIMER_TX_FETCH, FetchTxs
from consensus.membership import Membership
from consensus.messages import PrePrepare
from consensus.outbox import Clock, Outbox, Timers
from core.block import Block, BlockHeader
from core.tx import SignedTx

WAITING_MAX = 64  # proposals waiting for transactions at once; the oldest is dropped beyond


@dataclass(slots=True)
class _Waiting:
    header: BlockHeader
    tx_ids: tuple[bytes, ...]
    have: dict[bytes, SignedTx]
    peers: list[int]  # whom to ask, in order: the proposer, then the others
    asked: int = 0  # how many requests were sent
    deadline_ms: int = 0
    missing: set[bytes] = field(default_factory=set)


class BlockAssembly:
    def __init__(
        self,
        *,
        index: int,
        membership: Membership,
        clock: Clock,
        outbox: Outbox,
        timers: Timers,
        timeout_ms: int,
        lookup: Callable[[bytes], SignedTx | None],
    ) -> None:
        self._index = index
        self._membership = membership
        self._clock = clock
        self._out = outbox
        self._timers = timers
        self._timeout_ms = timeout_ms
        self._lookup = lookup
        self._waiting: dict[bytes, _Waiting] = {}  # block hash -> what it still lacks
        self._wanted: dict[bytes, set[bytes]] = {}  # tx id -> hashes of waiting blocks that name it
        self._started = False  # before start() (a replica being built) nothing is asked yet

    def wants(self, tx_id: bytes) -> bool:
        """A waiting proposal lacks this transaction."""
        return tx_id in self._wanted

    def start(self) -> None:
        self._started = True
        for block_hash in list(self._waiting):
            self._ask(block_hash)

    def assemble(self, pp: PrePrepare) -> Block | None:
        """The proposal's block if we hold all its transactions; otherwise start fetching the rest."""
        if pp.block_hash in self._waiting:
            return None
        have: dict[bytes, SignedTx] = {}
        for tx_id in pp.tx_ids:
            tx = self._lookup(tx_id)
            if tx is not None:
                have[tx_id] = tx
        if len(have) == len(set(pp.tx_ids)):
            return Block(pp.header, tuple(have[tx_id] for tx_id in pp.tx_ids))
        numbers = self._membership.at(pp.height).numbers
        proposer = pp.sender
        after = numbers.index(proposer) + 1 if proposer in numbers else 0
        others = [p for p in numbers[after:] + numbers[:after] if p not in (proposer, self._index)]
        waiting = _Waiting(pp.header, pp.tx_ids, have, [proposer, *others])
        waiting.missing = {tx_id for tx_id in pp.tx_ids if tx_id not in have}
        if len(self._waiting) >= WAITING_MAX:
            self._forget(next(iter(self._waiting)))
        self._waiting[pp.block_hash] = waiting
        for tx_id in waiting.missing:
            self._wanted.setdefault(tx_id, set()).add(pp.block_hash)
        if self._started:
            self._ask(pp.block_hash)
        return None

    def on_txs(self, txs: tuple[SignedTx, ...]) -> list[Block]:
        """Transactions that arrived (fetched or gossiped): the blocks they complete."""
        touched: set[bytes] = set()
        for tx in txs:
            for block_hash in self._wanted.pop(tx.tx_id, ()):
                waiting = self._waiting[block_hash]
                waiting.have[tx.tx_id] = tx
                waiting.missing.discard(tx.tx_id)
                touched.add(block_hash)
        completed = []
        for block_hash in sorted(touched):
            waiting = self._waiting[block_hash]
            if not waiting.missing:
                del self._waiting[block_hash]
                completed.append(
                    Block(waiting.header, tuple(waiting.have[tx_id] for tx_id in waiting.tx_ids))
                )
        if completed and self._started:
            self._rearm()
        return completed

    def on_timer(self) -> None:
        """A request went unanswered in time: ask the next peer."""
        now = self._clock.now_ms
        for block_hash in [h for h, w in self._waiting.items() if w.deadline_ms <= now]:
            self._ask(block_hash)
        self._rearm()

    def prune(self, live: set[bytes]) -> None:
        """Stop assembling proposals no message we hold still names."""
        dropped = [h for h in self._waiting if h not in live]
        for block_hash in dropped:
            self._forget(block_hash)
        if dropped and self._started:
            self._rearm()

    def _ask(self, block_hash: bytes) -> None:
        waiting = self._waiting[block_hash]
        if not waiting.peers:
            return
        peer = waiting.peers[waiting.asked % len(waiting.peers)]
        waiting.asked += 1
        waiting.deadline_ms = self._clock.now_ms + self._timeout_ms
        ids = tuple(tx_id for tx_id in waiting.tx_ids if tx_id in waiting.missing)
        self._out.emit(FetchTxs(peer, ids))
        self._rearm()

    def _rearm(self) -> None:
        """TIMER_TX_FETCH runs to the earliest deadline of a request, or not at all."""
        if not self._waiting:
            self._timers.cancel(TIMER_TX_FETCH)
            return
        earliest = min(w.deadline_ms for w in self._waiting.values())
        if self._timers.deadline(TIMER_TX_FETCH) != earliest:
            self._timers.set(TIMER_TX_FETCH, earliest - self._clock.now_ms)

    def _forget(self, block_hash: bytes) -> None:
        waiting = self._waiting.pop(block_hash)
        for tx_id in waiting.missing:
            hashes = self._wanted.get(tx_id)
            if hashes is not None:
                hashes.discard(block_hash)
                if not hashes:
                    del self._wanted[tx_id]
