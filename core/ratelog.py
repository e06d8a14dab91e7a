"""Rate-limited logging: at most one line per cause per interval, so hostile input cannot flood the log.

Anyone can open a socket to a node and send garbage, drop a request halfway, or stall a handshake; each such
event is worth knowing about, but not once per connection and never as a traceback (those mean our bugs).
`RateLimitedLog.warning(cause, message)` writes the first event of a cause at once and then stays silent for
`interval_s`; the first event after that says how many were left out:

    WARNING ... bad HTTP request from 10.0.0.9: Invalid method encountered (and 41 more like it in 60 s)

`OneLineErrors` applies the same rule to a library's logger (aiohttp logs every malformed request with a
traceback at ERROR): records whose exception is the client's fault become one rate-limited warning line;
anything else passes through untouched.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_INTERVAL_S = 60.0
CAUSES_MAX = 256  # distinct causes remembered; the oldest is forgotten beyond this
DETAIL_CHARS_MAX = 160  # how much of an exception message goes into the line


@dataclass
class _Cause:
    logged_at: float  # when the last line for this cause was written
    suppressed: int = 0  # events since then that were not written


class RateLimitedLog:
    """One logger's rate limit, per cause (a short fixed string chosen by the caller, never peer input)."""

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._clock = clock
        self._causes: OrderedDict[str, _Cause] = OrderedDict()

    def warning(self, cause: str, message: str, *args: object) -> bool:
        """Log `message % args` at WARNING unless `cause` was logged within the interval; True if written."""
        return self.log(logging.WARNING, cause, message, *args)

    def log(self, level: int, cause: str, message: str, *args: object) -> bool:
        now = self._clock()
        entry = self._causes.get(cause)
        if entry is not None and now - entry.logged_at < self.interval_s:
            entry.suppressed += 1
            return False
        suppressed = entry.suppressed if entry is not None else 0
        self._causes[cause] = _Cause(now)
        self._causes.move_to_end(cause)
        if len(self._causes) > CAUSES_MAX:
            self._causes.popitem(last=False)
        if suppressed:
            message += f" (and {suppressed} more like it in {self.interval_s:g} s)"
        self.logger.log(level, message, *args)
        return True


def summarise_exception(exc: BaseException) -> str:
    """`Type: first line of the message`, on one line and bounded (aiohttp's messages span several lines)."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    if len(text) > DETAIL_CHARS_MAX:
        text = text[:DETAIL_CHARS_MAX] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class OneLineErrors(logging.Filter):
    """A filter for a library logger: exceptions of the `client_faults` types become rate-limited warnings.

    The original record (level ERROR, with a traceback) is dropped; one WARNING line per exception type and
    interval is written to `into` instead, naming the message the library logged and the exception.
    """

    def __init__(
        self,
        into: logging.Logger,
        client_faults: tuple[type[BaseException], ...],
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        super().__init__()
        self.client_faults = client_faults
        self._log = RateLimitedLog(into, interval_s=interval_s)

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not isinstance(exc, self.client_faults):
            return True
        self._log.warning(type(exc).__name__, "%s: %s", record.getMessage(), summarise_exception(exc))
        return False
