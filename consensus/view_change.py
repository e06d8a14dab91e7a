"""Progress and view change for the PBFT replica: the progress timeout, VIEW-CHANGE and NEW-VIEW.

A replica that sees no progress first probes whether it is merely behind, then asks for view v+1; it joins
a view change that f+1 others started; the new primary builds a NEW-VIEW from a quorum of VIEW-CHANGEs and
re-proposes what they require (consensus.certificate.compute_new_view_plan), which every replica checks
before entering the view. `ViewChanger` owns the VIEW-CHANGE and NEW-VIEW messages it holds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from consensus import log as clog
from consensus.catch_up import StateTransfer
from consensus.certificate import (
    NewViewPlan,
    NotYetCheckable,
    ProofError,
    compute_new_view_plan,
    validate_view_change,
)
from consensus.chain import Candidates, ChainWindow
from consensus.config import VIEW_WINDOW, ReplicaConfig
from consensus.events import TIMER_BATCH, TIMER_PROGRESS, TIMER_RETRANSMIT, TIMER_VIEW_CHANGE
from consensus.membership import Membership
from consensus.messages import NewView, PrePrepare, ViewChange
from consensus.normal_case import NormalCase
from consensus.outbox import Clock, EvidenceLog, Outbox, SignatureCheck, Signer, Timers
from consensus.progress import ProgressTimer
from consensus.safety import SafetyLog
from consensus.transfer import FetchTracker
from consensus.view_state import ViewState
from consensus.votes import VoteBook
from core.validators import ValidatorSet


class ViewChanger:
    """The progress timeout, VIEW-CHANGE and NEW-VIEW."""

    def __init__(
        self,
        *,
        config: ReplicaConfig,
        membership: Membership,
        clock: Clock,
        outbox: Outbox,
        timers: Timers,
        signer: Signer,
        signatures: SignatureCheck,
        evidence: EvidenceLog,
        views: ViewState,
        votes: VoteBook,
        chain: ChainWindow,
        candidates: Candidates,
        safety: SafetyLog,
        fetch: FetchTracker,
        progress: ProgressTimer,
        normal: NormalCase,
        transfer: StateTransfer,
        collect_garbage: Callable[[], None],
    ) -> None:
        self.cfg = config
        self.p = config.params
        self.index = config.index
        self.membership = membership
        self.clock = clock
        self.out = outbox
        self.timers = timers
        self.signer = signer
        self.signatures = signatures
        self.evidence = evidence
        self.views = views
        self.votes = votes
        self.chain = chain
        self.candidates = candidates
        self.safety = safety
        self.fetch = fetch
        self.progress = progress
        self.normal = normal
        self.transfer = transfer
        self._collect_garbage = collect_garbage
        self._view_changes: dict[int, dict[int, ViewChange]] = {}  # view -> sender -> its VIEW-CHANGE
        self._mine: ViewChange | None = None  # our VIEW-CHANGE for the view we are changing to
        self._new_view: NewView | None = None  # the NEW-VIEW of the view we are in
        self._new_view_shown_ms: dict[int, int] = {}  # peer -> when we last showed it our NEW-VIEW
        # sender -> (peer, its highest NEW-VIEW) that named heights whose sets we did not know yet: checked
        # again once we executed that far (a restarted replica is shown a NEW-VIEW once, on link-up)
        self._set_aside: dict[int, tuple[int, NewView]] = {}

    def _validators(self) -> ValidatorSet:
        """The set that runs the view change: the current epoch's, in force above our delivered height."""
        return self.membership.at(self.chain.delivered_height + 1)

    def _is_member(self) -> bool:
        return self._validators().key_of(self.index) == self.signer.public_key

    def start_epoch(self) -> None:
        """The previous epoch ended: its view changes, and what we said in them, are moot."""
        for timer_id in (TIMER_VIEW_CHANGE, TIMER_RETRANSMIT):
            self.timers.cancel(timer_id)
        self._view_changes = {}
        self._mine = None
        self._new_view = None
        self._new_view_shown_ms = {}
        self._set_aside = {}
        self.out.persist(clog.record_view(self.views.epoch, self.views.view, False))

    # --- restart --------------------------------------------------------------------------------------

    def restore(self, view_change: ViewChange | None, new_view: NewView | None) -> None:
        """Pick up our persisted VIEW-CHANGE (while changing view) or NEW-VIEW (in the normal case)."""
        view = self.views.view
        if self.views.is_changing:
            if view_change is not None and view_change.view == view:
                self._mine = view_change
                self._view_changes[view] = {self.index: view_change}
        elif new_view is not None and new_view.view == view:
            self._restore_new_view(new_view)

    def resume(self) -> None:
        """At start: resend a VIEW-CHANGE we were waiting on."""
        if self.views.is_changing:
            self._send_view_change(refresh=self._mine is None)

    def prune(self) -> None:
        self._view_changes = {v: m for v, m in self._view_changes.items() if v >= self.views.view}

    # --- timers ---------------------------------------------------------------------------------------

    def on_progress_timeout(self) -> None:
        if not self.views.is_normal:
            return
        if not self._is_member():
            # a validator not (or not yet, or no longer) in the set does not depose anyone: it follows
            self.progress.on_probe()
            self.transfer.probe()
            return
        if not self.progress.is_second_expiry() or self._is_catching_up():
            # first ask whether we are merely behind: a lagging replica should fetch, not depose the primary
            self.progress.on_probe()
            self.transfer.probe()
            self.normal.resend_commits()
            return
        self._become_view_change(self.views.view + 1)

    def _is_catching_up(self) -> bool:
        """Behind the network (it committed above our delivered height) and still delivering: the deadlines
        then wait on blocks we have not fetched yet (the transactions we hold are in them), which says
        nothing about the primary. Alone in that view change we would stop voting while the others go on."""
        behind = self.fetch.target_height > self.chain.delivered_height
        return behind and self.progress.has_delivered_recently()

    def on_view_change_timeout(self) -> None:
        if self.views.is_changing:
            self._become_view_change(self.views.view + 1)

    def on_retransmit(self) -> None:
        if self.views.is_changing:
            self._send_view_change(refresh=self._is_mine_stale())
            self.transfer.probe()
            self.normal.resend_commits()

    # --- asking for a new view ------------------------------------------------------------------------

    def _become_view_change(self, new_view: int) -> None:
        if (new_view <= self.views.view and self.views.is_changing) or not self._is_member():
            return
        self.progress.on_view_change()
        self.views.become_view_change(new_view)
        self.normal.clear_accepted()
        self._new_view = None
        self.timers.cancel(TIMER_BATCH)
        self.timers.cancel(TIMER_PROGRESS)
        self.timers.cancel(TIMER_VIEW_CHANGE)
        self._mine = None
        self._send_view_change(refresh=True)
        self._collect_garbage()
        self._check_view_change_quorum()

    def _is_mine_stale(self) -> bool:
        mine = self._mine
        if mine is None:
            return True
        return self.chain.delivered_height > (0 if mine.stable is None else mine.stable.height)

    def _make_view_change(self) -> ViewChange:
        """Report the certificate of our last delivered block (not a higher one we merely learned: the
        NEW-VIEW's low mark must be a height honest replicas can serve) and what we prepared above it."""
        low = self.chain.delivered_height
        high = low + self.p.pipeline_depth
        last = self.membership.last_height(self.views.epoch)
        if last is not None:
            high = min(high, last)  # nothing of the next epoch belongs in this one's view change
        slots = self.safety.prepared_between(low, high)
        return self.signer.sign(
            ViewChange(
                view=self.views.view,
                sender=self.index,
                stable=self.chain.certificate(low) if low > 0 else None,
                prepared=tuple(s.certificate for s in slots),
                signature=b"",
                blocks=tuple(s.block for s in slots),
                epoch=self.views.epoch,
            )
        )

    def _send_view_change(self, *, refresh: bool) -> None:
        if refresh or self._mine is None:
            self._mine = self._make_view_change()
            self.out.persist(
                clog.record_view(self.views.epoch, self.views.view, True), clog.record_view_change(self._mine)
            )
        self._view_changes.setdefault(self.views.view, {})[self.index] = self._mine
        self.out.broadcast(self._mine)
        self.timers.set(TIMER_RETRANSMIT, self.p.view_timeout_ms)

    # --- VIEW-CHANGE messages ---------------------------------------------------------------------------

    def on_view_change(self, peer: int, vc: ViewChange) -> None:
        if vc.epoch != self.views.epoch:
            return  # of an epoch we left (the sender catches up) or have not reached (so shall we)
        view = self.views.view
        if vc.view < view or (vc.view == view and self.views.is_normal):
            self._help_lagging_peer(peer, vc)
            return
        if vc.view > view + VIEW_WINDOW:
            return
        existing = self._view_changes.get(vc.view, {}).get(vc.sender)
        if existing is not None and existing.signature == vc.signature:
            return
        try:
            self._validate_view_change(vc)
        except NotYetCheckable:
            return
        except ProofError as exc:
            self.out.report(peer, f"invalid view change: {exc}")
            return
        self._view_changes.setdefault(vc.view, {})[vc.sender] = vc
        for block in vc.blocks:
            self.candidates.add_if_new(block)
        if vc.stable is not None:
            self.candidates.note_certificate(vc.stable, self.chain.delivered_height)
            self.fetch.note_behind(vc.stable.height, [vc.sender], self.chain.delivered_height)
        self._check_join()
        self._check_view_change_quorum()

    def _validate_view_change(self, vc: ViewChange) -> None:
        validate_view_change(
            vc, self.cfg.chain_id, self._validators(), self.membership, self.signatures.verify
        )

    def _help_lagging_peer(self, peer: int, vc: ViewChange) -> None:
        """A peer still asks for a view we already run: show it the NEW-VIEW."""
        if peer == vc.sender:
            self._show_new_view(peer)

    def on_peer_connected(self, peer: int) -> None:
        """A link came up, typically because the peer restarted: it may still be in an older view, where
        it would follow the chain but never vote. Show it where we are: our NEW-VIEW (which proves itself),
        or our VIEW-CHANGE while we are changing view."""
        if self.views.is_changing and self._mine is not None:
            self.out.send(peer, self._mine)
        else:
            self._show_new_view(peer)

    def _show_new_view(self, peer: int) -> None:
        """Send our NEW-VIEW to a peer, at most once per view timeout."""
        if not self.views.is_normal or self._new_view is None:
            return
        last = self._new_view_shown_ms.get(peer)
        if last is not None and self.clock.now_ms - last < self.p.view_timeout_ms:
            return
        self._new_view_shown_ms[peer] = self.clock.now_ms
        self.out.send(peer, self._new_view)

    def _check_join(self) -> None:
        """Join a view change that f+1 others started for a higher view (at least one of them is honest)."""
        highest: dict[int, int] = {}
        for view, senders in self._view_changes.items():
            if view <= self.views.view:
                continue
            for sender in senders:
                if sender != self.index:
                    highest[sender] = max(view, highest.get(sender, 0))
        validators = self._validators()
        if len(highest) >= validators.weak_quorum:
            target = sorted(highest.values(), reverse=True)[validators.f]
            if target > self.views.view:
                self._become_view_change(target)

    def _check_view_change_quorum(self) -> None:
        if not self.views.is_changing:
            return
        view = self.views.view
        validators = self._validators()
        # the NEW-VIEW timer runs once a quorum asks for this view or a later one: validators split over
        # views (some moved on after an earlier quorum) must still time out and meet in a higher view
        at_or_above = {s for v, senders in self._view_changes.items() if v >= view for s in senders}
        if len(at_or_above) >= validators.quorum and TIMER_VIEW_CHANGE not in self.timers:
            self.timers.set(TIMER_VIEW_CHANGE, self.progress.timeout_ms())
        is_primary = validators.primary(view) == self.index and self._is_member()
        if is_primary and len(self._view_changes.get(view, {})) >= validators.quorum:
            self._send_new_view()

    # --- NEW-VIEW ---------------------------------------------------------------------------------------

    def _send_new_view(self) -> None:
        view = self.views.view
        senders = self._view_changes[view]
        chosen = [senders[s] for s in sorted(senders)][: self._validators().quorum]
        plan = self._plan(chosen)
        by_hash = {b.block_hash: b for vc in chosen for b in vc.blocks}
        by_hash.update({s.block.block_hash: s.block for s in self.safety.prepared_slots()})
        pre_prepares = []
        records = []
        for offset, header in enumerate(plan.reproposals):
            height = plan.low_height + 1 + offset
            block = by_hash[header.block_hash]
            self.candidates.add_if_new(block)  # re-proposed by ids: we serve its transactions
            pre_prepares.append(self.signer.sign(PrePrepare.of_block(view, block, self.index)))
            records.append(self.safety.log_vote(view, height, header.block_hash, clog.PHASE_PRE_PREPARE))
        stripped = tuple(replace(vc, blocks=()) for vc in chosen)
        new_view = self.signer.sign(
            NewView(view, self.index, stripped, tuple(pre_prepares), b"", epoch=self.views.epoch)
        )
        self.out.persist(*records)
        self.out.broadcast(new_view)
        self._enter_view(new_view, plan)

    def on_new_view(self, peer: int, nv: NewView) -> None:
        # no upper bound on the view: a NEW-VIEW proves itself (2f+1 VIEW-CHANGEs), and a replica that
        # slept through several views catches up with it
        if nv.epoch != self.views.epoch:
            return
        if nv.view < self.views.view or (nv.view == self.views.view and self.views.is_normal):
            return
        validators = self._validators()
        if nv.sender != validators.primary(nv.view) or not self.signatures.is_signed_by(
            nv, validators.key(nv.sender)
        ):
            self.out.report(peer, "new-view not signed by the view's primary")
            return
        try:
            problem = self._check_new_view(nv)
        except NotYetCheckable:
            # it names heights whose validator set we do not know yet: we are behind. Nobody shows it to
            # us again, so keep it (one per sender, the highest view) and check it once we caught up.
            kept = self._set_aside.get(nv.sender)
            if kept is None or kept[1].view < nv.view:
                self._set_aside[nv.sender] = (peer, nv)
            return
        if problem:
            self.out.report(nv.sender, f"invalid new-view for view {nv.view}: {problem}")
            return
        self._enter_view(nv, self._plan(nv.view_changes))

    def on_executed(self) -> None:
        """Execution advanced: check again the NEW-VIEWs set aside whose heights we now know."""
        for sender, (peer, nv) in sorted(self._set_aside.items(), key=lambda item: item[1][1].view):
            if nv.view < self.views.view or (nv.view == self.views.view and self.views.is_normal):
                del self._set_aside[sender]
            elif all(self.membership.is_known(height) for height in _named_heights(nv)):
                del self._set_aside[sender]
                self.on_new_view(peer, nv)

    def _check_new_view(self, nv: NewView) -> str:
        """'' if valid, else why not; NotYetCheckable if it names heights whose set is not certain yet."""
        validators = self._validators()
        senders = [vc.sender for vc in nv.view_changes]
        if len(set(senders)) != len(senders) or len(senders) < validators.quorum:
            return "needs view changes from a quorum of distinct validators"
        known = self._view_changes.get(nv.view, {})
        for vc in nv.view_changes:
            if vc.view != nv.view or vc.epoch != nv.epoch:
                return "contains a view change for another view"
            mine = known.get(vc.sender)
            if mine is not None and mine.signature == vc.signature:
                continue  # verified when it arrived
            try:
                self._validate_view_change(vc)
            except NotYetCheckable:
                raise
            except ProofError as exc:
                return str(exc)
        plan = self._plan(nv.view_changes)
        if [pp.block_hash for pp in nv.pre_prepares] != [h.block_hash for h in plan.reproposals]:
            return "re-proposals differ from what the view changes require"
        for offset, pp in enumerate(nv.pre_prepares):
            if pp.view != nv.view or pp.sender != nv.sender or pp.height != plan.low_height + 1 + offset:
                return "a re-proposal has the wrong view, sender or height"
            if not self.signatures.is_signed_by(pp, validators.key(pp.sender)):
                return "a re-proposal signature does not verify"
        return ""

    def _plan(self, view_changes: Sequence[ViewChange]) -> NewViewPlan:
        f = self._validators().f
        last = self.membership.last_height(self.views.epoch)
        return compute_new_view_plan(view_changes, self.cfg.genesis_hash, self.p.pipeline_depth, f, last)

    def _enter_view(self, nv: NewView, plan: NewViewPlan) -> None:
        self.out.persist(clog.record_view(nv.epoch, nv.view, False), clog.record_new_view(nv))
        self._restore_new_view(nv)
        for timer_id in (TIMER_VIEW_CHANGE, TIMER_RETRANSMIT):
            self.timers.cancel(timer_id)
        self.progress.restart()
        self._new_view_shown_ms = {}
        for cert in (plan.low_certificate, plan.top_certificate):
            if cert is not None and cert.height > self.chain.delivered_height:
                self.candidates.note_certificate(cert, self.chain.delivered_height)
                holders = [
                    vc.sender
                    for vc in nv.view_changes
                    if vc.stable is not None and vc.stable.height >= cert.height
                ]
                self.fetch.note_behind(cert.height, holders, self.chain.delivered_height)
        self._collect_garbage()
        self.normal.advance()

    def _restore_new_view(self, nv: NewView) -> None:
        """Adopt a verified (or our own persisted) NEW-VIEW: its view, low height and re-proposals."""
        plan = self._plan(nv.view_changes)
        self.views.become_normal(nv.view, plan.low_height)
        self._new_view = nv
        self.normal.clear_accepted()
        self._mine = None
        for pp in nv.pre_prepares:
            existing = self.votes.pre_prepare(pp.view, pp.height)
            if existing is not None and existing.block_hash != pp.block_hash:
                self.evidence.record(existing, pp)
            self.votes.put_pre_prepare(pp)
            self.normal.ensure_block(pp)
            if pp.height > self.chain.delivered_height and self.safety.may_vote(
                nv.view, pp.height, pp.block_hash
            ):
                self.normal.accept(pp)


def _named_heights(nv: NewView) -> list[int]:
    """The heights whose validator sets checking a NEW-VIEW needs (consensus.certificate)."""
    heights = [0 if vc.stable is None else vc.stable.height for vc in nv.view_changes]
    heights += [cert.height for vc in nv.view_changes for cert in vc.prepared]
    return heights
