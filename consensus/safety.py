"""Double-sign protection: the last vote we signed per height, and the prepared certificates we hold.

Safety rule 1 lives here. `may_vote` refuses a second digest for one (view, height) and anything for an
older view than the one last signed; every vote is logged (a LogRecord the shell persists before the vote
leaves). The prepared certificates are what our VIEW-CHANGE must report. Both survive restarts through the
consensus log (consensus.log) and are pruned below a stable checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator

from consensus import log as clog
from consensus.events import LogRecord


class SafetyLog:
    def __init__(self, votes: dict[int, clog.VoteRecord], prepared: dict[int, clog.PreparedSlot]) -> None:
        self._votes = votes
        self._prepared = prepared

    # --- votes ----------------------------------------------------------------------------------------

    def may_vote(self, view: int, height: int, block_hash: bytes) -> bool:
        """Never a second digest for one (view, height), never an older view."""
        record = self._votes.get(height)
        if record is None or record.view < view:
            return True
        return record.view == view and record.block_hash == block_hash

    def last_vote_view(self, height: int) -> int:
        """The view of the last message we signed for `height` (-1 if none)."""
        record = self._votes.get(height)
        return -1 if record is None else record.view

    def has_voted(self, view: int, height: int, phase: str) -> bool:
        record = self._votes.get(height)
        return (
            record is not None
            and record.view == view
            and clog.PHASE_RANK[record.phase] >= clog.PHASE_RANK[phase]
        )

    def log_vote(self, view: int, height: int, block_hash: bytes, phase: str) -> LogRecord:
        record = clog.VoteRecord(view, phase, block_hash)
        self._votes[height] = record
        return clog.record_vote(height, record)

    def commit_votes_above(self, height: int) -> Iterator[tuple[int, clog.VoteRecord]]:
        """Our COMMIT votes for heights above `height`, ascending (for retransmission)."""
        for h, record in sorted(self._votes.items()):
            if record.phase == clog.PHASE_COMMIT and h > height:
                yield h, record

    # --- prepared certificates ------------------------------------------------------------------------

    def prepared(self, height: int) -> clog.PreparedSlot | None:
        return self._prepared.get(height)

    def put_prepared(self, slot: clog.PreparedSlot) -> LogRecord:
        self._prepared[slot.certificate.height] = slot
        return clog.record_prepared(slot)

    def prepared_slots(self) -> list[clog.PreparedSlot]:
        return list(self._prepared.values())

    def prepared_between(self, low: int, high: int) -> list[clog.PreparedSlot]:
        """Prepared slots for heights in (low, high], ascending."""
        return [s for h, s in sorted(self._prepared.items()) if low < h <= high]

    # --- clean-up -------------------------------------------------------------------------------------

    def prune_through(self, height: int) -> list[LogRecord]:
        """Forget votes and prepared certificates at or below a stable checkpoint; the deletions to persist."""
        old = sorted(h for h in set(self._votes) | set(self._prepared) if h <= height)
        for h in old:
            self._votes.pop(h, None)
            self._prepared.pop(h, None)
        return [record for h in old for record in clog.delete_height_records(h)]
