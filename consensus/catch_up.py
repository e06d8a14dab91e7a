"""State transfer for the PBFT replica: when we are behind, fetch committed blocks from peers.

The bookkeeping (target height, outstanding request, peer choice and penalties) and the check of a served
block are pure and live in consensus.transfer; `StateTransfer` decides when to probe or fetch and delivers
what proves itself.
"""

from __future__ import annotations

from consensus.chain import Candidates, ChainWindow
from consensus.config import ReplicaConfig
from consensus.events import TIMER_FETCH, BlocksFetched, FetchBlocks
from consensus.membership import Membership
from consensus.normal_case import NormalCase
from consensus.outbox import Clock, Outbox, Timers
from consensus.transfer import FETCH_CHUNK, FetchTracker
from consensus.view_state import ViewState
from core.block import Block, CommitCertificate
from core.successor import SuccessorError, validate_certified_successor


class StateTransfer:
    """When and from whom to fetch committed blocks; delivering what a peer served."""

    def __init__(
        self,
        *,
        config: ReplicaConfig,
        membership: Membership,
        clock: Clock,
        outbox: Outbox,
        timers: Timers,
        views: ViewState,
        chain: ChainWindow,
        candidates: Candidates,
        fetch: FetchTracker,
        normal: NormalCase,
    ) -> None:
        self.cfg = config
        self.p = config.params
        self.membership = membership
        self.clock = clock
        self.out = outbox
        self.timers = timers
        self.views = views
        self.chain = chain
        self.candidates = candidates
        self.fetch = fetch
        self.normal = normal
        # served blocks beyond what we may deliver yet (the validator set above `executed + margin` is
        # not certain): delivered as execution catches up, instead of being fetched again
        self._served: list[tuple[Block, CommitCertificate]] = []
        self._served_by = -1
        self._served_bad = False  # the last answer held a block that failed its checks

    def on_executed(self) -> None:
        """Execution advanced, and with it how far delivery may go: continue with what was served."""
        if self._served:
            self._deliver_served()
            if not self._served and not self.views.is_halted:
                self._ask_again()

    def _deliver_served(self) -> None:
        """Check and deliver served blocks in order, up to `executed + margin`; keep the rest for later."""
        peer = self._served_by
        while self._served:
            block, cert = self._served[0]
            height = block.header.height
            if height <= self.chain.delivered_height:
                self._served.pop(0)
                continue
            if height != self.chain.delivered_height + 1:
                self._served = []
                return
            if height > self.chain.executed_height + self.membership.margin:
                return  # wait for execution: the sets of the next heights are not certain yet
            try:
                validate_certified_successor(
                    block,
                    cert,
                    self.chain.tip(),
                    chain_id=self.cfg.chain_id,
                    validators=self.membership.at(height),
                    next_validators=self.membership.at(height + 1),
                    params=self.p,
                )
            except SuccessorError as exc:
                self._served_bad = True
                self.out.report(peer, f"served a bad block: {exc}")
                self.fetch.penalize(peer, self.clock.now_ms)
                self._served = []
                return
            self._served.pop(0)
            self.candidates.note_certificate(cert, self.chain.delivered_height)
            self.candidates.certify(block, cert)
            self.normal.deliver()
            if self.views.is_halted:
                return

    def on_peer_connected(self, peer: int) -> None:
        """A link came up: whatever the peer sent while it was down is lost, possibly the last blocks of a
        chain that has since fallen quiet, so ask it (a votes-only view of a block never triggers a fetch)."""
        self.fetch.unlinked.discard(peer)
        self.probe(peer)

    def on_peer_disconnected(self, peer: int) -> None:
        """No link to `peer`: what was asked of it will not be answered, so ask a linked peer now rather than
        at the fetch timeout (a restarted node's first request often names a peer that has not redialled)."""
        if peer in self.fetch.unlinked:
            return
        self.fetch.unlinked.add(peer)
        if self.fetch.outstanding_peer != peer:
            return
        self.fetch.outstanding_peer = None
        self.timers.cancel(TIMER_FETCH)
        self._issue_fetch(probe=self.fetch.target_height <= self.chain.delivered_height)

    def probe(self, peer: int | None = None) -> None:
        """Ask one peer for blocks after ours: cheap, and it answers 'nothing' when we are not behind."""
        if self.fetch.outstanding_peer is None:
            self.fetch.probe_retries = self.membership.at(self.chain.delivered_height + 1).n - 2
            self._issue_fetch(probe=True, peer=peer)

    def after_step(self) -> None:
        """Behind with nothing asked: fetch after a short grace (a peer's COMMITs may still arrive)."""
        behind = self.fetch.target_height > self.chain.delivered_height
        if behind and self.fetch.outstanding_peer is None and TIMER_FETCH not in self.timers:
            self.timers.set(TIMER_FETCH, max(1, self.p.view_timeout_ms // 4))

    def _issue_fetch(self, *, probe: bool = False, peer: int | None = None) -> None:
        now = self.clock.now_ms
        if peer is None or self.fetch.penalized_until_ms.get(peer, 0) > now:
            peer = self.fetch.choose_peer(now, self.membership.at(self.chain.delivered_height + 1).numbers)
        if peer is None:
            return
        first = self.chain.delivered_height + 1
        target = max(self.fetch.target_height, first)
        last = first + FETCH_CHUNK - 1 if probe else min(target, first + FETCH_CHUNK - 1)
        self.fetch.outstanding_peer = peer
        self.fetch.outstanding_to = last
        self.out.emit(FetchBlocks(first, last, peer))
        self.timers.set(TIMER_FETCH, self.p.view_timeout_ms)

    def on_fetch_timer(self) -> None:
        unanswered = self.fetch.outstanding_peer is not None
        self.fetch.outstanding_peer = None  # no answer in time: try someone else
        if self.fetch.target_height > self.chain.delivered_height:
            self._issue_fetch()
        elif unanswered and self.fetch.probe_retries > 0:
            self.fetch.probe_retries -= 1
            self._issue_fetch(probe=True)

    def on_blocks_fetched(self, event: BlocksFetched) -> None:
        peer = event.peer
        if peer == self.cfg.index:
            return
        before = self.chain.delivered_height
        self._served, self._served_by = list(event.blocks[:FETCH_CHUNK]), peer
        self._served_bad = False
        self._deliver_served()
        if self.views.is_halted:
            return
        if self.fetch.outstanding_peer == peer:
            self.fetch.outstanding_peer = None
            self.timers.cancel(TIMER_FETCH)
        if self._served:
            return
        if self.chain.delivered_height > before or self._served_bad:
            # advanced, or served a bad block: ask again (someone else, after a bad one); on a quiet chain
            # nothing else would
            self._ask_again()

    def _ask_again(self) -> None:
        """An answer advanced us: ask for more."""
        if self.fetch.target_height > self.chain.delivered_height:
            self._issue_fetch()
        else:
            # Our evidence proves only the height below the newest votes we saw; the chain may already be
            # longer and then fall quiet, leaving nothing to tell us. Keep asking until a peer has nothing new.
            self.probe()
