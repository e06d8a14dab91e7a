"""The node's wall clock: the one reading of the machine's time that consensus sees (block times).

Time is an input of the replica (consensus/), and this is where the validator shell takes it from. For fault
injection a test can start a node whose clock is off by a fixed amount: CARBONCHAIN_TEST_CLOCK_OFFSET_MS set
to a signed number of milliseconds shifts every reading (run_node applies it and logs a warning). Nothing but
the tests sets it; a deployment gets its clock from NTP like any other server.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping

from core.errors import ConfigError

CLOCK_OFFSET_ENV = "CARBONCHAIN_TEST_CLOCK_OFFSET_MS"
CLOCK_OFFSET_MS_MAX = 366 * 24 * 3600 * 1000  # a year either way

log = logging.getLogger(__name__)
_offset_ms = 0


def wall_clock_ms() -> int:
    """Milliseconds since the Unix epoch, shifted by the test offset (0 unless a test set one)."""
    return time.time_ns() // 1_000_000 + _offset_ms


def configure_clock_offset(environ: Mapping[str, str] = os.environ) -> int:
    """Apply CARBONCHAIN_TEST_CLOCK_OFFSET_MS if set; returns the offset. ConfigError if it is malformed."""
    global _offset_ms
    text = environ.get(CLOCK_OFFSET_ENV, "").strip()
    if not text:
        _offset_ms = 0
        return 0
    try:
        offset = int(text)
    except ValueError:
        raise ConfigError(
            f"{CLOCK_OFFSET_ENV} must be a whole number of milliseconds, not {text!r}"
        ) from None
    if abs(offset) > CLOCK_OFFSET_MS_MAX:
        raise ConfigError(f"{CLOCK_OFFSET_ENV} must be within a year ({CLOCK_OFFSET_MS_MAX} ms)")
    _offset_ms = offset
    log.warning("test clock offset in effect: this node's clock reads %+d ms off the machine's", offset)
    return offset
