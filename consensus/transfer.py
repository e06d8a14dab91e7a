"""State transfer bookkeeping: how far the chain is known to go, which fetch is outstanding, whom to ask.

A replica that learns the network committed beyond its own height (a commit certificate it cannot deliver,
f+1 CHECKPOINTs or messages far ahead, a NEW-VIEW whose low height is above ours) or that just restarted asks
one peer at a time for up to FETCH_CHUNK blocks (consensus/catch_up.py). Each served block must be a valid
certified successor of our chain (core/successor.py: link, counts, tx_root and a commit certificate of the
validator set in force; docs/RELIABILITY.md item 9). A peer that serves a bad block is reported and not
asked again for PENALTY_MS. Peer choice rotates deterministically, so no randomness is needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

FETCH_CHUNK = 100  # blocks asked for per request
PENALTY_MS = 60_000  # how long a peer that served a bad block is skipped


@dataclass(slots=True)
class FetchTracker:
    """Which fetch is outstanding, how far we know the chain goes, and which peers to avoid."""

    me: int
    target_height: int = 0  # highest height we have evidence the network committed
    hint_peers: list[int] = field(default_factory=list)  # peers that showed they have target_height
    outstanding_peer: int | None = None
    outstanding_to: int = 0
    penalized_until_ms: dict[int, int] = field(default_factory=dict)
    rotation: int = 0
    probe_retries: int = 0  # peers still to ask when an unanswered probe times out
    far_claims: dict[int, int] = field(default_factory=dict)  # sender -> highest height it signed ahead
    unlinked: set[int] = field(default_factory=set)  # validators with no link to us: not asked until back

    def note_behind(self, height: int, peers: Iterable[int], delivered_height: int) -> None:
        """Evidence that the network committed `height`, held by `peers`."""
        if height > delivered_height:
            self.note_target(height, peers)

    def note_far(self, sender: int, height: int, delivered_height: int, max_faulty: int) -> None:
        """A validator signed a message for `height`, beyond our window. Once f+1 did, at least one honest
        validator signed for the (f+1)-th highest such height, so the height below it is committed."""
        self.far_claims[sender] = max(height, self.far_claims.get(sender, 0))
        claims = sorted(self.far_claims.values(), reverse=True)
        if len(claims) >= max_faulty + 1:
            peers = [s for s, h in self.far_claims.items() if h >= claims[max_faulty]]
            self.note_behind(claims[max_faulty] - 1, peers, delivered_height)

    def prune_far_claims(self, delivered_height: int) -> None:
        self.far_claims = {s: h for s, h in self.far_claims.items() if h > delivered_height}

    def note_target(self, height: int, peers: Iterable[int]) -> bool:
        """Record evidence; True when it raised the target."""
        candidates = [p for p in peers if p != self.me]
        if height > self.target_height:
            self.target_height = height
            self.hint_peers = candidates
            return True
        if height == self.target_height:
            self.hint_peers += [p for p in candidates if p not in self.hint_peers]
        return False

    def penalize(self, peer: int, now_ms: int) -> None:
        self.penalized_until_ms[peer] = now_ms + PENALTY_MS

    def choose_peer(self, now_ms: int, validators: Sequence[int]) -> int | None:
        """Next peer to ask: hinted peers first, then the other `validators`, skipping penalized ones and
        those we know have no link to us."""
        others = [p for p in validators if p != self.me and p not in self.hint_peers]
        order = [
            p
            for p in self.hint_peers + others
            if self.penalized_until_ms.get(p, 0) <= now_ms and p not in self.unlinked
        ]
        if not order:
            return None
        self.rotation += 1
        return order[self.rotation % len(order)]
