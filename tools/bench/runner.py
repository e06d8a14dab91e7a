"""Runs benchmark workloads (`carbonchain bench`) and summarises them: repeats runs, reports medians.

Each run is a tools.bench.run.Run (tools.bench.catchup.CatchUpRun for the catch-up workload) on a fresh
network. The same invocation measures the machine's single-core Ed25519 verification rate, giving
`ceiling_tx_per_s` = cores x rate / validators (every validator verifies every signature once), and with
`--baseline` runs the same transfers through a Raft cluster after each of our runs.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

from core.keys import SigningKey, is_valid_signature
from tools.bench.baseline import compute_ratio, run_baseline_once, sign_baseline_load, summarise_baseline
from tools.bench.catchup import CATCH_UP_CONSENSUS, CatchUpRun
from tools.bench.run import BenchOptions, Progress, Run
from tools.bench.stats import median

WORKLOADS = ("transfers", "orders", "compliance-year", "catch-up")


# --- crypto ceiling ---------------------------------------------------------------------------------------


def measure_verify_rate(seconds: float = 1.0) -> float:
    """Single-core Ed25519 verifications per second with core.keys.is_valid_signature (libsodium)."""
    key = SigningKey.from_insecure_label("bench-verify")
    message = bytes(32)
    signature = key.sign(message)
    public = key.public_key
    count = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(200):
            is_valid_signature(public, message, signature)
        count += 200
    return count / elapsed


def measure_cryptography_verify_rate(seconds: float = 0.5) -> float:
    """The same with the `cryptography` package, for the record (docs/PERFORMANCE.md)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    public = private.public_key()
    message = bytes(32)
    signature = private.sign(message)
    count = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(200):
            public.verify(signature, message)
        count += 200
    return count / elapsed


# --- one run ----------------------------------------------------------------------------------------------


# --- many runs --------------------------------------------------------------------------------------------


def summarise_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float) and not isinstance(v, bool)]
    summary: dict[str, Any] = {k: median([float(r[k]) for r in runs if r.get(k) is not None]) for k in keys}
    summary["txs"] = int(summary.get("txs", 0))
    summary["agree"] = all(r["agree"] for r in runs)
    summary["mode"] = runs[0]["mode"]
    names = runs[0].get("nodes", {}).keys()
    summary["nodes"] = {
        name: {
            metric: median([r["nodes"][name][metric] for r in runs if name in r.get("nodes", {})])
            for metric in ("cpu_s", "cpu_share", "cpu_us_per_tx", "peak_rss_mb")
        }
        for name in names
    }
    summary["runs_tx_per_s"] = [r["tx_per_s"] for r in runs]
    return summary


async def run_bench(options: BenchOptions, progress: Progress) -> dict[str, Any]:
    run_class: type[Run] = Run
    if options.workload == "catch-up":
        run_class = CatchUpRun
        options = dataclasses.replace(options, consensus={**CATCH_UP_CONSENSUS, **options.consensus})
    cores = os.cpu_count() or 1
    progress("measuring single-core Ed25519 verification")
    verify_per_s = measure_verify_rate()
    cryptography_per_s = measure_cryptography_verify_rate()
    ceiling = cores * verify_per_s / options.validators
    modes = ["closed", "open"] if options.mode == "both" else [options.mode]
    if options.workload == "compliance-year":
        modes = ["phases"]
    by_mode: dict[str, list[dict[str, Any]]] = {}
    baseline_runs: list[dict[str, Any]] = []
    baseline_load: list[bytes] = []
    for mode in modes:
        for index in range(options.runs):
            progress(f"== {options.workload} {mode} run {index + 1}/{options.runs}")
            run = await run_class(options, progress).execute(mode)
            progress(
                f"\nrun {index + 1}: {run['tx_per_s']:.0f} tx/s, p50 {run['p50_ms']:.0f} ms, "
                f"p99 {run['p99_ms']:.0f} ms, agree={run['agree']}"
            )
            by_mode.setdefault(mode, []).append(run)
            if options.baseline and mode == "closed":
                # run i of the baseline right after our run i: both see the same machine load
                if not baseline_load:
                    baseline_load = _sign_baseline_load(options, progress)
                baseline_runs.append(await _run_baseline(options, baseline_load, index, progress))
    primary = by_mode[modes[0]]
    report: dict[str, Any] = {
        "workload": options.workload,
        "validators": options.validators,
        "observers": options.observers,
        "runs": options.runs,
        "cores": cores,
        "cpu_model": _cpu_model(),
        "verify_per_s_core": verify_per_s,
        "verify_per_s_core_cryptography": cryptography_per_s,
        "ceiling_tx_per_s": ceiling,
        **summarise_runs(primary),
    }
    report["ratio_to_ceiling"] = report["tx_per_s"] / ceiling
    if options.workload != "compliance-year":
        report["enterprises"] = options.enterprise_count
        report["concurrency"] = options.concurrency
        report["batch_max"] = options.batch_max
        report["duration_s"] = options.duration_s
    if len(modes) > 1:
        report["open_loop"] = summarise_runs(by_mode["open"])
        report["open_loop"]["offered_per_s"] = options.rate_per_s
    if baseline_runs:
        report.update(summarise_baseline(baseline_runs, options.validators))
        report["ratio_to_baseline"] = compute_ratio(report["tx_per_s"], report["baseline_tx_per_s"])
        ours = [n["cpu_us_per_tx"] for name, n in report["nodes"].items() if name.startswith("validator")]
        theirs = [n["cpu_us_per_tx"] for n in report["baseline_nodes"].values()]
        # the acceptance figure: CPU per committed transaction per validator against the baseline's per node
        report["cpu_us_per_tx_validator_median"] = median(ours) if ours else float("nan")
        report["baseline_cpu_us_per_tx_node_median"] = median(theirs) if theirs else float("nan")
    report["detail"] = {mode: runs for mode, runs in by_mode.items()}
    return report


def _sign_baseline_load(options: BenchOptions, progress: Progress) -> list[bytes]:
    count = options.txs or int(options.duration_s * 3000)
    progress(f"baseline: signing {count} transfers (not timed)")
    return sign_baseline_load(options.enterprise_count, count)


async def _run_baseline(
    options: BenchOptions, load: list[bytes], index: int, progress: Progress
) -> dict[str, Any]:
    progress(f"== baseline {options.baseline} run {index + 1}/{options.runs}")
    run = await run_baseline_once(
        nodes=options.validators,
        enterprises=options.enterprise_count,
        bodies=load,
        concurrency=options.concurrency,
        duration_s=options.duration_s,
        warmup_s=options.warmup_s,
        workdir=options.workdir,
        progress=progress,
    )
    progress(
        f"baseline run {index + 1}: {run['tx_per_s']:.0f} tx/s, p50 {run['p50_ms']:.0f} ms, "
        f"p99 {run['p99_ms']:.0f} ms, {run['committed']} of {run['txs']} committed"
    )
    return run


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"
