"""What the queries share: page size and cursor parameters, record iteration, pages, lookups."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from chaincode.base import Arg, NotFound
from chaincode.context import decode_record
from core.state import StateReader

PAGE_DEFAULT = 100
PAGE_MAX = 1000
LIMIT_ARG = Arg(
    "limit", "int", "page size", required=False, default=PAGE_DEFAULT, minimum=1, maximum=PAGE_MAX
)


def after_arg(description: str, kind: str = "id") -> Arg:
    return Arg("start_after", kind, description, required=False, maximum=2**62)


def iter_records(
    state: StateReader, prefix: bytes, start_after: bytes | None
) -> Iterator[tuple[bytes, dict[str, Any]]]:
    for key, raw in state.iterate(prefix, start_after=start_after):
        yield key, decode_record(raw)


def page(items: list[Any], limit: int, cursor: Callable[[Any], Any]) -> dict[str, Any]:
    """`items` holds up to limit + 1 entries; the extra one only tells whether there is a next page."""
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next": cursor(items[-1]) if more and items else None}


def get_or_not_found(state: StateReader, key: bytes, what: str) -> dict[str, Any]:
    raw = state.get(key)
    if raw is None:
        raise NotFound(f"{what} not found")
    return decode_record(raw)
