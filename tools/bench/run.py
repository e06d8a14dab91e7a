"""One benchmark run: a fresh network, its setup phases, the timed load, and what was seen.

One run = one fresh network: start the nodes, subscribe to commits, run the untimed setup phases, then the
timed load (closed or open loop), wait for every accepted transaction to commit, check that all nodes agree
on height, block hash and state root, and stop everything. Measured from commit events: committed tx/s over
the steady window (after a warm-up, until sending stops), submit -> committed latency percentiles of the
transactions sent in that window, blocks/s and mean block size in the window, CPU seconds and CPU share per
node over the load, peak RSS per node. tools/bench/catchup.py builds the catch-up run on this one;
tools/bench/runner.py repeats runs and reports medians.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from core.tx import SignedTx
from node.cpuprofile import CPU_PROFILE_ENV, SAMPLE_RATE_PER_S
from tools.bench.load import CommitListener, LoadJob, LoadResult, LoadWorker
from tools.bench.network import BENCH_CONSENSUS, BenchNetwork
from tools.bench.profile import summarise_raw_profile
from tools.bench.stats import compute_cpu_us_per_tx, compute_window, compute_window_stats, percentile
from tools.bench.workloads import (
    ComplianceYear,
    Phase,
    TxFactory,
    now_ms,
    orders_load,
    orders_setup,
    transfers_load,
    transfers_setup,
)

COMMIT_TIMEOUT_S = 120.0
PROFILE_WRITE_TIMEOUT_S = 10.0  # a node writes its CPU profile on SIGUSR2
AGREE_TIMEOUT_S = 30.0
SETUP_CONCURRENCY = 64
DEADLINE_MARGIN_S = 1.5  # wait this long past the period deadline before settling (block time vs our clock)
# The compliance year's deadline covers the next phase only: its transactions at the phases' measured rate,
# times PHASE_TIME_FACTOR, plus PHASE_SLACK_S (a view change: view_timeout_ms is 2 s). The regulator extends
# it (extend_period) before each phase it would not cover, so after the surrenders, the last phase, little
# time is left to wait; an extension costs one transaction's round trip.
PHASE_TIME_FACTOR = 2.0
PHASE_SLACK_S = 3.0
Progress = Callable[[str], None]


def _deadline_for(phase: Phase, rate_tx_per_s: float) -> int:
    """A period deadline (ms) that leaves room for `phase` at about `rate_tx_per_s`."""
    room_s = len(phase.txs) / max(rate_tx_per_s, 1.0) * PHASE_TIME_FACTOR + PHASE_SLACK_S
    return now_ms() + int(room_s * 1000)


@dataclass(frozen=True)
class BenchOptions:
    workload: str = "transfers"
    validators: int = 4
    observers: int = 1
    mode: str = "closed"  # closed | open | both
    rate_per_s: float = 1500.0  # open loop offered load
    concurrency: int = 1000  # closed loop: uncommitted transactions in flight; open loop: requests in flight
    duration_s: float = 30.0
    warmup_s: float = 5.0
    txs: int = 0  # closed loop: pre-signed transactions (0 = enough for the duration)
    enterprises: int = 0  # 0 = the workload's default
    blocks: int = 10_000  # catch-up: blocks the stopped validator misses
    runs: int = 3
    consensus: dict[str, Any] = field(default_factory=dict)
    profile_dir: Path | None = None  # profile validator-0 and observer-0 during the timed load
    profile_clock: str = "wall"  # wall: py-spy from outside; cpu: node/cpuprofile.py inside each node
    workdir: Path | None = None
    log_level: str = "info"
    keep: bool = False  # keep node homes and logs after each run
    baseline: str | None = None  # "pysyncobj": the same transfers through a Raft cluster (baseline.py)
    batch_max: int = 100  # transactions per submission request (1: one request per transaction)

    @property
    def enterprise_count(self) -> int:
        if self.enterprises:
            return self.enterprises
        if self.workload == "catch-up":
            return 20
        return 2162 if self.workload == "compliance-year" else 200


# --- one run ----------------------------------------------------------------------------------------------


class Run:
    """One fresh network and what happened on it."""

    def __init__(self, options: BenchOptions, progress: Progress) -> None:
        self.options = options
        self.progress = progress
        self.network = BenchNetwork(
            validators=options.validators,
            observers=options.observers,
            consensus=options.consensus,
            workdir=options.workdir,
            log_level=options.log_level,
        )
        self.network.keep = options.keep
        if options.profile_dir is not None and options.profile_clock == "cpu":
            self.network.node_env[CPU_PROFILE_ENV] = str(options.profile_dir.resolve())
        self.listener: CommitListener | None = None
        self.worker: LoadWorker | None = None
        self.tx_ids: dict[int, str] = {}

    async def execute(self, mode: str) -> dict[str, Any]:
        with self.network:
            try:
                return await self._execute(mode)
            except BaseException:
                self.network.keep = True
                self.progress(f"node logs kept in {self.network.root}")
                raise
            finally:
                if self.worker is not None:
                    self.worker.close()

    async def _execute(self, mode: str) -> dict[str, Any]:
        options = self.options
        self.progress(f"starting {options.validators} validators + {options.observers} observers")
        self.network.start()
        self.worker = LoadWorker()
        async with aiohttp.ClientSession() as session:
            self.listener = CommitListener(self._events_url)
            await self.listener.start(session)
            try:
                height = await self._height(session)
                validity = {**BENCH_CONSENSUS, **options.consensus}["tx_validity_blocks_max"] - 10
                factory = TxFactory(self.network.genesis.chain_id, height, validity)
                if options.workload == "compliance-year":
                    result = await self._compliance_year(factory)
                else:
                    result = await self._throughput(factory, mode)
                result["agree"], result["final"] = await self._check_agreement(session)
                result["view_changes"] = await self._highest_view(session)
            finally:
                await self.listener.stop()
        if self.network.keep:
            result["network_dir"] = str(self.network.root)
        dead = self.network.dead_nodes()
        if dead:
            result["dead_nodes"] = dead
        return result

    @property
    def _events_url(self) -> str:
        """Commits are observed where a client would watch them: the observer if there is one."""
        return (self.network.observer_urls or self.network.validator_urls)[0]

    async def _height(self, session: aiohttp.ClientSession) -> int:
        async with session.get(self.network.validator_urls[0] + "/v1/status") as response:
            status = await response.json()
        return int(status["height"])

    # --- driving phases ---------------------------------------------------------------------------------

    async def _drive(self, job: LoadJob, txs: list[SignedTx]) -> tuple[LoadResult, set[str]]:
        """Run a load job and wait for its accepted transactions; returns the result and the missing ids."""
        assert self.worker is not None and self.listener is not None
        result = await self.worker.run(job)
        accepted = [txs[i].tx_id.hex() for i, status in enumerate(result.statuses) if status == 202]
        missing = await self.listener.wait_for(accepted, timeout_s=COMMIT_TIMEOUT_S)
        return result, missing

    async def _run_phase(self, phase: Phase) -> dict[str, Any]:
        assert self.listener is not None
        self.progress(f"phase {phase.name}: {len(phase.txs)} txs")
        job = LoadJob(
            urls=tuple(self.network.validator_urls),
            bodies=tuple(tx.raw for tx in phase.txs),
            mode="closed",
            concurrency=min(SETUP_CONCURRENCY, max(1, len(phase.txs))),
            batch_max=self.options.batch_max,
        )
        result, missing = await self._drive(job, phase.txs)
        rejected = sum(1 for s in result.statuses if s != 202)
        if rejected or missing:
            raise RuntimeError(
                f"phase {phase.name!r}: {rejected} rejected, {len(missing)} not committed; "
                f"first errors: {result.errors[:3]}"
            )
        last_commit = max(self.listener.commits[tx.tx_id.hex()][0] for tx in phase.txs)
        failures: dict[str, int] = {}
        latencies = []
        for i, tx in enumerate(phase.txs):
            seen, code = self.listener.commits[tx.tx_id.hex()]
            latencies.append(seen - result.send_times[i])
            if code != "ok":
                failures[f"{tx.body.function}:{code}"] = failures.get(f"{tx.body.function}:{code}", 0) + 1
        wall_s = last_commit - result.started
        return {
            "phase": phase.name,
            "txs": len(phase.txs),
            "wall_s": wall_s,
            "tx_per_s": len(phase.txs) / wall_s if wall_s > 0 else float("nan"),
            "failures": failures,
            "latencies": latencies,
        }

    # --- throughput workloads ---------------------------------------------------------------------------

    async def _throughput(self, factory: TxFactory, mode: str) -> dict[str, Any]:
        options = self.options
        n = options.enterprise_count
        if mode == "closed":
            count = options.txs or int(options.duration_s * 3000)
        else:
            count = int(options.rate_per_s * options.duration_s) + 1
        self.progress(f"signing {count} {options.workload} transactions (not timed)")
        if options.workload == "transfers":
            setup, load = transfers_setup(factory, n), transfers_load(factory, n, count)
        else:
            setup, load = orders_setup(factory, n), orders_load(factory, n, count)
        for phase in setup:
            await self._run_phase(phase)
        job = LoadJob(
            urls=tuple(self.network.validator_urls),
            bodies=tuple(tx.raw for tx in load),
            mode=mode,
            concurrency=options.concurrency,
            rate_per_s=options.rate_per_s,
            duration_s=options.duration_s,
            retry_full=mode == "closed",
            events_url=self._events_url.replace("http://", "ws://", 1) + "/v1/events?blocks=0",
            tx_ids=tuple(tx.tx_id.hex() for tx in load) if mode == "closed" else (),
            batch_max=options.batch_max,
        )
        self.progress(f"{mode} loop for {options.duration_s:.0f} s")
        before = self.network.sample()
        own_cpu_before = time.process_time()
        profiler = self._start_profiler()
        ticker = asyncio.create_task(self._tick(time.monotonic(), options.duration_s))
        try:
            assert self.worker is not None and self.listener is not None
            result = await self.worker.run(job)
            after = self.network.sample()  # CPU over the load only, not the drain after it
            listener_cpu_s = time.process_time() - own_cpu_before
            accepted = [load[i].tx_id.hex() for i, status in enumerate(result.statuses) if status == 202]
            missing = await self.listener.wait_for(accepted, timeout_s=COMMIT_TIMEOUT_S)
        finally:
            ticker.cancel()
        metrics = self._throughput_metrics(load, result, missing, mode)
        # CPU per committed transaction holds whatever the co-location: it does not depend on how much of
        # the machine the other processes took (commits counted over the span the CPU was sampled)
        span_commits = sum(
            1 for at, _ in self.listener.commits.values() if result.started <= at <= result.finished
        )
        metrics["nodes"] = {
            name: {
                "cpu_s": after[name].cpu_s - before[name].cpu_s,
                "cpu_share": (after[name].cpu_s - before[name].cpu_s) / (result.finished - result.started),
                "cpu_us_per_tx": compute_cpu_us_per_tx(after[name].cpu_s - before[name].cpu_s, span_commits),
                "peak_rss_mb": after[name].peak_rss_bytes / 2**20,
            }
            for name in after
            if name in before
        }
        metrics["harness_cpu_s"] = {"load": result.cpu_s, "listener": listener_cpu_s}
        if profiler is not None:
            metrics["profile"] = self._finish_profiler(profiler)
        return metrics

    def _throughput_metrics(
        self, load: list[SignedTx], result: LoadResult, missing: set[str], mode: str
    ) -> dict[str, Any]:
        assert self.listener is not None
        options = self.options
        window_start, window_end = compute_window(
            result.started, result.finished, options.warmup_s, options.duration_s
        )
        commits = self.listener.commits
        sent = accepted = failed = 0
        sent_and_committed = []
        for i, tx in enumerate(load):
            status = result.statuses[i]
            if status == 0:
                continue
            sent += 1
            if status != 202:
                continue
            accepted += 1
            seen = commits.get(tx.tx_id.hex())
            if seen is None:
                continue
            if seen[1] != "ok":
                failed += 1
            sent_and_committed.append((result.send_times[i], seen[0]))
        window = compute_window_stats(sent_and_committed, window_start, window_end)
        if window_end <= window_start:
            self.progress(
                f"warning: all {sent} transactions were sent within the {window_start - result.started:.1f} s"
                " warm-up, so the timed window is empty (0 tx/s): raise --txs"
            )
        blocks = [b for b in self.listener.blocks if window_start <= b.at <= window_end]
        block_txs = [b.tx_count for b in blocks if b.tx_count > 0]
        return {
            "mode": mode,
            "offered_per_s": options.rate_per_s if mode == "open" else None,
            "txs": sent,
            "accepted": accepted,
            "rejected": sent - accepted,
            "not_committed": len(missing),
            "failed_in_chaincode": failed,
            "window_s": window.window_s,
            "tx_per_s": window.tx_per_s,
            **window.latency_ms(),
            "blocks_per_s": len(blocks) / window.window_s,
            "mean_block_txs": statistics.fmean(block_txs) if block_txs else 0.0,
            "errors": result.errors[:5],
        }

    async def _tick(self, started: float, duration_s: float) -> None:
        assert self.listener is not None
        last_count, last_at = len(self.listener.commits), started
        while True:
            await asyncio.sleep(1.0)
            now, count = time.monotonic(), len(self.listener.commits)
            rate = (count - last_count) / (now - last_at)
            elapsed = now - started
            bar = "#" * min(30, int(30 * elapsed / duration_s)) if duration_s else ""
            self.progress(f"\r[{bar:<30}] {elapsed:5.1f} s  committed {count:7d}  {rate:7.0f} tx/s")
            last_count, last_at = count, now

    # --- the compliance year ----------------------------------------------------------------------------

    async def _compliance_year(self, factory: TxFactory) -> dict[str, Any]:
        n = self.options.enterprise_count
        self.progress(f"signing a compliance year for {n} enterprises (not timed)")
        year = ComplianceYear(factory, n)
        first = year.first_phase()
        middle = year.middle_phases()
        settlement = year.settlement_phase()
        before = self.network.sample()
        started = time.monotonic()
        phases = [await self._run_phase(first)]
        rates = [phases[0]["tx_per_s"]]  # of the phases run so far, but the one-transaction ones
        deadline_ms = _deadline_for(middle[0], rates[0])
        phases.append(await self._run_phase(year.open_phase(deadline_ms)))
        extensions = 0
        for index, phase in enumerate(middle):
            # The slower of the last phase and the median: a slowdown of the whole network shows in the last
            # phase first. For the surrenders, the last phase, the median alone: the phase before them is
            # trading, the slowest by far, and its rate would leave seconds to wait after them.
            median = statistics.median(rates)
            needed_ms = _deadline_for(phase, median if index == len(middle) - 1 else min(rates[-1], median))
            if needed_ms > deadline_ms:
                deadline_ms = needed_ms
                phases.append(await self._run_phase(year.extend_phase(deadline_ms)))
                extensions += 1
            phases.append(await self._run_phase(phase))
            rates.append(phases[-1]["tx_per_s"])
        wait_s = max(0.0, (deadline_ms - now_ms()) / 1000 + DEADLINE_MARGIN_S)
        self.progress(f"waiting {wait_s:.1f} s for the period's surrender deadline")
        await asyncio.sleep(wait_s)
        phases.append(await self._run_phase(settlement))
        wall_s = time.monotonic() - started
        after = self.network.sample()
        txs = sum(p["txs"] for p in phases)
        latencies = sorted(lat for p in phases for lat in p.pop("latencies"))
        failures: dict[str, int] = {}
        for p in phases:
            for code, count in p["failures"].items():
                failures[code] = failures.get(code, 0) + count
        busy_s = wall_s - wait_s
        return {
            "mode": "phases",
            "enterprises": n,
            "txs": txs,
            "total_wall_s": wall_s,
            "deadline_wait_s": wait_s,
            "deadline_extensions": extensions,
            "busy_s": busy_s,
            "tx_per_s": txs / busy_s,
            "p50_ms": percentile(latencies, 0.50) * 1000,
            "p95_ms": percentile(latencies, 0.95) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "failures": failures,
            "phases": phases,
            "nodes": {
                name: {
                    "cpu_s": after[name].cpu_s - before[name].cpu_s,
                    "cpu_share": (after[name].cpu_s - before[name].cpu_s) / wall_s,
                    "cpu_us_per_tx": compute_cpu_us_per_tx(after[name].cpu_s - before[name].cpu_s, txs),
                    "peak_rss_mb": after[name].peak_rss_bytes / 2**20,
                }
                for name in after
                if name in before
            },
        }

    # --- agreement and profiling ------------------------------------------------------------------------

    async def _check_agreement(self, session: aiohttp.ClientSession) -> tuple[bool, dict[str, Any]]:
        """Wait until every node reports the same height, last block hash and state root."""
        deadline = time.monotonic() + AGREE_TIMEOUT_S
        views: dict[str, Any] = {}
        while True:
            views = {}
            for name, url in self.network.urls.items():
                try:
                    async with session.get(url + "/v1/status") as response:
                        status = await response.json()
                    views[name] = (status["height"], status["last_block_hash"], status["state_root"])
                except (aiohttp.ClientError, OSError, KeyError, ValueError):
                    views[name] = None
            if None not in views.values() and len(set(views.values())) == 1:
                height, block_hash, root = next(iter(views.values()))
                return True, {"height": height, "block_hash": block_hash, "state_root": root}
            if time.monotonic() > deadline:
                return False, {name: view for name, view in views.items()}
            await asyncio.sleep(0.25)

    async def _highest_view(self, session: aiohttp.ClientSession) -> int:
        """The highest view a node reports at the end: the view changes of the run (views start at 0)."""
        highest = 0
        for url in self.network.urls.values():
            try:
                async with session.get(url + "/v1/status") as response:
                    highest = max(highest, int((await response.json()).get("view") or 0))
            except (aiohttp.ClientError, OSError, ValueError):
                continue
        return highest

    def _profiled_nodes(self) -> list[str]:
        """validator-0, and observer-0 when there is one (its work per transaction differs)."""
        return ["validator-0"] + (["observer-0"] if self.network.observer_urls else [])

    def _start_profiler(self) -> list[subprocess.Popen[bytes]] | None:
        options = self.options
        if options.profile_dir is None:
            return None
        options.profile_dir.mkdir(parents=True, exist_ok=True)
        py_spy = Path(sys.executable).parent / "py-spy"
        warmup = min(options.warmup_s, options.duration_s / 4)
        profilers = []
        for name in self._profiled_nodes():
            # The profiler sleeps through the warm-up itself: the orchestration must not block here. A
            # node's own CPU sampler (the cpu clock) starts on SIGUSR1 and writes on SIGUSR2 (_finish).
            pid = self.network.pid(name)
            command = (
                f"sleep {warmup:.1f} && exec kill -USR1 {pid}"
                if options.profile_clock == "cpu"
                else f"sleep {warmup:.1f} && exec {py_spy} record --pid {pid} "
                f"--duration {max(1, int(options.duration_s - warmup))} --rate 100 --nonblocking "
                f"--format raw --output {options.profile_dir / (name + '.txt')}"
            )
            profilers.append(
                subprocess.Popen(
                    ["/bin/sh", "-c", command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
            )
        return profilers

    def _finish_profiler(self, profilers: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
        """One summary per profiled node, by name."""
        assert self.options.profile_dir is not None
        cpu_clock = self.options.profile_clock == "cpu"
        profiler_name = "the CPU sampler" if cpu_clock else "py-spy"
        summaries: dict[str, Any] = {}
        for name, profiler in zip(self._profiled_nodes(), profilers, strict=True):
            path = self.options.profile_dir / f"{name}.txt"
            try:
                _, stderr = profiler.communicate(timeout=60)
                if cpu_clock:
                    path.unlink(missing_ok=True)  # a profile of an earlier run
                    os.kill(self.network.pid(name), signal.SIGUSR2)
                    _wait_for_file(path, PROFILE_WRITE_TIMEOUT_S)
            except (subprocess.TimeoutExpired, TimeoutError, ProcessLookupError):
                profiler.kill()
                profiler.communicate()
                summaries[name] = {"error": f"{profiler_name} did not finish"}
                continue
            if not path.exists():
                summaries[name] = {
                    "error": f"{profiler_name} wrote no profile: {stderr.decode(errors='replace')[-300:]}"
                }
                continue
            rate = SAMPLE_RATE_PER_S if cpu_clock else 100
            summaries[name] = {
                "clock": self.options.profile_clock,
                **summarise_raw_profile(path.read_text(), rate_per_s=rate),
            }
        return summaries


def _wait_for_file(path: Path, timeout_s: float) -> None:
    """Until another process has put `path` in place (it renames a finished file there)."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout_s:.0f} s")
        time.sleep(0.05)
