"""What a validator shows of its checkpoints and its consensus log: /v1/status, /metrics and the log.

The replica (consensus/checkpoints.py) makes a checkpoint height stable when a quorum signed the same state
root for it, and then deletes the votes and prepared certificates at or below it from the consensus log.
`CheckpointWatch` follows that from the outside, without changing it: it keeps the set of log keys the
shell persisted (so it can say how many records are kept and how many a checkpoint deleted) and notices
when the replica's stable height moves, which it logs once per checkpoint at INFO.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from consensus.events import LogRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CheckpointStatus:
    stable_height: int  # the last height a quorum of validators signed a CHECKPOINT for (0: none yet)
    stable_state_root: bytes | None  # our state root after that height (equal to the quorum's)
    interval: int  # genesis consensus.checkpoint_interval
    log_records: int  # consensus log records kept on disk
    pruned_records: int  # records deleted at stable checkpoints since this process started

    def to_json(self) -> dict[str, object]:
        return {
            "stable_height": self.stable_height,
            "stable_state_root": None if self.stable_state_root is None else self.stable_state_root.hex(),
            "interval": self.interval,
            "log_records": self.log_records,
            "pruned_records": self.pruned_records,
        }


class CheckpointWatch:
    def __init__(self, recovered_keys: Iterable[bytes], stable_height: int) -> None:
        self._keys = set(recovered_keys)  # keys of the consensus log as persisted
        self.stable_height = stable_height
        self.pruned_records = 0
        self._deleted_since_stable = 0  # in the current step

    @property
    def log_records(self) -> int:
        return len(self._keys)

    def on_persisted(self, records: Iterable[LogRecord]) -> None:
        for record in records:
            if record.value is not None:
                self._keys.add(record.key)
            elif record.key in self._keys:
                self._keys.discard(record.key)
                self._deleted_since_stable += 1

    def on_stable(self, height: int) -> int | None:
        """The replica's stable height after a step; returns the records the step deleted when it moved
        (the replica prunes in the step that makes a checkpoint stable), else None."""
        if height <= self.stable_height:
            self._deleted_since_stable = 0
            return None
        self.stable_height = height
        deleted, self._deleted_since_stable = self._deleted_since_stable, 0
        self.pruned_records += deleted
        log.info(
            "checkpoint at height %d is stable: deleted %d consensus log records, %d kept",
            height,
            deleted,
            len(self._keys),
            extra={"height": height},
        )
        return deleted
