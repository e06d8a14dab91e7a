"""Prometheus metrics of one node, in a registry of its own (so tests can run several nodes per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.height = Gauge("carbonchain_height", "Last committed block height", registry=r)
        self.view = Gauge("carbonchain_view", "Current PBFT view", registry=r)
        self.view_changes = Counter("carbonchain_view_changes", "View changes this node entered", registry=r)
        self.committed_txs = Counter("carbonchain_committed_txs", "Transactions committed", registry=r)
        self.failed_txs = Counter(
            "carbonchain_failed_txs", "Committed transactions with a failure code", registry=r
        )
        self.rejected_txs = Counter(
            "carbonchain_rejected_txs", "Transactions rejected at admission", ["reason"], registry=r
        )
        self.mempool_txs = Gauge("carbonchain_mempool_txs", "Transactions in the mempool", registry=r)
        self.mempool_bytes = Gauge("carbonchain_mempool_bytes", "Bytes in the mempool", registry=r)
        self.peers = Gauge("carbonchain_peers", "Connected authenticated peers", registry=r)
        self.catching_up = Gauge("carbonchain_catching_up", "1 while fetching missed blocks", registry=r)
        self.block_commit_seconds = Histogram(
            "carbonchain_block_commit_seconds",
            "Time to execute and durably commit one block",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.block_txs = Histogram(
            "carbonchain_block_txs",
            "Transactions per committed block",
            buckets=(0, 1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
            registry=r,
        )
        self.misbehaviour = Counter(
            "carbonchain_peer_misbehaviour", "Peer misbehaviour reports", ["kind"], registry=r
        )
