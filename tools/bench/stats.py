"""The bench's arithmetic: percentiles, medians over runs, and one steady window's throughput and latency.

Pure functions over monotonic times, shared by our own runs (run.py) and the PySyncObj baseline
(baseline.py) so that both are measured by exactly the same rules: tx/s counts the commits seen inside the
steady window (after the warm-up, until sending stops); latency percentiles are over the transactions sent
inside that window.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def compute_cpu_us_per_tx(cpu_s: float, committed: int) -> float:
    """CPU microseconds a node spent per transaction committed while its CPU was sampled."""
    return cpu_s * 1e6 / committed if committed > 0 else float("nan")


def median(values: list[float]) -> float:
    clean = [v for v in values if v == v]  # drop NaN
    return statistics.median(clean) if clean else float("nan")


def compute_window(
    started: float, finished: float, warmup_s: float, duration_s: float
) -> tuple[float, float]:
    """The steady window of a load: from the end of the warm-up until sending stopped."""
    warmup = min(warmup_s, duration_s / 4)  # a short smoke run keeps most of its load in the window
    return started + warmup, min(finished, started + duration_s)


@dataclass(frozen=True, slots=True)
class WindowStats:
    committed: int  # commits seen inside the window
    window_s: float
    tx_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    def latency_ms(self) -> dict[str, float]:
        return {"p50_ms": self.p50_ms, "p95_ms": self.p95_ms, "p99_ms": self.p99_ms, "max_ms": self.max_ms}


def compute_window_stats(
    sent_and_committed: Iterable[tuple[float, float]], window_start: float, window_end: float
) -> WindowStats:
    """Throughput and latency from (send time, commit time) pairs of committed transactions."""
    window_s = max(1e-9, window_end - window_start)
    committed = 0
    latencies = []
    for sent, seen in sent_and_committed:
        if window_start <= seen <= window_end:
            committed += 1
        if window_start <= sent <= window_end:
            latencies.append(seen - sent)
    latencies.sort()
    return WindowStats(
        committed=committed,
        window_s=window_s,
        tx_per_s=committed / window_s,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p95_ms=percentile(latencies, 0.95) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        max_ms=(latencies[-1] if latencies else float("nan")) * 1000,
    )
