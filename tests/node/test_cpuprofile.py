"""The node's CPU-time sampler: it attributes CPU to the code that used it, in py-spy's raw format."""

from __future__ import annotations

import time
from pathlib import Path

from click.testing import CliRunner

from cli import main as cli_main
from node.cpuprofile import SAMPLE_RATE_PER_S, CpuSampler
from tools.bench.profile import summarise_raw_profile


def _burn_cpu(seconds: float) -> int:
    total, until = 0, time.process_time() + seconds
    while time.process_time() < until:
        total += sum(range(1000))
    return total


def _sleep_without_cpu(seconds: float) -> None:
    time.sleep(seconds)


def test_samples_count_cpu_time_where_it_was_used_and_not_sleep(tmp_path: Path) -> None:
    sampler = CpuSampler(tmp_path / "node.txt")
    sampler.start()
    _burn_cpu(0.3)
    _sleep_without_cpu(0.3)  # wall time a wall-clock sampler would count; the CPU timer does not fire
    sampler.stop()
    summary = summarise_raw_profile((tmp_path / "node.txt").read_text(), rate_per_s=SAMPLE_RATE_PER_S)
    assert summary["samples"] >= 20  # about 60 in 0.3 CPU seconds
    inclusive = dict(summary["inclusive_pct"])
    assert inclusive["_burn_cpu (tests/node/test_cpuprofile.py)"] >= 90.0
    assert inclusive.get("_sleep_without_cpu (tests/node/test_cpuprofile.py)", 0.0) <= 5.0
    assert not sampler.running and not (tmp_path / "node.partial").exists()


def test_stop_without_start_writes_nothing_and_a_second_start_is_ignored(tmp_path: Path) -> None:
    sampler = CpuSampler(tmp_path / "node.txt")
    sampler.stop()
    assert not (tmp_path / "node.txt").exists()
    sampler.start()
    sampler.start()
    _burn_cpu(0.05)
    sampler.stop()
    assert (tmp_path / "node.txt").read_text().strip()


def test_the_bench_refuses_a_cpu_clock_without_a_profile_directory() -> None:
    result = CliRunner().invoke(cli_main, ["bench", "--profile-clock", "cpu", "--runs", "1"])
    assert result.exit_code == 1
    assert "--profile-clock cpu needs --profile DIR" in result.output
    assert "Traceback" not in result.output
