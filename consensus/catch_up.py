"""State transfer for the PBFT replica: when we are behind, fetch committed blocks from peers.

The bookkeeping (target height, outstanding request, peer choice and penalties) and the check of a served
block are pure and live in consensus.transfer; this part decides when to probe or fetch and delivers what
proves itself. A mixin of consensus.replica.Replica.
"""

from __future__ import annotations

from collections.abc import Sequence

from consensus.events import TIMER_FETCH, BlocksFetched, FetchBlocks
from consensus.replica_base import ReplicaBase, Status
from consensus.transfer import FETCH_CHUNK, ServedBlockError, validate_served_block


class CatchUpMixin(ReplicaBase):
    """When and from whom to fetch committed blocks; delivering what a peer served."""

    def _note_behind(self, height: int, peers: Sequence[int]) -> None:
        if height > self.delivered_height:
            self._fetch.note_target(height, peers)

    def _on_peer_connected(self, peer: int) -> None:
        """A link came up: whatever the peer sent while it was down is lost, possibly the last blocks of a
        chain that has since fallen quiet, so ask it (a votes-only view of a block never triggers a fetch)."""
        if 0 <= peer < self.n and peer != self.index:
            self._probe(peer)

    def _probe(self, peer: int | None = None) -> None:
        """Ask one peer for blocks after ours: cheap, and it answers 'nothing' when we are not behind."""
        if self._fetch.outstanding_peer is None:
            self._fetch.probe_retries = self.n - 2
            self._issue_fetch(probe=True, peer=peer)

    def _issue_fetch(self, *, probe: bool = False, peer: int | None = None) -> None:
        if peer is None or self._fetch.penalized_until_ms.get(peer, 0) > self.now_ms:
            peer = self._fetch.choose_peer(self.now_ms)
        if peer is None:
            return
        first = self.delivered_height + 1
        target = max(self._fetch.target_height, first)
        last = first + FETCH_CHUNK - 1 if probe else min(target, first + FETCH_CHUNK - 1)
        self._fetch.outstanding_peer = peer
        self._fetch.outstanding_to = last
        self._emit(FetchBlocks(first, last, peer))
        self._set_timer(TIMER_FETCH, self.p.view_timeout_ms)

    def _on_fetch_timer(self) -> None:
        unanswered = self._fetch.outstanding_peer is not None
        self._fetch.outstanding_peer = None  # no answer in time: try someone else
        if self._fetch.target_height > self.delivered_height:
            self._issue_fetch()
        elif unanswered and self._fetch.probe_retries > 0:
            self._fetch.probe_retries -= 1
            self._issue_fetch(probe=True)

    def _on_blocks_fetched(self, event: BlocksFetched) -> None:
        peer = event.peer
        if not 0 <= peer < self.n or peer == self.index:
            return
        before = self.delivered_height
        for block, cert in event.blocks[:FETCH_CHUNK]:
            height = block.header.height
            if height <= self.delivered_height:
                continue
            if height != self.delivered_height + 1:
                break
            try:
                validate_served_block(
                    block,
                    cert,
                    prev_header_hash=self._prev_header_hash(height),
                    chain_id=self.cfg.chain_id,
                    validator_keys=self.cfg.validator_keys,
                    block_txs_max=self.p.block_txs_max,
                )
            except ServedBlockError as exc:
                self._report(peer, f"served a bad block: {exc}")
                self._fetch.penalize(peer, self.now_ms)
                break
            self._note_certificate(cert)
            self._certified[height] = (block, cert)
            self._deliver()
            if self.status is Status.HALTED:
                return
        if self._fetch.outstanding_peer == peer:
            self._fetch.outstanding_peer = None
            self._cancel_timer(TIMER_FETCH)
        if self.delivered_height == before:
            return
        if self._fetch.target_height > self.delivered_height:
            self._issue_fetch()
        else:
            # Our evidence proves only the height below the newest votes we saw; the chain may already be
            # longer and then fall quiet, leaving nothing to tell us. Keep asking until a peer has nothing new.
            self._probe()
