"""A few seconds of `carbonchain bench` on a one-validator network: the command runs end to end, stops
every process it started, and prints the JSON keys the issue promises (the benchmark itself is not a test).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools.bench.profile import summarise_raw_profile

REPO = Path(__file__).resolve().parents[3]
# enough transactions that the load outlasts the warm-up on a fast machine (600 were all sent within it)
SMALL = ["--duration", "3", "--warmup", "1", "--runs", "1", "--enterprises", "4", "--txs", "4000"]
SMALL += ["--concurrency", "100"]
BENCH = [sys.executable, "-m", "cli", "bench", "--json", "--validators", "1", "--observers", "0", *SMALL]
REQUIRED_KEYS = {
    "tx_per_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "validators",
    "txs",
    "agree",
    "ceiling_tx_per_s",
    "ratio_to_ceiling",
}


@pytest.mark.timeout(60)
def test_bench_smoke_prints_the_promised_json(tmp_path: Path) -> None:
    completed = subprocess.run(
        [*BENCH, "--workdir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=55,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(completed.stdout)
    assert report.keys() >= REQUIRED_KEYS
    assert report["validators"] == 1
    assert report["agree"] is True
    assert report["txs"] > 0 and report["not_committed"] == 0  # every accepted transaction committed
    assert report["tx_per_s"] > 0 and report["window_s"] > 0.1
    assert report["ceiling_tx_per_s"] > 0
    assert list(tmp_path.iterdir()) == []  # the network folder is removed after a clean run


def test_profile_summary_counts_self_and_inclusive_time() -> None:
    raw = "main (/work/main/cli.py:1);work (/work/main/a.py:3) 3\nmain (/work/main/cli.py:1) 1\n"
    summary = summarise_raw_profile(raw, rate_per_s=100)
    assert summary["samples"] == 4
    assert summary["self_pct"][0] == ["work (a.py)", 75.0]
    assert ["main (cli.py)", 100.0] in summary["inclusive_pct"]


@pytest.mark.timeout(60)
def test_bench_cpu_profile_comes_from_the_node_itself(tmp_path: Path) -> None:
    profiles, work = tmp_path / "profiles", tmp_path / "work"
    work.mkdir()
    command = [*BENCH, "--workdir", str(work), "--profile", str(profiles), "--profile-clock", "cpu"]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=55)
    assert completed.returncode == 0, completed.stderr[-2000:]
    [run] = json.loads(completed.stdout)["detail"]["closed"]
    profile = run["profile"]["validator-0"]
    assert profile["clock"] == "cpu" and profile["samples"] > 0, profile
    # every sample is a stack of the node's own code, paths relative to the repository
    stacks = (profiles / "validator-0.txt").read_text().splitlines()
    assert stacks and all("run_node (node/runtime.py:" in stack for stack in stacks)
