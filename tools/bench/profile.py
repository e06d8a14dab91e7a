"""Summaries of py-spy's raw (collapsed-stack) output: the functions where a process spends its time.

Each line of `py-spy record --format raw` is `frame;frame;...;frame count`, outermost first, a frame being
`function (file:line)`. Self time counts the innermost frame of each stack, inclusive time every function
on it (once per stack). Functions are keyed by name and file without the line number.
"""

from __future__ import annotations

import re
from typing import Any

TOP_MAX = 25
_LINE_NUMBER = re.compile(r":\d+\)$")
_PATH_MARKERS = ("site-packages/", "/work/main/", "lib/python3.11/")  # shortened paths


def _function_key(frame: str) -> str:
    frame = _LINE_NUMBER.sub(")", frame.strip())
    for marker in _PATH_MARKERS:
        at = frame.find(marker)
        if at >= 0:
            return frame[: frame.find("(") + 1] + frame[at + len(marker) :]
    return frame


def summarise_raw_profile(text: str, *, rate_per_s: int) -> dict[str, Any]:
    """Top functions by self and inclusive samples, as percentages of all samples."""
    self_counts: dict[str, int] = {}
    inclusive_counts: dict[str, int] = {}
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_function_key(f) for f in stack.split(";") if f]
        if not frames:
            continue
        self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + count
        for key in set(frames):
            inclusive_counts[key] = inclusive_counts.get(key, 0) + count

    def top(counts: dict[str, int]) -> list[list[Any]]:
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_MAX]
        return [[name, round(100.0 * count / total, 1)] for name, count in ranked]

    return {
        "samples": total,
        "busy_s": total / rate_per_s,
        "self_pct": top(self_counts) if total else [],
        "inclusive_pct": top(inclusive_counts) if total else [],
    }
