"""Progress and view change for the PBFT replica: the progress timer, VIEW-CHANGE and NEW-VIEW.

A replica that sees no progress first probes whether it is merely behind, then asks for view v+1; it joins
a view change that f+1 others started; the new primary builds a NEW-VIEW from a quorum of VIEW-CHANGEs and
re-proposes what they require (consensus.certificate.compute_new_view_plan), which every replica checks
before entering the view. A mixin of consensus.replica.Replica.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from consensus import log as clog
from consensus.certificate import (
    NewViewPlan,
    ProofError,
    compute_new_view_plan,
    get_primary,
    validate_view_change,
)
from consensus.events import (
    BROADCAST,
    TIMER_BATCH,
    TIMER_PROGRESS,
    TIMER_RETRANSMIT,
    TIMER_VIEW_CHANGE,
    Send,
)
from consensus.messages import NewView, PrePrepare, ViewChange, compute_signing_digest
from consensus.replica_base import BACKOFF_MAX, VIEW_WINDOW, ReplicaBase, Status


class ViewChangeMixin(ReplicaBase):
    """The progress timer, VIEW-CHANGE and NEW-VIEW."""

    def _has_work(self) -> bool:
        return bool(
            any(h > self.delivered_height for h in self._accepted)
            or self._certified
            or self.view_low > self.delivered_height
        )

    def _refresh_progress_timer(self) -> None:
        if self.status is not Status.NORMAL:
            self._cancel_timer(TIMER_PROGRESS)
            return
        timeout = self._timeout_ms()
        deadlines = []
        if self._has_work():
            deadlines.append(self._last_progress_ms + timeout)
        oldest = self._pool.oldest()
        if oldest is not None:
            deadlines.append(max(oldest.arrival_ms, self._censor_since_ms) + timeout)
        if not deadlines:
            self._cancel_timer(TIMER_PROGRESS)
            return
        deadline = max(min(deadlines), self.now_ms + 1)
        if self._timers.get(TIMER_PROGRESS) != deadline:
            self._set_timer(TIMER_PROGRESS, deadline - self.now_ms)

    def _on_progress_timeout(self) -> None:
        if self.status is not Status.NORMAL:
            return
        if not self._probed:
            # first ask whether we are merely behind: a lagging replica should fetch, not depose the primary
            self._probed = True
            self._probe()
            self._resend_commits()
            # the next deadline is half a timeout away, for stalled blocks and waiting transactions alike
            self._last_progress_ms = self.now_ms - self._timeout_ms() // 2
            self._censor_since_ms = max(self._censor_since_ms, self._last_progress_ms)
            return
        self._become_view_change(self.view + 1)

    def _become_view_change(self, new_view: int) -> None:
        if new_view <= self.view and self.status is Status.VIEW_CHANGE:
            return
        self._backoff = min(self._backoff + 1, BACKOFF_MAX + 1)
        self.view = new_view
        self.status = Status.VIEW_CHANGE
        self._accepted = {}
        self._new_view = None
        self._cancel_timer(TIMER_BATCH)
        self._cancel_timer(TIMER_PROGRESS)
        self._cancel_timer(TIMER_VIEW_CHANGE)
        self._my_view_change = None
        self._send_view_change(refresh=True)
        self._collect_garbage()
        self._check_view_change_quorum()

    def _is_view_change_stale(self) -> bool:
        mine = self._my_view_change
        if mine is None:
            return True
        return self.delivered_height > (0 if mine.stable is None else mine.stable.height)

    def _make_view_change(self) -> ViewChange:
        """Report the certificate of our last delivered block (not a higher one we merely learned: the
        NEW-VIEW's low mark must be a height honest replicas can serve) and what we prepared above it."""
        low = self.delivered_height
        slots = [s for h, s in sorted(self._prepared.items()) if low < h <= low + self.p.pipeline_depth]
        unsigned = ViewChange(
            view=self.view,
            sender=self.index,
            stable=self._certs[low] if low > 0 else None,
            prepared=tuple(s.certificate for s in slots),
            signature=b"",
            blocks=tuple(s.block for s in slots),
        )
        return replace(unsigned, signature=self._sign(compute_signing_digest(self.cfg.chain_id, unsigned)))

    def _send_view_change(self, *, refresh: bool) -> None:
        if refresh or self._my_view_change is None:
            self._my_view_change = self._make_view_change()
            self._persist(clog.record_view(self.view, True), clog.record_view_change(self._my_view_change))
        self._view_changes.setdefault(self.view, {})[self.index] = self._my_view_change
        self._emit(Send(BROADCAST, self._my_view_change))
        self._set_timer(TIMER_RETRANSMIT, self.p.view_timeout_ms)

    def _on_view_change(self, peer: int, vc: ViewChange) -> None:
        if vc.view < self.view or (vc.view == self.view and self.status is Status.NORMAL):
            self._help_lagging_peer(peer, vc)
            return
        if vc.view > self.view + VIEW_WINDOW:
            return
        existing = self._view_changes.get(vc.view, {}).get(vc.sender)
        if existing is not None and existing.signature == vc.signature:
            return
        try:
            validate_view_change(vc, self.cfg.chain_id, self.cfg.validator_keys, self._verify_signature)
        except ProofError as exc:
            self._report(peer, f"invalid view change: {exc}")
            return
        self._view_changes.setdefault(vc.view, {})[vc.sender] = vc
        for block in vc.blocks:
            self._blocks.setdefault(block.block_hash, block)
        if vc.stable is not None:
            self._note_certificate(vc.stable)
            self._note_behind(vc.stable.height, [vc.sender])
        self._check_join()
        self._check_view_change_quorum()

    def _help_lagging_peer(self, peer: int, vc: ViewChange) -> None:
        """A peer still asks for a view we already run: show it the NEW-VIEW (once per view and peer)."""
        if self.status is not Status.NORMAL or self._new_view is None or peer != vc.sender:
            return
        last = self._new_view_sent_ms.get(peer)
        if last is not None and self.now_ms - last < self.p.view_timeout_ms:
            return
        self._new_view_sent_ms[peer] = self.now_ms
        self._emit(Send(peer, self._new_view))

    def _check_join(self) -> None:
        """Join a view change that f+1 others started for a higher view (at least one of them is honest)."""
        highest: dict[int, int] = {}
        for view, senders in self._view_changes.items():
            if view <= self.view:
                continue
            for sender in senders:
                if sender != self.index:
                    highest[sender] = max(view, highest.get(sender, 0))
        if len(highest) >= self.weak_quorum:
            target = sorted(highest.values(), reverse=True)[self.f]
            if target > self.view:
                self._become_view_change(target)

    def _check_view_change_quorum(self) -> None:
        if self.status is not Status.VIEW_CHANGE:
            return
        # the NEW-VIEW timer runs once a quorum asks for this view or a later one: validators split over
        # views (some moved on after an earlier quorum) must still time out and meet in a higher view
        at_or_above = {s for v, senders in self._view_changes.items() if v >= self.view for s in senders}
        if len(at_or_above) >= self.quorum and TIMER_VIEW_CHANGE not in self._timers:
            self._set_timer(TIMER_VIEW_CHANGE, self._timeout_ms())
        if self.is_primary and len(self._view_changes.get(self.view, {})) >= self.quorum:
            self._send_new_view()

    def _send_new_view(self) -> None:
        senders = self._view_changes[self.view]
        chosen = [senders[s] for s in sorted(senders)][: self.quorum]
        plan = self._plan(chosen)
        by_hash = {b.block_hash: b for vc in chosen for b in vc.blocks}
        by_hash.update({s.block.block_hash: s.block for s in self._prepared.values()})
        pre_prepares = []
        records = []
        for offset, header in enumerate(plan.reproposals):
            height = plan.low_height + 1 + offset
            unsigned = PrePrepare(self.view, height, by_hash[header.block_hash], self.index, b"")
            pre_prepares.append(
                replace(unsigned, signature=self._sign(compute_signing_digest(self.cfg.chain_id, unsigned)))
            )
            records.append(self._log_vote(height, header.block_hash, clog.PHASE_PRE_PREPARE))
        unsigned_nv = NewView(
            self.view, self.index, tuple(replace(vc, blocks=()) for vc in chosen), tuple(pre_prepares), b""
        )
        new_view = replace(
            unsigned_nv, signature=self._sign(compute_signing_digest(self.cfg.chain_id, unsigned_nv))
        )
        self._persist(*records)
        self._emit(Send(BROADCAST, new_view))
        self._enter_view(new_view, plan)

    def _on_new_view(self, peer: int, nv: NewView) -> None:
        # no upper bound on the view: a NEW-VIEW proves itself (2f+1 VIEW-CHANGEs), and a replica that
        # slept through several views catches up with it
        if nv.view < self.view or (nv.view == self.view and self.status is Status.NORMAL):
            return
        if nv.sender != get_primary(nv.view, self.n) or not self._is_signed_by_sender(nv):
            self._report(peer, "new-view not signed by the view's primary")
            return
        problem = self._check_new_view(nv)
        if problem:
            self._report(nv.sender, f"invalid new-view for view {nv.view}: {problem}")
            return
        self._enter_view(nv, self._plan(nv.view_changes))

    def _check_new_view(self, nv: NewView) -> str:
        senders = [vc.sender for vc in nv.view_changes]
        if len(set(senders)) != len(senders) or len(senders) < self.quorum:
            return "needs view changes from a quorum of distinct validators"
        known = self._view_changes.get(nv.view, {})
        for vc in nv.view_changes:
            if vc.view != nv.view:
                return "contains a view change for another view"
            mine = known.get(vc.sender)
            if mine is not None and mine.signature == vc.signature:
                continue  # verified when it arrived
            try:
                validate_view_change(vc, self.cfg.chain_id, self.cfg.validator_keys, self._verify_signature)
            except ProofError as exc:
                return str(exc)
        plan = self._plan(nv.view_changes)
        if [pp.block_hash for pp in nv.pre_prepares] != [h.block_hash for h in plan.reproposals]:
            return "re-proposals differ from what the view changes require"
        for offset, pp in enumerate(nv.pre_prepares):
            if pp.view != nv.view or pp.sender != nv.sender or pp.height != plan.low_height + 1 + offset:
                return "a re-proposal has the wrong view, sender or height"
            if not self._is_signed_by_sender(pp):
                return "a re-proposal signature does not verify"
        return ""

    def _plan(self, view_changes: Sequence[ViewChange]) -> NewViewPlan:
        return compute_new_view_plan(view_changes, self.cfg.genesis_hash, self.p.pipeline_depth, self.f)

    def _enter_view(self, nv: NewView, plan: NewViewPlan) -> None:
        self._persist(clog.record_view(nv.view, False), clog.record_new_view(nv))
        self._restore_new_view(nv)
        for timer_id in (TIMER_VIEW_CHANGE, TIMER_RETRANSMIT):
            self._cancel_timer(timer_id)
        self._censor_since_ms = self._last_progress_ms = self.now_ms
        self._probed = False
        self._new_view_sent_ms = {}
        for cert in (plan.low_certificate, plan.top_certificate):
            if cert is not None and cert.height > self.delivered_height:
                self._note_certificate(cert)
                holders = [
                    vc.sender
                    for vc in nv.view_changes
                    if vc.stable is not None and vc.stable.height >= cert.height
                ]
                self._note_behind(cert.height, holders)
        self._collect_garbage()
        self._advance()

    def _restore_new_view(self, nv: NewView) -> None:
        """Adopt a verified (or our own persisted) NEW-VIEW: its view, low height and re-proposals."""
        plan = self._plan(nv.view_changes)
        self.view = nv.view
        self.status = Status.NORMAL
        self.view_low = plan.low_height
        self._new_view = nv
        self._accepted = {}
        self._my_view_change = None
        for pp in nv.pre_prepares:
            key = (pp.view, pp.height)
            existing = self._pre_prepares.get(key)
            if existing is not None and existing.block_hash != pp.block_hash:
                self._record_evidence(existing, pp)
            self._pre_prepares[key] = pp
            self._blocks[pp.block_hash] = pp.block
            if pp.height > self.delivered_height and self._may_vote(
                pp.height, pp.block_hash, clog.PHASE_PREPARE
            ):
                self._accepted[pp.height] = pp
