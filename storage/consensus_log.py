"""A small durable key-value area for the consensus shell: what it signed, persisted before a vote leaves.

Every write is synced before it returns (docs/RELIABILITY.md item 1: a restarted validator must never sign a
conflicting vote). `put_many` writes several records in one synced batch, so a (view, seq, phase) triple is
never half-updated. Keys and values are the caller's bytes; the area lives under its own schema prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import plyvel

from core.errors import InvalidInput
from storage.errors import StorageIOError, StoreCorrupt

CONSENSUS_KEY_BYTES_MAX = 256
CONSENSUS_VALUE_BYTES_MAX = 1024 * 1024  # unless the owner raises `value_bytes_max` to what its records need


class ConsensusLog:
    """Synced get/put/delete/iterate over the consensus area of the store."""

    def __init__(self, db: Any, guard: Callable[[], None]) -> None:
        self._db = db
        self._guard = guard
        # the largest value put accepts: a validator raises it to its chain's largest consensus message (a
        # VIEW-CHANGE or NEW-VIEW with pipeline_depth full blocks), which it must be able to persist
        self.value_bytes_max = CONSENSUS_VALUE_BYTES_MAX

    def get(self, key: bytes) -> bytes | None:
        self._guard()
        value: bytes | None = self._db.get(key)
        return value

    def put(self, key: bytes, value: bytes) -> None:
        self.put_many([(key, value)])

    def put_many(self, items: Iterable[tuple[bytes, bytes | None]], *, sync: bool = True) -> None:
        """Write all items in one batch (a None value deletes the key), synced unless sync=False."""
        self._guard()
        batch = self._db.write_batch(sync=sync)
        for key, value in items:
            _validate(key, b"" if value is None else value, self.value_bytes_max)
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self._write(batch)

    def delete(self, key: bytes) -> None:
        self.delete_many([key])

    def delete_many(self, keys: Iterable[bytes]) -> None:
        self._guard()
        batch = self._db.write_batch(sync=True)
        for key in keys:
            _validate(key, b"", self.value_bytes_max)
            batch.delete(key)
        self._write(batch)

    def iterate(self, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Entries whose key starts with `prefix`, ascending by key."""
        self._guard()
        iterator = self._db.iterator(prefix=prefix)
        try:
            yield from iterator
        finally:
            iterator.close()

    def _write(self, batch: Any) -> None:
        try:
            batch.write()
        except plyvel.CorruptionError as exc:
            raise StoreCorrupt(f"writing the consensus log failed: {exc}") from None
        except OSError as exc:
            raise StorageIOError(f"writing the consensus log failed, nothing was stored: {exc}") from None


def _validate(key: bytes, value: bytes, value_bytes_max: int) -> None:
    if type(key) is not bytes or not 0 < len(key) <= CONSENSUS_KEY_BYTES_MAX:
        raise InvalidInput(f"consensus log keys are 1..{CONSENSUS_KEY_BYTES_MAX} bytes")
    if type(value) is not bytes or len(value) > value_bytes_max:
        raise InvalidInput(f"consensus log values are bytes of at most {value_bytes_max}")
