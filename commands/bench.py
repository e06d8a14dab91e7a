"""`carbonchain bench`: run a benchmark workload on a fresh local network and print the numbers."""

from __future__ import annotations

import asyncio
import json
import math
import signal
from pathlib import Path
from typing import Any

import click

from core.errors import ConfigError
from tools.bench.baseline import BASELINES, INSTALL_HINT, require_baseline
from tools.bench.run import BenchOptions
from tools.bench.runner import WORKLOADS, run_bench


def _parse_consensus(items: tuple[str, ...]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not value.isdigit():
            raise ConfigError(f"--consensus takes name=integer, not {item!r}")
        overrides[name] = int(value)
    return overrides


@click.command("bench")
@click.option("--workload", type=click.Choice(WORKLOADS), default="transfers", show_default=True)
@click.option("--validators", default=4, show_default=True, type=click.IntRange(1, 16))
@click.option("--observers", default=1, show_default=True, type=click.IntRange(0, 4))
@click.option(
    "--mode",
    type=click.Choice(["closed", "open", "both"]),
    default="closed",
    show_default=True,
    help="closed loop (max throughput), open loop at --rate (latency under load), or both.",
)
@click.option("--rate", default=1500.0, show_default=True, type=float, help="Open loop offered tx/s.")
@click.option(
    "--concurrency",
    default=1000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Closed loop: transactions sent but not yet committed; open loop: requests in flight.",
)
@click.option("--duration", default=30.0, show_default=True, type=float, help="Seconds of timed load.")
@click.option("--warmup", default=5.0, show_default=True, type=float, help="Seconds excluded at the start.")
@click.option("--txs", default=0, type=int, help="Closed loop: pre-signed transactions (default 4000/s).")
@click.option(
    "--enterprises", default=0, type=int, help="Enterprises (default 200; 2162 for compliance-year)."
)
@click.option(
    "--blocks",
    default=10_000,
    show_default=True,
    type=click.IntRange(1),
    help="catch-up: blocks committed while one validator is stopped.",
)
@click.option(
    "--batch",
    "batch_max",
    default=100,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Transactions per submission request (POST /v1/txs takes a batch); 1 = one request each.",
)
@click.option("--runs", default=3, show_default=True, type=click.IntRange(1, 20))
@click.option("--consensus", multiple=True, help="Genesis consensus override name=value (repeatable).")
@click.option(
    "--profile",
    "profile_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Profile validator-0 and observer-0 during the timed load; raw stacks go here (the wall clock needs "
    "py-spy in the venv).",
)
@click.option(
    "--profile-clock",
    type=click.Choice(["wall", "cpu"]),
    default="wall",
    show_default=True,
    help="wall: py-spy samples active threads from outside; cpu: each node samples its own CPU time "
    "(node/cpuprofile.py), which counts LevelDB's threads and not waits on fsync or for a core.",
)
@click.option(
    "--workdir",
    type=click.Path(exists=True, file_okay=False, writable=True, path_type=Path),
    help="An existing directory where node homes go (default: the system temp directory).",
)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info")
@click.option("--keep", is_flag=True, help="Keep node homes and logs (printed in the report).")
@click.option(
    "--baseline",
    type=click.Choice(BASELINES),
    help="Also run the same closed-loop transfers through a PySyncObj (Raft) cluster of --validators "
    f"nodes, run for run, and report the ratio (needs {INSTALL_HINT}).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def bench(
    workload: str,
    validators: int,
    observers: int,
    mode: str,
    rate: float,
    concurrency: int,
    duration: float,
    warmup: float,
    txs: int,
    enterprises: int,
    blocks: int,
    batch_max: int,
    runs: int,
    consensus: tuple[str, ...],
    profile_dir: Path | None,
    profile_clock: str,
    workdir: Path | None,
    log_level: str,
    keep: bool,
    baseline: str | None,
    as_json: bool,
) -> None:
    """Start a fresh network on 127.0.0.1, drive pre-signed transactions through its API, report medians."""
    options = BenchOptions(
        workload=workload,
        validators=validators,
        observers=observers,
        mode=mode,
        rate_per_s=rate,
        concurrency=concurrency,
        duration_s=duration,
        warmup_s=warmup,
        txs=txs,
        enterprises=enterprises,
        blocks=blocks,
        batch_max=batch_max,
        runs=runs,
        consensus=_parse_consensus(consensus),
        profile_dir=profile_dir,
        profile_clock=profile_clock,
        workdir=workdir,
        log_level=log_level,
        keep=keep,
        baseline=baseline,
    )
    if workload != "compliance-year" and options.enterprise_count < 2:
        raise ConfigError("--enterprises must be at least 2")
    if profile_clock == "cpu" and profile_dir is None:
        raise ConfigError("--profile-clock cpu needs --profile DIR (where the profiles go)")
    if baseline is not None:
        if workload != "transfers" or mode == "open":
            raise ConfigError(
                "--baseline compares closed-loop transfers: use --workload transfers --mode closed"
            )
        require_baseline(baseline)  # before any of our runs: a missing extra should not cost minutes
    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops the nodes like Ctrl-C does
    try:
        report = asyncio.run(run_bench(options, _progress))
    finally:
        signal.signal(signal.SIGTERM, previous)
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True, default=_json_default))
    else:
        click.echo(format_report(report))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _progress(message: str) -> None:
    click.echo(message, err=True, nl=not message.startswith("\r"))


