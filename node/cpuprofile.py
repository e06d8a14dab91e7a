"""A CPU-time sampling profiler inside a node, for `carbonchain bench --profile DIR --profile-clock cpu`.

py-spy samples wall-clock time of threads it sees as active, and a thread that waits on fsync or that the
OS has preempted counts as active: on a shared 2-core machine its samples over-weight long bursts (a block's
execution) and synced writes, and miss what runs on threads without Python frames (LevelDB's compaction).
This sampler counts process CPU time instead: ITIMER_PROF fires every INTERVAL_S of CPU used by any thread
of the process, and the handler records the main thread's Python stack at that moment. CPU that a
background thread uses while the main thread waits lands on the main thread's wait (`select`).

Started by SIGUSR1 and written by SIGUSR2 (the bench sends both around its timed window), when the node
runs with CARBONCHAIN_CPU_PROFILE=<directory>; the output is `<directory>/<node name>.txt` in py-spy's
raw format (`frame;frame;...;frame count`, outermost first, a frame being `function (file:line)`), so
tools/bench/profile.py summarises both alike.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)

CPU_PROFILE_ENV = "CARBONCHAIN_CPU_PROFILE"
INTERVAL_S = 0.005  # 200 samples per CPU second; a sample costs about 20 us (a stack of ~40 frames)
SAMPLE_RATE_PER_S = round(1 / INTERVAL_S)
_ROOT = str(Path(__file__).resolve().parents[1]) + os.sep


class CpuSampler:
    def __init__(self, output: Path) -> None:
        self.output = output
        self._counts: dict[str, int] = {}
        self.running = False

    def start(self) -> None:
        if self.running:
            return
        self._counts.clear()
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, INTERVAL_S, INTERVAL_S)
        self.running = True

    def stop(self) -> None:
        """Stop sampling and write what was sampled (nothing when not running)."""
        if not self.running:
            return
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, signal.SIG_IGN)
        self.running = False
        lines = [f"{stack} {count}\n" for stack, count in sorted(self._counts.items())]
        partial = self.output.with_suffix(".partial")
        partial.write_text("".join(lines))
        partial.replace(self.output)  # a reader never sees half a profile

    def _sample(self, signum: int, frame: FrameType | None) -> None:
        names = []
        while frame is not None:
            code = frame.f_code
            names.append(f"{code.co_name} ({_short_path(code.co_filename)}:{frame.f_lineno})")
            frame = frame.f_back
        stack = ";".join(reversed(names))
        self._counts[stack] = self._counts.get(stack, 0) + 1


def _short_path(filename: str) -> str:
    if filename.startswith(_ROOT):
        return filename[len(_ROOT) :]
    at = filename.find("site-packages" + os.sep)
    if at >= 0:
        return filename[at + len("site-packages") + 1 :]
    at = filename.find(f"python{sys.version_info[0]}.{sys.version_info[1]}{os.sep}")
    return filename if at < 0 else filename[at:]


def install_from_environment(loop: asyncio.AbstractEventLoop, node_name: str) -> CpuSampler | None:
    """With CARBONCHAIN_CPU_PROFILE set: a sampler that SIGUSR1 starts and SIGUSR2 stops and writes."""
    directory = os.environ.get(CPU_PROFILE_ENV)
    if not directory:
        return None
    sampler = CpuSampler(Path(directory) / f"{node_name}.txt")

    def write() -> None:
        try:
            sampler.stop()
        except OSError as exc:
            log.error("cannot write the CPU profile %s: %s", sampler.output, exc)

    loop.add_signal_handler(signal.SIGUSR1, sampler.start)
    loop.add_signal_handler(signal.SIGUSR2, write)
    log.info("CPU profile on SIGUSR1 .. SIGUSR2 into %s", sampler.output)
    return sampler
