"""The replica's view of the chain: what it delivered and executed, and the blocks above that it may deliver.

`ChainWindow` holds the delivered chain (the recent blocks with their commit certificates), how far
execution has got with the roots of recent heights, and the ids of transactions committed within the
validity window. `Candidates` holds blocks above the delivered height: every block seen by hash, the
certified ones waiting for in-order delivery, and commit certificates whose block has not arrived yet.
"""

from __future__ import annotations

from collections.abc import Iterable

from consensus.config import ExecutionRoots
from consensus.pool import CommittedWindow
from core.block import Block, CommitCertificate
from core.errors import InvariantBroken
from core.successor import ChainTip
from core.tx import SignedTx


class ChainWindow:
    def __init__(
        self,
        *,
        genesis_hash: bytes,
        genesis_time_ms: int,
        executed_height: int,
        roots: dict[int, ExecutionRoots],
        recent_blocks: Iterable[tuple[Block, CommitCertificate]],
        tx_validity_blocks_max: int,
    ) -> None:
        self.genesis_hash = genesis_hash
        self.genesis_time_ms = genesis_time_ms
        self.delivered_height = executed_height  # handed to the executor, in order
        self.executed_height = executed_height  # the executor reported its roots
        self._roots = dict(roots)
        self._blocks: dict[int, Block] = {}
        self._certs: dict[int, CommitCertificate] = {}
        self.committed = CommittedWindow(tx_validity_blocks_max)
        for block, cert in recent_blocks:
            self._blocks[block.header.height] = block
            self._certs[block.header.height] = cert
            self.committed.add_block(block)
        if self.delivered_height > 0 and self.delivered_height not in self._blocks:
            raise InvariantBroken("recovered state must include the last executed block")

    def block(self, height: int) -> Block | None:
        return self._blocks.get(height)

    def certificate(self, height: int) -> CommitCertificate:
        return self._certs[height]

    def prev_header_hash(self, height: int) -> bytes:
        """Hash of the block at `height` - 1 on our delivered chain."""
        if height == 1:
            return self.genesis_hash
        return self._blocks[height - 1].block_hash

    def prev_header(self, height: int) -> tuple[bytes, int]:
        """(hash, time_ms) of the delivered block at `height` - 1 (the genesis at height 1)."""
        if height == 1:
            return self.genesis_hash, self.genesis_time_ms
        block = self._blocks[height - 1]
        return block.block_hash, block.header.time_ms

    def tip(self) -> ChainTip:
        """The last delivered block, which the next one must extend."""
        height = self.delivered_height
        prev_hash, prev_time = self.prev_header(height + 1)
        return ChainTip(height, prev_hash, prev_time)

    def find_txs(self, tx_ids: set[bytes], depth: int) -> dict[bytes, SignedTx]:
        """Those of `tx_ids` in the last `depth` delivered blocks (for peers still assembling them)."""
        found: dict[bytes, SignedTx] = {}
        for height in range(self.delivered_height, max(0, self.delivered_height - depth), -1):
            block = self._blocks.get(height)
            for tx in () if block is None else block.txs:
                if tx.tx_id in tx_ids:
                    found[tx.tx_id] = tx
        return found

    def roots(self, height: int) -> ExecutionRoots | None:
        return self._roots.get(height)

    def append(self, block: Block, cert: CommitCertificate) -> None:
        """Deliver the next block."""
        height = block.header.height
        if height != self.delivered_height + 1:
            raise InvariantBroken(f"delivered {height} after {self.delivered_height}")
        self.delivered_height = height
        self._blocks[height] = block
        self._certs[height] = cert
        self.committed.add_block(block)

    def record_execution(self, height: int, roots: ExecutionRoots) -> None:
        if height != self.executed_height + 1 or height > self.delivered_height:
            raise InvariantBroken(f"executed height {height} out of order (last {self.executed_height})")
        self.executed_height = height
        self._roots[height] = roots

    def prune(self, *, checkpoint_interval: int, pipeline_depth: int) -> None:
        """Keep the blocks a VIEW-CHANGE, a NEW-VIEW or a proposal may still need, and recent roots."""
        low = self.delivered_height
        keep_from = min(self.executed_height, low) - checkpoint_interval - pipeline_depth
        for height in [h for h in self._blocks if h < keep_from and h < low]:
            del self._blocks[height]
            self._certs.pop(height, None)
        for height in [h for h in self._roots if h < self.executed_height - pipeline_depth - 1]:
            del self._roots[height]


class Candidates:
    """Blocks above the delivered height and what is known of their finality."""

    def __init__(self) -> None:
        self._by_hash: dict[bytes, Block] = {}
        self._certified: dict[int, tuple[Block, CommitCertificate]] = {}  # awaiting in-order delivery
        self._unmatched: dict[int, CommitCertificate] = {}  # proven committed, block not seen yet

    def add(self, block: Block) -> None:
        self._by_hash[block.block_hash] = block

    def add_if_new(self, block: Block) -> None:
        self._by_hash.setdefault(block.block_hash, block)

    def find_txs(self, tx_ids: set[bytes]) -> dict[bytes, SignedTx]:
        """Those of `tx_ids` that a held block contains (a rare path: serving a peer's FetchTxs)."""
        found: dict[bytes, SignedTx] = {}
        for block in self._by_hash.values():
            for tx in block.txs:
                if tx.tx_id in tx_ids:
                    found[tx.tx_id] = tx
        return found

    def get(self, block_hash: bytes) -> Block | None:
        return self._by_hash.get(block_hash)

    def is_certified(self, height: int) -> bool:
        return height in self._certified

    def has_certified(self) -> bool:
        return bool(self._certified)

    def certify(self, block: Block, cert: CommitCertificate) -> None:
        self._certified[block.header.height] = (block, cert)

    def pop_certified(self, height: int) -> tuple[Block, CommitCertificate] | None:
        return self._certified.pop(height, None)

    def note_certificate(self, cert: CommitCertificate, delivered_height: int) -> None:
        """Remember a verified commit certificate above our height: it lets us deliver a block we hold
        but whose COMMITs we missed."""
        if cert.height > delivered_height and cert.height not in self._certified:
            self._unmatched[cert.height] = cert

    def has_unmatched(self) -> bool:
        return bool(self._unmatched)

    def match_certificates(self, delivered_height: int) -> bool:
        """Pair held certificates with blocks that arrived since; True if any became deliverable."""
        matched = False
        for height, cert in sorted(self._unmatched.items()):
            block = self._by_hash.get(cert.block_hash)
            if height <= delivered_height or height in self._certified:
                del self._unmatched[height]
            elif block is not None and block.header.height == height:
                del self._unmatched[height]
                self._certified[height] = (block, cert)
                matched = True
        return matched

    def prune(self, low_height: int, unmatched_window: int, live: set[bytes]) -> None:
        """Forget what is delivered, certificates too far ahead, and blocks no message still names
        (`live`: hashes of blocks that held pre-prepares and prepared certificates propose)."""
        self._certified = {h: c for h, c in self._certified.items() if h > low_height}
        self._unmatched = {h: c for h, c in self._unmatched.items() if low_height < h <= unmatched_window}
        live = live | {block.block_hash for block, _ in self._certified.values()}
        self._by_hash = {h: b for h, b in self._by_hash.items() if h in live}
