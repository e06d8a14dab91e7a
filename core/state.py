"""The read interface of world state that chaincode executes against.

Storage implements it over LevelDB (a snapshot or the live database); chaincode tests may use the in-memory
`DictState`. Keys and values are bytes; iteration is always in ascending key order, so anything derived from
it is deterministic.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping
from typing import Protocol


class StateReader(Protocol):
    def get(self, key: bytes) -> bytes | None:
        """The current value of a key, or None when absent."""
        ...

    def iterate(self, prefix: bytes, *, start_after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Entries whose key starts with `prefix`, ascending by key, after `start_after` if given."""
        ...


# The changes one block makes: key -> new value, or None for a delete.
WriteSet = Mapping[bytes, bytes | None]


class DictState:
    """An in-memory StateReader for unit tests of code that is covered against LevelDB elsewhere."""

    def __init__(self, entries: Mapping[bytes, bytes] | None = None) -> None:
        self._entries: dict[bytes, bytes] = dict(entries or {})

    def get(self, key: bytes) -> bytes | None:
        return self._entries.get(key)

    def iterate(self, prefix: bytes, *, start_after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        keys = sorted(key for key in self._entries if key.startswith(prefix))
        if start_after is not None:
            keys = keys[bisect.bisect_right(keys, start_after) :]
        for key in keys:
            yield key, self._entries[key]

    def apply(self, writes: WriteSet) -> None:
        for key, value in writes.items():
            if value is None:
                self._entries.pop(key, None)
            else:
                self._entries[key] = value

    def items(self) -> dict[bytes, bytes]:
        return dict(self._entries)
