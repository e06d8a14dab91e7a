"""The latest state values in memory, in front of LevelDB: a block's reads and the admission checks hit it.

A LevelDB read of a state key costs a memtable and several table lookups (a few microseconds on a live
node, several per transaction); a dict lookup costs a tenth of that. The cache is write-through: the store
puts every committed change into it right after the block's write batch, so it never holds a value older
than the database. Reads may run on other threads than the commit, so a miss is filled only if no commit
happened between its database read and the fill (a generation count, checked under a lock); otherwise a
read that raced a commit could put the older value back.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

VALUE_CACHE_BYTES_MAX = 64 * 1024 * 1024
VALUE_CACHE_ENTRY_OVERHEAD_BYTES = 150  # what an entry costs beyond its key and value (dict slot, objects)

MISSING: Any = object()  # a key a cache does not hold (a cached None means "no such key"); the store's too


class ValueCache:
    """State key -> latest value (None: absent), bounded in bytes; emptied whole when full."""

    def __init__(self, bytes_max: int = VALUE_CACHE_BYTES_MAX) -> None:
        self.bytes_max = bytes_max
        self._values: dict[bytes, bytes | None] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.generation = 0  # counts the commits; read it before the database read a fill comes from

    def __len__(self) -> int:
        return len(self._values)

    def get(self, key: bytes) -> Any:
        """The cached value, None for a key known absent, MISSING when not cached."""
        return self._values.get(key, MISSING)

    def fill(self, key: bytes, value: bytes | None, generation: int) -> None:
        """Remember what the database gave for `key`, unless a commit came after `generation` was read."""
        with self._lock:
            if generation == self.generation:
                self._put(key, value)

    def commit(self, writes: Mapping[bytes, bytes | None]) -> None:
        """Take a committed block's net changes (after its write batch is durable)."""
        with self._lock:
            self.generation += 1
            for key, value in writes.items():
                self._put(key, value)

    def clear(self) -> None:
        """Forget everything (after a failed write, when what the database holds is uncertain)."""
        with self._lock:
            self.generation += 1
            self._values.clear()
            self._bytes = 0

    def _put(self, key: bytes, value: bytes | None) -> None:
        values = self._values
        previous = values.get(key, MISSING)
        if previous is not MISSING:
            self._bytes -= _entry_bytes(key, previous)
        size = _entry_bytes(key, value)
        if self._bytes + size > self.bytes_max:
            # Emptying is rare (the budget holds a large state) and leaves nothing to choose or to track.
            values.clear()
            self._bytes = 0
            if size > self.bytes_max:
                return
        values[key] = value
        self._bytes += size


def _entry_bytes(key: bytes, value: bytes | None) -> int:
    return VALUE_CACHE_ENTRY_OVERHEAD_BYTES + len(key) + (0 if value is None else len(value))