def _json_default(value: Any) -> Any:
    return str(value)


def _number(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def format_report(report: dict[str, Any]) -> str:
    """A readable table of the medians."""
    if report["workload"] == "catch-up":
        return format_catch_up(report)
    lines = [
        f"workload {report['workload']}: {report['validators']} validators + {report['observers']} observers, "
        f"median of {report['runs']} runs ({report['cores']} x {report['cpu_model']})",
        "",
    ]
    sections = [("closed" if report["mode"] == "closed" else report["mode"], report)]
    if "open_loop" in report:
        sections.append((f"open @ {report['open_loop']['offered_per_s']:.0f}/s", report["open_loop"]))
    lines.append(
        f"{'mode':<18}{'tx/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'blocks/s':>10}{'txs/block':>11}"
    )
    for label, section in sections:
        lines.append(
            f"{label:<18}{_number(section['tx_per_s']):>9}{_number(section['p50_ms']):>9}"
            f"{_number(section['p95_ms']):>9}{_number(section['p99_ms']):>9}"
            f"{_number(section.get('blocks_per_s'), 1):>10}{_number(section.get('mean_block_txs'), 1):>11}"
        )
    if "baseline_tx_per_s" in report:
        lines.append(
            f"{'PySyncObj (Raft)':<18}{_number(report['baseline_tx_per_s']):>9}"
            f"{_number(report['baseline_p50_ms']):>9}{_number(report['baseline_p95_ms']):>9}"
            f"{_number(report['baseline_p99_ms']):>9}{'-':>10}{'-':>11}"
        )
        lines.append(f"ratio to baseline (our tx/s / PySyncObj's): {_number(report['ratio_to_baseline'], 2)}")
        lines.append(f"baseline: {report['baseline_detail']['system']}")
    if "total_wall_s" in report:
        lines.append(
            f"compliance year: {report['txs']:,} txs for {report.get('enterprises', '?')} enterprises, "
            f"total {report['total_wall_s']:.1f} s (of which {report['deadline_wait_s']:.1f} s waiting for "
            f"the deadline), {report['tx_per_s']:.0f} tx/s while busy"
        )
    lines += ["", f"{'node':<14}{'CPU s':>8}{'CPU share':>11}{'peak RSS MB':>13}"]
    for name, node in {**report["nodes"], **report.get("baseline_nodes", {})}.items():
        lines.append(
            f"{name:<14}{_number(node['cpu_s'], 1):>8}{_number(node['cpu_share'] * 100):>10}%"
            f"{_number(node['peak_rss_mb']):>13}"
        )
    lines += [
        "",
        f"Ed25519 verify, one core: {report['verify_per_s_core']:,.0f}/s (libsodium), "
        f"{report['verify_per_s_core_cryptography']:,.0f}/s (cryptography)",
        f"ceiling {report['ceiling_tx_per_s']:,.0f} tx/s (cores x verify/s / validators); "
        f"ratio to ceiling {report['ratio_to_ceiling']:.2f}; all nodes agree: {report['agree']}",
    ]
    return "\n".join(lines)


def format_catch_up(report: dict[str, Any]) -> str:
    """The catch-up and audit medians."""
    return "\n".join(
        [
            f"catch-up: {report['validators']} validators + {report['observers']} observers, "
            f"median of {report['runs']} runs ({report['cores']} x {report['cpu_model']})",
            f"stopped validator missed {report['blocks_behind']:,.0f} blocks ({report['txs_behind']:,.0f} txs), "
            f"committed by the others at {report['load_blocks_per_s']:.1f} blocks/s",
            f"catch-up from restart: {report['catch_up_s']:.1f} s = {report['catch_up_blocks_per_s']:.0f} "
            f"blocks/s, {report['catch_up_tx_per_s']:.0f} tx/s (API ready after {report['api_ready_s']:.1f} s; "
            f"{report['stalls']:.0f} stalls nudged by a new block, {report['stalled_s']:.1f} s stalled)",
            f"catch-up once the API answers: {report['catch_up_after_api_blocks_per_s']:.0f} blocks/s, "
            f"{report['catch_up_after_api_tx_per_s']:.0f} tx/s",
            f"audit verify: {report['audit_blocks']:,.0f} blocks in {report['audit_wall_s']:.1f} s = "
            f"{report['audit_blocks_per_s']:.0f} blocks/s, {report['audit_tx_per_s']:.0f} tx/s "
            f"(exit code {report['audit_exit_code']:.0f})",
            f"all nodes agree on height, block hash and state root: {report['agree']}",
        ]
    )
