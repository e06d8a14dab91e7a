"""How amounts and times are shown to people: fen as CNY, block times as UTC.

Money is integer fen everywhere in the chain (1 CNY = 100 fen) and is formatted by integer arithmetic, never
through floats; times are agreed block times in Unix milliseconds, always shown in UTC. The CLI's reports
and the web dashboard use these same functions, so both show the same text for the same value.
"""

from __future__ import annotations

from datetime import UTC, datetime


def format_fen(amount_fen: int) -> str:
    """Fen as CNY with two decimals and thousands separators, by integer arithmetic."""
    sign = "-" if amount_fen < 0 else ""
    yuan, fen = divmod(abs(amount_fen), 100)
    return f"{sign}{yuan:,}.{fen:02d}"


def format_time_ms(time_ms: int | None) -> str:
    """A Unix-millisecond time as `YYYY-MM-DD HH:MM:SS UTC`; empty for None."""
    if time_ms is None:
        return ""
    return datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
