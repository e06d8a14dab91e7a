"""Summaries of recent blocks for the overview and the block list: time, transactions, proposer, signers.

A summary is read through the API backend (the same `get_block_json` that serves `/v1/blocks/{h}`) and
kept: a committed block never changes, so each height is read once however often pages are loaded. The
cache and every walk back from the tip are bounded, so a page costs at most `WALK_BLOCKS_MAX` block reads
even on a busy chain (docs/DASHBOARD.md, "Cost of a page").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

SUMMARIES_MAX = 4096  # cached block summaries
WALK_BLOCKS_MAX = 200  # blocks a throughput or last-vote walk reads at most
MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class BlockSummary:
    height: int
    hash: str
    time_ms: int
    tx_count: int
    proposer: int
    view: int | None  # of the commit certificate; None if the block has none yet
    signers: tuple[int, ...]  # validator numbers whose COMMIT signatures the certificate holds


@dataclass(frozen=True, slots=True)
class MinuteBucket:
    start_ms: int
    txs: int
    blocks: int


@dataclass(frozen=True, slots=True)
class Throughput:
    buckets: tuple[MinuteBucket, ...]  # oldest first, one per minute ending with the current one
    complete: bool  # False: the walk stopped at WALK_BLOCKS_MAX before the window's start
    first_height: int | None  # the oldest block counted

    @property
    def txs(self) -> int:
        return sum(bucket.txs for bucket in self.buckets)

    @property
    def peak(self) -> int:
        return max((bucket.txs for bucket in self.buckets), default=0)


def summarise_block(block: dict[str, Any]) -> BlockSummary:
    """A summary of one `/v1/blocks/{h}` JSON document."""
    header = block["header"]
    certificate = block["certificate"]
    return BlockSummary(
        height=int(block["height"]),
        hash=str(block["hash"]),
        time_ms=int(header["time_ms"]),
        tx_count=int(header["tx_count"]),
        proposer=int(header["proposer"]),
        view=None if certificate is None else int(certificate["view"]),
        signers=() if certificate is None else tuple(int(v["validator"]) for v in certificate["votes"]),
    )


class RecentBlocks:
    def __init__(
        self, get_block_json: Callable[[int | None], dict[str, Any] | None], max_entries: int = SUMMARIES_MAX
    ) -> None:
        self._get_block_json = get_block_json
        self._max_entries = max_entries
        self._cache: OrderedDict[int, BlockSummary] = OrderedDict()

    def get(self, height: int) -> BlockSummary | None:
        summary = self._cache.get(height)
        if summary is not None:
            self._cache.move_to_end(height)
            return summary
        block = self._get_block_json(height)
        if block is None:
            return None
        summary = summarise_block(block)
        if summary.view is not None:  # a block still waiting for its certificate is read again later
            self._cache[height] = summary
            if len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return summary

    def page(self, tip: int, *, before: int | None, count: int) -> list[BlockSummary]:
        """Up to `count` summaries, newest first, below `before` (exclusive; default: from the tip)."""
        top = tip if before is None else min(tip, before - 1)
        summaries = []
        for height in range(top, max(0, top - count), -1):
            summary = self.get(height)
            if summary is not None:
                summaries.append(summary)
        return summaries

    def throughput(self, tip: int, *, now_ms: int, minutes: int) -> Throughput:
        """Transactions per minute of block time over the last `minutes` minutes up to `now_ms`."""
        first_start = (now_ms // MINUTE_MS - (minutes - 1)) * MINUTE_MS
        txs = [0] * minutes
        blocks = [0] * minutes
        complete = True
        first_height = None
        for read, height in enumerate(range(tip, 0, -1)):
            if read == WALK_BLOCKS_MAX:
                complete = False
                break
            summary = self.get(height)
            if summary is None or summary.time_ms < first_start:
                break
            index = min((summary.time_ms - first_start) // MINUTE_MS, minutes - 1)
            txs[index] += summary.tx_count
            blocks[index] += 1
            first_height = height
        buckets = tuple(MinuteBucket(first_start + i * MINUTE_MS, txs[i], blocks[i]) for i in range(minutes))
        return Throughput(buckets, complete, first_height)

    def last_votes(self, tip: int, numbers: Collection[int]) -> dict[int, BlockSummary]:
        """For each validator number, the newest block (of the last WALK_BLOCKS_MAX) its signature certifies;
        the walk stops once every one of `numbers` is found."""
        found: dict[int, BlockSummary] = {}
        wanted = set(numbers)
        for height in range(tip, max(0, tip - WALK_BLOCKS_MAX), -1):
            summary = self.get(height)
            if summary is None:
                continue
            for index in summary.signers:
                found.setdefault(index, summary)
            if wanted <= found.keys():
                break
        return found
