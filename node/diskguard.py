"""The disk guard: stop ordering before the data dir's disk is full, and resume when space returns.

A write that fails for lack of space leaves LevelDB refusing every later write until it is reopened (and a
block half-applied in memory), so the node must never get there. The guard reads the free space of the data
dir's file system every DISK_CHECK_INTERVAL_S; below `free_bytes_min` it pauses the node (a validator stops
stepping its replica, an observer stops applying blocks), which then writes nothing at all: everything it
committed is already durable, and what it misses meanwhile it fetches from its peers after resuming.
/readyz answers 503 with the reason, and the log says so once. Ordering resumes when the free space is
back above `free_bytes_min` plus a quarter (the margin keeps a disk that hovers at the limit from flapping).

`free_bytes_min` must hold what the node writes between two checks plus LevelDB's compactions: by default
eight of the genesis's largest blocks, and never less than 64 MiB.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DISK_CHECK_INTERVAL_S = 0.5
FREE_BYTES_MIN_FLOOR = 64 * 1024 * 1024
BLOCKS_OF_RESERVE = 8
MIB = 1024 * 1024


def compute_free_bytes_min(configured: int, block_bytes_max: int) -> int:
    """The reserve: the configured one (0 = automatic), or eight full blocks and at least 64 MiB."""
    if configured:
        return configured
    return max(FREE_BYTES_MIN_FLOOR, BLOCKS_OF_RESERVE * block_bytes_max)


def get_free_bytes(path: Path) -> int:
    """Bytes an unprivileged process may still write on the file system holding `path`."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


@dataclass
class DiskGuard:
    """Pure decisions from free-space readings; the node's shell reads the disk and acts on the result."""

    path: Path  # the data dir, for messages
    free_bytes_min: int  # below this, the node stops ordering
    paused_reason: str | None = None  # why ordering is paused, or None

    @property
    def resume_free_bytes(self) -> int:
        return self.free_bytes_min + self.free_bytes_min // 4

    def observe(self, free_bytes: int) -> str | None:
        """Process a reading; returns "pause" or "resume" when the node must change state, else None."""
        if self.paused_reason is None and free_bytes < self.free_bytes_min:
            self.paused_reason = (
                f"disk nearly full: {free_bytes / MIB:.1f} MiB free on the file system of {self.path}, "
                f"below the reserve of {self.free_bytes_min / MIB:.1f} MiB; not ordering until "
                f"{self.resume_free_bytes / MIB:.1f} MiB are free"
            )
            return "pause"
        if self.paused_reason is not None and free_bytes >= self.resume_free_bytes:
            self.paused_reason = None
            return "resume"
        return None
