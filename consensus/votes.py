"""The vote book: every signed PRE-PREPARE, PREPARE and COMMIT the replica holds, by (view, height).

It keeps the first PRE-PREPARE seen per slot (with when it arrived), one PREPARE and one COMMIT per sender
per slot, the slots whose PRE-PREPARE we rejected, and the tallies quorums are read from. It answers what a
conflicting second message is, so the caller can keep it as evidence. Signatures are checked before
anything is added. Nothing here decides to vote.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from consensus.messages import Commit, Prepare, PrePrepare

Slot = tuple[int, int]  # (view, height)
V = TypeVar("V", Prepare, Commit)


class _Tally(Generic[V]):
    """One vote per sender per slot."""

    def __init__(self) -> None:
        self._votes: dict[Slot, dict[int, V]] = {}

    def add(self, vote: V) -> tuple[bool, V | None]:
        """(True, None) if the vote is new; (False, earlier) if the sender already voted: `earlier` is its
        first vote when the two name different blocks (evidence), else None."""
        votes = self._votes.setdefault((vote.view, vote.height), {})
        existing = votes.get(vote.sender)
        if existing is not None:
            return False, existing if existing.block_hash != vote.block_hash else None
        votes[vote.sender] = vote
        return True, None

    def put(self, vote: V) -> None:
        self._votes.setdefault((vote.view, vote.height), {})[vote.sender] = vote

    def has_voted(self, view: int, height: int, sender: int) -> bool:
        return sender in self._votes.get((view, height), {})

    def signatures_for(
        self, view: int, height: int, block_hash: bytes, excluding: int
    ) -> list[tuple[int, bytes]]:
        """(sender, signature) of the votes for `block_hash` in the slot, in arrival order."""
        votes = self._votes.get((view, height), {})
        return [(s, v.signature) for s, v in votes.items() if v.block_hash == block_hash and s != excluding]

    def by_block(self, view: int, height: int) -> list[tuple[bytes, list[tuple[int, bytes]]]]:
        """The slot's votes grouped by block hash, in hash order."""
        tally: dict[bytes, list[tuple[int, bytes]]] = {}
        for sender, vote in self._votes.get((view, height), {}).items():
            tally.setdefault(vote.block_hash, []).append((sender, vote.signature))
        return sorted(tally.items())

    def prune(self, low_height: int, min_view: int) -> None:
        self._votes = {k: v for k, v in self._votes.items() if k[1] > low_height and k[0] >= min_view}


class VoteBook:
    def __init__(self) -> None:
        self._pre_prepares: dict[Slot, PrePrepare] = {}  # first one seen per slot (or the NEW-VIEW's)
        self._received_ms: dict[Slot, int] = {}  # when a peer's PRE-PREPARE arrived (clock check)
        self._rejected: set[Slot] = set()  # slots whose PRE-PREPARE we found invalid or may not vote on
        self.prepares: _Tally[Prepare] = _Tally()
        self.commits: _Tally[Commit] = _Tally()

    # --- pre-prepares ---------------------------------------------------------------------------------

    def pre_prepare(self, view: int, height: int) -> PrePrepare | None:
        return self._pre_prepares.get((view, height))

    def put_pre_prepare(self, pp: PrePrepare, received_ms: int | None = None) -> None:
        """Hold `pp` as the slot's pre-prepare; `received_ms` when it came from a peer."""
        slot = (pp.view, pp.height)
        self._pre_prepares[slot] = pp
        if received_ms is not None:
            self._received_ms[slot] = received_ms

    def received_ms(self, view: int, height: int, default: int) -> int:
        return self._received_ms.get((view, height), default)

    def is_rejected(self, view: int, height: int) -> bool:
        return (view, height) in self._rejected

    def reject(self, view: int, height: int) -> None:
        self._rejected.add((view, height))

    def block_hashes(self) -> set[bytes]:
        """Hashes of the blocks the held pre-prepares propose (blocks still worth keeping)."""
        return {pp.block_hash for pp in self._pre_prepares.values()}

    # --- clean-up -------------------------------------------------------------------------------------

    def prune(self, low_height: int, min_view: int) -> None:
        """Forget slots at or below the delivered height and views older than `min_view`."""
        self._pre_prepares = {
            k: v for k, v in self._pre_prepares.items() if k[1] > low_height and k[0] >= min_view
        }
        self._received_ms = {k: v for k, v in self._received_ms.items() if k in self._pre_prepares}
        self._rejected = {k for k in self._rejected if k in self._pre_prepares}
        self.prepares.prune(low_height, min_view)
        self.commits.prune(low_height, min_view)
