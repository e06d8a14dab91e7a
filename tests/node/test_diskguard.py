"""The disk guard's decisions and the test clock hook (the real disk and clock: tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from node.clock import CLOCK_OFFSET_ENV, configure_clock_offset, wall_clock_ms
from node.diskguard import MIB, DiskGuard, compute_free_bytes_min, get_free_bytes


def test_pauses_below_the_reserve_and_resumes_a_quarter_above_it() -> None:
    guard = DiskGuard(Path("/data"), free_bytes_min=8 * MIB)
    assert guard.observe(20 * MIB) is None and guard.paused_reason is None
    assert guard.observe(7 * MIB) == "pause"
    assert guard.paused_reason is not None and "7.0 MiB free" in guard.paused_reason
    assert guard.observe(4 * MIB) is None  # already paused: no second transition
    assert guard.observe(9 * MIB) is None  # above the reserve, not yet above the margin
    assert guard.observe(10 * MIB) == "resume" and guard.paused_reason is None
    assert guard.observe(10 * MIB) is None


def test_reserve_is_configured_or_eight_blocks_and_at_least_64_mib() -> None:
    assert compute_free_bytes_min(5 * MIB, 8 * MIB) == 5 * MIB
    assert compute_free_bytes_min(0, 1 * MIB) == 64 * MIB
    assert compute_free_bytes_min(0, 32 * MIB) == 256 * MIB


def test_free_bytes_of_a_real_directory(tmp_path: Path) -> None:
    assert get_free_bytes(tmp_path) > 0


def test_clock_offset_from_the_environment() -> None:
    try:
        assert configure_clock_offset({}) == 0
        before = wall_clock_ms()
        assert configure_clock_offset({CLOCK_OFFSET_ENV: "-30000"}) == -30_000
        assert wall_clock_ms() < before - 29_000
        for bad in ("soon", "1.5", str(10**12)):
            with pytest.raises(ConfigError):
                configure_clock_offset({CLOCK_OFFSET_ENV: bad})
    finally:
        configure_clock_offset({})
