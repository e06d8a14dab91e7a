"""Prometheus metrics of one node, in a registry of its own (so tests can run several nodes per process).

The names below are the names exported at GET /metrics (a counter gets prometheus_client's `_total` suffix;
no `_created` series are written); docs/API.md lists them, and tests/integration/test_observability.py compares that
list with a live node. Values a part of the node already holds (height, links, the pending pool, the
consensus log) are read when scraped (`watch`), so they are never stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

disable_created_metrics()  # a `_created` gauge per counter doubles the output and nobody graphs it


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
            "carbonchain_rejected_txs",
            "Transactions refused by this node's API or admission, by the error code the client got",
            ["reason"],
            registry=r,
        )
        self.mempool_txs = Gauge("carbonchain_mempool_txs", "Transactions in the pending pool", registry=r)
        self.mempool_bytes = Gauge("carbonchain_mempool_bytes", "Bytes in the pending pool", registry=r)
        self.peers = Gauge("carbonchain_peers", "Connected authenticated peers", registry=r)
        self.catching_up = Gauge("carbonchain_catching_up", "1 while fetching missed blocks", registry=r)
        self.ready = Gauge("carbonchain_ready", "1 when /readyz answers 200", registry=r)
        self.checkpoint_height = Gauge(
            "carbonchain_checkpoint_height",
            "Last stable checkpoint: a quorum signed this height's state root (validators; 0 on observers)",
            registry=r,
        )
        self.consensus_log_records = Gauge(
            "carbonchain_consensus_log_records",
            "Records in the consensus log (votes, prepared certificates, view state) kept on disk",
            registry=r,
        )
        self.consensus_log_pruned = Counter(
            "carbonchain_consensus_log_pruned_records",
            "Consensus log records deleted because a checkpoint became stable",
            registry=r,
        )
        self.event_subscribers = Gauge("carbonchain_event_subscribers", "Open /v1/events streams", registry=r)
        self.event_subscribers_dropped = Counter(
            "carbonchain_event_subscribers_dropped",
            "/v1/events streams closed because the consumer fell behind",
            registry=r,
        )
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

    def watch(self, gauge: Gauge, read: Callable[[], float]) -> None:
        """Read `gauge`'s value from its owner whenever /metrics is scraped."""
        gauge.set_function(read)

    def watch_peer_layer(self, counters: Mapping[str, int], handshake_failures: Mapping[str, int]) -> None:
        """Export the peer layer's own counters (p2p.counters.METRIC_NAMES) and handshake failures by reason."""
        self.registry.register(_PeerLayerCollector(counters, handshake_failures))


class _PeerLayerCollector(Collector):
    def __init__(self, counters: Mapping[str, int], handshake_failures: Mapping[str, int]) -> None:
        self._counters = counters
        self._handshake_failures = handshake_failures

    def collect(self) -> Iterator[CounterMetricFamily]:
        layer = CounterMetricFamily(
            "carbonchain_peer_layer",
            "Counters of the peer layer (frames, bytes, handshakes, connects, bans, ...)",
            labels=["counter"],
        )
        for name, value in sorted(self._counters.items()):
            layer.add_metric([name], value)
        yield layer
        failures = CounterMetricFamily(
            "carbonchain_peer_handshake_failures",
            "Peer links that failed before authentication, by reason (tls, refusal codes, unreachable)",
            labels=["reason"],
        )
        for reason, value in sorted(self._handshake_failures.items()):
            failures.add_metric([reason], value)
        yield failures
