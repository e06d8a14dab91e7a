"""The progress timer: when the replica gives up on the current primary.

It runs while the normal case has work in flight (deadline: last progress + timeout) or a transaction
waits (deadline: its arrival, or when we last suspected censorship, + timeout). The first expiry only
probes whether we are merely behind; the second starts a view change. Each failed view doubles the
timeout (at most BACKOFF_MAX times); a delivered block in the normal case resets it.
"""

from __future__ import annotations

from consensus.config import BACKOFF_MAX
from consensus.events import TIMER_PROGRESS
from consensus.outbox import Clock, Timers


class ProgressTimer:
    def __init__(self, clock: Clock, timers: Timers, view_timeout_ms: int) -> None:
        self._clock = clock
        self._timers = timers
        self._view_timeout_ms = view_timeout_ms
        self.backoff = 0  # views in a row that failed to make progress
        self.probed = False  # the first expiry (a probe for blocks) has happened
        self.last_progress_ms = 0
        self.censor_since_ms = 0

    def timeout_ms(self) -> int:
        return self._view_timeout_ms << min(self.backoff, BACKOFF_MAX)

    def restart(self) -> None:
        """Measure progress from now (at start, and on entering a view)."""
        self.censor_since_ms = self.last_progress_ms = self._clock.now_ms
        self.probed = False

    def on_delivered(self, *, in_normal_case: bool) -> None:
        self.last_progress_ms = self._clock.now_ms
        self.probed = False
        if in_normal_case:
            self.backoff = 0

    def on_probe(self) -> None:
        """The first expiry: the next deadline is half a timeout away, for stalled blocks and waiting
        transactions alike."""
        self.probed = True
        self.last_progress_ms = self._clock.now_ms - self.timeout_ms() // 2
        self.censor_since_ms = max(self.censor_since_ms, self.last_progress_ms)

    def on_view_change(self) -> None:
        self.backoff = min(self.backoff + 1, BACKOFF_MAX + 1)

    def refresh(self, *, running: bool, has_work: bool, oldest_tx_ms: int | None) -> None:
        """(Re)arm or cancel TIMER_PROGRESS for the current deadline."""
        if not running:
            self._timers.cancel(TIMER_PROGRESS)
            return
        timeout = self.timeout_ms()
        deadlines = []
        if has_work:
            deadlines.append(self.last_progress_ms + timeout)
        if oldest_tx_ms is not None:
            deadlines.append(max(oldest_tx_ms, self.censor_since_ms) + timeout)
        if not deadlines:
            self._timers.cancel(TIMER_PROGRESS)
            return
        now = self._clock.now_ms
        deadline = max(min(deadlines), now + 1)
        if self._timers.deadline(TIMER_PROGRESS) != deadline:
            self._timers.set(TIMER_PROGRESS, deadline - now)
