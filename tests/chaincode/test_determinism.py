"""Replaying the same transactions in fresh interpreters with different hash seeds gives identical state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent / "replay_run.py"
ROOT = Path(__file__).parents[2]


def _digest(seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    completed = subprocess.run(
        [sys.executable, str(SCRIPT)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return completed.stdout.strip()


def test_state_is_identical_across_hash_seeds() -> None:
    digests = {_digest(seed) for seed in ("0", "1", "12345")}
    assert len(digests) == 1
    (digest,) = digests
    assert len(digest) == 64
