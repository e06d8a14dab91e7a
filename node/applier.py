"""Execute a committed block through the chaincode and commit it atomically; then tell subscribers.

Validators (after PBFT commits a block), observers (after verifying a streamed block's certificate) and
lagging nodes (state transfer) all apply blocks here, so every node runs the very same path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from chaincode import ChaincodeRegistry, execute_block
from core.block import Block, CommitCertificate, TxResult
from node.events import EventHub, compute_block_events
from node.metrics import NodeMetrics
from storage import CommitOutcome, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AppliedBlock:
    outcome: CommitOutcome  # roots after the block
    results: tuple[TxResult, ...]  # one per transaction
    writes: Mapping[bytes, bytes | None]  # the block's net state changes (the roster reads set changes there)


class BlockApplier:
    def __init__(
        self, store: Store, registry: ChaincodeRegistry, events: EventHub, metrics: NodeMetrics
    ) -> None:
        self.store = store
        self.registry = registry
        self.events = events
        self.metrics = metrics

    def apply(self, block: Block, certificate: CommitCertificate | None) -> AppliedBlock:
        """Execute and durably commit the next block; returns the roots after it."""
        started = time.perf_counter()
        execution = execute_block(self.store, block, self.registry, is_committed=self._is_committed)
        outcome = self.store.commit_block(
            block, execution.results, execution.tx_writes, certificate, end_writes=execution.end_writes
        )
        elapsed = time.perf_counter() - started
        self.metrics.block_commit_seconds.observe(elapsed)
        self.metrics.block_txs.observe(len(block.txs))
        self.metrics.height.set(block.header.height)
        failed = sum(1 for result in execution.results if not result.is_ok)
        self.metrics.committed_txs.inc(len(block.txs))
        self.metrics.failed_txs.inc(failed)
        self._publish(block, tuple(execution.results), outcome)
        log.info(
            "committed block: %d txs (%d failed) in %.1f ms",
            len(block.txs),
            failed,
            elapsed * 1000,
            extra={"height": block.header.height, "view": None if certificate is None else certificate.view},
        )
        return AppliedBlock(outcome, tuple(execution.results), execution.writes)

    def _is_committed(self, tx_id: bytes) -> bool:
        return self.store.get_tx_location(tx_id) is not None

    def _publish(self, block: Block, results: tuple[TxResult, ...], outcome: CommitOutcome) -> None:
        if self.events.subscriber_count == 0:
            return
        self.events.publish_block(*compute_block_events(block, results, outcome.state_root))
