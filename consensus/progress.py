"""The progress timer: when the replica gives up on the current primary.

It watches two deadlines, each + the timeout:
- stall: while the normal case has work in flight, from the last delivered block;
- censorship: while a transaction waits, from the later of the oldest one's arrival and the last delivered
  block that served our backlog: it left nothing pending, or took a transaction that arrived here within
  a view timeout of the oldest one pending (consensus.pool.PendingPool.remove_delivered). An honest primary
  proposes its oldest transactions, which are ours up to gossip delays, so its blocks keep serving our
  backlog however long it is; a primary that skips a transaction runs out of such blocks (each one commits
  one of the finitely many transactions that arrived within the slack).
The first expiry of a deadline only probes whether we are merely behind (and pulls that deadline half a
timeout closer); a second expiry of a deadline that had its probe starts a view change, unless the replica
is catching up (consensus.view_change: behind the network and still delivering blocks). A delivered block
re-arms the stall deadline and, if it served the backlog, the censorship deadline, each with a new probe;
so does the end of its execution here (executing is our time, not the primary's).
Each failed view doubles the timeout (at most BACKOFF_MAX times); a delivered block in the normal case
resets it.
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
        self.last_progress_ms = 0  # the stall deadline counts from here
        self.last_delivered_ms = 0  # the last block delivered or executed here (probes do not move it)
        self.censor_since_ms = 0  # the censorship deadline counts from here (or the oldest's arrival)
        self._stall_probed = False  # the stall deadline had its first expiry
        self._censor_probed = False  # the censorship deadline had its first expiry
        self._has_work = False  # as of the last refresh
        self._served_backlog: set[int] = set()  # delivered heights, not executed yet, that served it
        self._oldest_tx_ms: int | None = None

    def timeout_ms(self) -> int:
        return self._view_timeout_ms << min(self.backoff, BACKOFF_MAX)

    def restart(self) -> None:
        """Measure progress from now (at start, and on entering a view or an epoch)."""
        self.censor_since_ms = self.last_progress_ms = self._clock.now_ms
        self._stall_probed = self._censor_probed = False

    def on_delivered(self, *, in_normal_case: bool, served_backlog: bool) -> None:
        now = self._clock.now_ms
        self.last_progress_ms = self.last_delivered_ms = now
        self._stall_probed = False
        if served_backlog:
            self.censor_since_ms = now
            self._censor_probed = False
        if in_normal_case:
            self.backoff = 0

    def note_served_backlog(self, height: int) -> None:
        """The block delivered at `height` served our backlog (consensus.pool.PendingPool.remove_delivered)."""
        self._served_backlog.add(height)

    def on_executed(self, height: int) -> None:
        """A delivered block finished executing here: the time it took was ours, not the primary's (a block
        of thousands of transactions can take longer than the timeout on a loaded host), so the deadlines
        that its delivery re-armed count from now."""
        served = height in self._served_backlog
        if self._served_backlog:
            self._served_backlog = {h for h in self._served_backlog if h > height}
        self.on_delivered(in_normal_case=False, served_backlog=served)

    def _due(self) -> tuple[bool, bool]:
        """(stall, censorship): which deadlines have passed."""
        now, timeout = self._clock.now_ms, self.timeout_ms()
        stall = self._has_work and self.last_progress_ms + timeout <= now
        oldest = self._oldest_tx_ms
        censorship = oldest is not None and max(oldest, self.censor_since_ms) + timeout <= now
        return stall, censorship

    def is_second_expiry(self) -> bool:
        """A deadline that already had its probe has passed again: time to change view."""
        stall, censorship = self._due()
        return (stall and self._stall_probed) or (censorship and self._censor_probed)

    def on_probe(self) -> None:
        """The first expiry: each deadline that passed is next half a timeout away."""
        stall, censorship = self._due()
        since = self._clock.now_ms - self.timeout_ms() // 2
        if stall:
            self._stall_probed = True
            self.last_progress_ms = since
        if censorship:
            self._censor_probed = True
            self.censor_since_ms = max(self.censor_since_ms, since)

    def has_delivered_recently(self) -> bool:
        """A block was delivered (or finished executing) here within the current timeout."""
        return self._clock.now_ms - self.last_delivered_ms < self.timeout_ms()

    def on_view_change(self) -> None:
        self.backoff = min(self.backoff + 1, BACKOFF_MAX + 1)

    def refresh(self, *, running: bool, has_work: bool, oldest_tx_ms: int | None) -> None:
        """(Re)arm or cancel TIMER_PROGRESS for the current deadline."""
        self._has_work, self._oldest_tx_ms = has_work, oldest_tx_ms
        if oldest_tx_ms is None:
            self._censor_probed = False  # nothing waits: the next transaction starts its own deadline
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
