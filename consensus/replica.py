"""The PBFT replica: a pure state machine from inputs to outputs (the shell contract is in consensus/__init__).

One object per validator. `step(input)` applies one input and returns the outputs for the shell to perform
in order. Inside: the normal case (PRE-PREPARE -> PREPARE -> COMMIT -> ExecuteBlock), checkpoints, view
changes, state transfer and double-sign protection. Safety rests on four rules, each enforced in one place:
  1. `_may_vote` refuses to sign a second digest for one (view, height) and anything for an older view; the
     vote is persisted (Persist output) before the message leaves.
  2. COMMIT for height h is sent only once h-1 is prepared in the same view or settled, so a block that may
     commit always has its whole in-flight prefix reported by a VIEW-CHANGE quorum (consensus.certificate).
  3. A PRE-PREPARE is validated against the chain it extends (all lower heights known) and our own roots.
  4. Blocks are executed only with a 2f+1 COMMIT certificate, strictly in height order and linked by hash.
The normal case, view change and state transfer are mixins in their own modules (consensus.normal_case,
consensus.view_change, consensus.catch_up) over the shared state and plumbing of consensus.replica_base.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from consensus import log as clog
from consensus.catch_up import CatchUpMixin
from consensus.certificate import Verify, get_primary
from consensus.events import (
    BROADCAST,
    TIMER_BATCH,
    TIMER_FETCH,
    TIMER_PROGRESS,
    TIMER_RETRANSMIT,
    TIMER_VIEW_CHANGE,
    BlockExecuted,
    BlocksFetched,
    Input,
    MessageReceived,
    Output,
    PeerConnected,
    Send,
    Tick,
    TimerFired,
    TxReceived,
)
from consensus.messages import (
    Checkpoint,
    Commit,
    Message,
    Prepare,
    PrePrepare,
    ViewChange,
    compute_signing_digest,
)
from consensus.normal_case import NormalCaseMixin
from consensus.pool import CommittedWindow, PendingPool
from consensus.replica_base import (
    EVIDENCE_MAX,
    TIMER_SLACK_MS,
    VIEW_WINDOW,
    Evidence,
    ExecutionRoots,
    ReplicaBase,
    ReplicaConfig,
    Status,
)
from consensus.transfer import FetchTracker
from consensus.view_change import ViewChangeMixin
from core.block import EMPTY_ROOT, Block, CommitCertificate
from core.errors import InvariantBroken
from core.keys import SigningKey, is_valid_signature
from core.quorum import compute_max_faulty, compute_quorum, compute_weak_quorum

# the names the shell and the tests import from here
__all__ = ["Evidence", "ExecutionRoots", "RecoveredState", "Replica", "ReplicaConfig", "Status"]


@dataclass(frozen=True, slots=True)
class RecoveredState:
    """What the shell hands a replica at start: its durable view of the chain and the consensus log."""

    executed_height: int  # last block executed (0 = genesis only)
    roots: Mapping[int, ExecutionRoots]  # at least heights max(0, executed - pipeline_depth + 1) .. executed
    recent_blocks: Sequence[tuple[Block, CommitCertificate]] = ()  # ascending, ending at executed_height;
    # the last tx_validity_blocks_max of them (fewer near genesis), for replay protection and chaining
    log: Mapping[bytes, bytes] = field(default_factory=dict)  # every record Persist wrote and did not delete

    @classmethod
    def genesis(cls, state_root: bytes, results_root: bytes = EMPTY_ROOT) -> RecoveredState:
        return cls(0, {0: ExecutionRoots(state_root, results_root)})


class Replica(NormalCaseMixin, ViewChangeMixin, CatchUpMixin, ReplicaBase):
    """One validator's replica; the parts it is assembled from are listed in consensus.replica_base."""

    def __init__(
        self,
        config: ReplicaConfig,
        key: SigningKey,
        recovered: RecoveredState,
        *,
        verify: Verify = is_valid_signature,
    ) -> None:
        if config.validator_keys[config.index] != key.public_key:
            raise InvariantBroken("the signing key is not the configured validator's key")
        self.cfg = config
        self.p = config.params
        self._key = key
        self._verify_signature = verify
        self.n = len(config.validator_keys)
        self.f = compute_max_faulty(self.n)
        self.quorum = compute_quorum(self.n)
        self.weak_quorum = compute_weak_quorum(self.n)
        self.index = config.index
        self.now_ms = 0
        self._out = []

        persisted = clog.load_persisted_state(recovered.log, params=self.p, validator_count=self.n)
        self.view = persisted.view
        self.status = Status.VIEW_CHANGE if persisted.changing else Status.NORMAL
        self._votes_log = persisted.votes
        self._prepared = persisted.prepared
        self._checkpoint_signed = persisted.checkpoint_height
        self._backoff = 0
        self._probed = False

        # chain and execution
        self.delivered_height = recovered.executed_height
        self.executed_height = recovered.executed_height
        self._roots = dict(recovered.roots)
        self._chain = {}
        self._certs = {}
        self._committed = CommittedWindow(self.p.tx_validity_blocks_max)
        self._pool = PendingPool(max(10 * self.p.block_txs_max, 1000))
        self._unmatched_certs = {}  # proven committed, block not seen yet
        for block, cert in recovered.recent_blocks:
            self._chain[block.header.height] = block
            self._certs[block.header.height] = cert
            self._committed.add_block(block)
        if self.delivered_height > 0 and self.delivered_height not in self._chain:
            raise InvariantBroken("recovered state must include the last executed block")

        # normal case
        self.view_low = 0  # min_s of the current view: every height up to it is proven committed
        self._censor_since_ms = 0
        self._last_progress_ms = 0
        self._accepted = {}  # validated pre-prepares of the current view
        self._pre_prepares = {}  # first one seen per (view, height)
        self._pp_received_ms = {}
        self._rejected = set()
        self._prepares = {}
        self._commits = {}
        self._blocks = {}  # blocks by hash for heights above delivered
        self._certified = {}  # awaiting in-order delivery
        self._far_claims = {}  # sender -> highest height it signed beyond our window

        # checkpoints
        self._checkpoints = {}
        self.stable_checkpoint = 0

        # view change
        self._view_changes = {}
        self._my_view_change = None
        self._new_view = None
        self._new_view_sent_ms = {}  # peer -> when we last showed it our NEW-VIEW

        self._fetch = FetchTracker(self.index, self.n)
        self._timers = {}
        self._evidence = deque(maxlen=EVIDENCE_MAX)

        for slot in self._prepared.values():
            self._blocks[slot.block.block_hash] = slot.block
        if self.status is Status.VIEW_CHANGE:
            if persisted.view_change is not None and persisted.view_change.view == self.view:
                self._my_view_change = persisted.view_change
                self._view_changes[self.view] = {self.index: persisted.view_change}
        elif persisted.new_view is not None and persisted.new_view.view == self.view:
            self._restore_new_view(persisted.new_view)

    # --- public API -----------------------------------------------------------------------------------

    def start(self, now_ms: int) -> list[Output]:
        """Call once after construction: resumes timers, resends a pending VIEW-CHANGE, probes for blocks."""
        self._out = []
        self.now_ms = max(self.now_ms, now_ms)
        self._censor_since_ms = self._last_progress_ms = self.now_ms
        if self.status is Status.VIEW_CHANGE:
            self._send_view_change(refresh=self._my_view_change is None)
        self._probe()
        self._after_step()
        return self._take()

    def step(self, event: Input) -> list[Output]:
        """Apply one input; returns the outputs to perform in order (see the package docstring)."""
        if self.status is Status.HALTED:
            return []
        self._out = []
        if isinstance(event, Tick):
            self.now_ms = max(self.now_ms, event.now_ms)
        elif isinstance(event, MessageReceived):
            self._on_message(event.peer, event.message)
        elif isinstance(event, TxReceived):
            self._on_tx(event)
        elif isinstance(event, TimerFired):
            self._on_timer(event.timer_id)
        elif isinstance(event, BlockExecuted):
            self._on_executed(event)
        elif isinstance(event, BlocksFetched):
            self._on_blocks_fetched(event)
        elif isinstance(event, PeerConnected):
            self._on_peer_connected(event.peer)
        if self.status is not Status.HALTED:
            self._after_step()
        return self._take()

    def get_evidence(self) -> tuple[Evidence, ...]:
        """Pairs of conflicting signed messages seen from one validator (most recent EVIDENCE_MAX)."""
        return tuple(self._evidence)

    @property
    def pending_tx_count(self) -> int:
        return len(self._pool)

    def is_pending(self, tx_id: bytes) -> bool:
        """True while the transaction waits in this replica's pool (the shell checks admission with it)."""
        return tx_id in self._pool

    # --- after each input ---------------------------------------------------------------------------

    def _match_certificates(self) -> None:
        matched = False
        for height, cert in sorted(self._unmatched_certs.items()):
            block = self._blocks.get(cert.block_hash)
            if height <= self.delivered_height or height in self._certified:
                del self._unmatched_certs[height]
            elif block is not None and block.header.height == height:
                del self._unmatched_certs[height]
                self._certified[height] = (block, cert)
                matched = True
        if matched:
            self._deliver()

    def _after_step(self) -> None:
        if self._unmatched_certs:
            self._match_certificates()
            if self.status is Status.HALTED:
                return
        self._refresh_progress_timer()
        behind = self._fetch.target_height > self.delivered_height
        if behind and self._fetch.outstanding_peer is None and TIMER_FETCH not in self._timers:
            self._set_timer(TIMER_FETCH, max(1, self.p.view_timeout_ms // 4))

    # --- inputs ---------------------------------------------------------------------------------------

    def _on_tx(self, event: TxReceived) -> None:
        tx = event.tx
        next_height = self.delivered_height + 1
        if tx.body.chain_id != self.cfg.chain_id or self._committed.contains(tx.tx_id):
            return
        if tx.body.valid_until < next_height:
            return
        if self._pool.add(tx, self.now_ms) and self.status is Status.NORMAL and self.is_primary:
            self._advance()

    def _on_timer(self, timer_id: str) -> None:
        deadline = self._timers.get(timer_id)
        if deadline is None or self.now_ms + TIMER_SLACK_MS < deadline:
            return  # cancelled, or a stale fire of a timer that was set again later
        del self._timers[timer_id]
        if timer_id == TIMER_BATCH:
            self._advance()
        elif timer_id == TIMER_PROGRESS:
            self._on_progress_timeout()
        elif timer_id == TIMER_VIEW_CHANGE and self.status is Status.VIEW_CHANGE:
            self._become_view_change(self.view + 1)
        elif timer_id == TIMER_RETRANSMIT and self.status is Status.VIEW_CHANGE:
            self._send_view_change(refresh=self._is_view_change_stale())
            self._probe()
            self._resend_commits()
        elif timer_id == TIMER_FETCH:
            self._on_fetch_timer()

    def _on_message(self, peer: int, message: Message) -> None:
        if not 0 <= message.sender < self.n:
            self._report(peer, f"message from non-validator index {message.sender}")
            return
        if message.sender == self.index:
            return
        if isinstance(message, PrePrepare):
            self._on_pre_prepare(peer, message)
        elif isinstance(message, Prepare):
            self._on_prepare(peer, message)
        elif isinstance(message, Commit):
            self._on_commit(peer, message)
        elif isinstance(message, Checkpoint):
            self._on_checkpoint(peer, message)
        elif isinstance(message, ViewChange):
            self._on_view_change(peer, message)
        else:
            self._on_new_view(peer, message)

    def _is_in_window(self, peer: int, message: Prepare | Commit | PrePrepare) -> bool:
        """Cheap bounds before any signature check; far-ahead heights count as evidence we are behind."""
        if message.height <= self.delivered_height:
            return False
        if not self.view - VIEW_WINDOW <= message.view <= self.view + VIEW_WINDOW:
            return False
        if message.height > max(self.delivered_height, self.view_low) + self._height_window():
            if self._is_signed_by_sender(message):
                self._note_far(message.sender, message.height)
            return False
        return True

    def _note_far(self, sender: int, height: int) -> None:
        self._far_claims[sender] = max(height, self._far_claims.get(sender, 0))
        claims = sorted(self._far_claims.values(), reverse=True)
        if len(claims) >= self.weak_quorum:
            # at least one honest validator signed for this height, so the one below it is committed
            peers = [s for s, h in self._far_claims.items() if h >= claims[self.f]]
            self._note_behind(claims[self.f] - 1, peers)

    def _on_pre_prepare(self, peer: int, pp: PrePrepare) -> None:
        if pp.sender != get_primary(pp.view, self.n):
            self._report(peer, f"pre-prepare for view {pp.view} from non-primary {pp.sender}")
            return
        if not self._is_in_window(peer, pp):
            return
        if not self._is_signed_by_sender(pp):
            self._report(peer, "pre-prepare signature does not verify")
            return
        key = (pp.view, pp.height)
        existing = self._pre_prepares.get(key)
        if existing is not None:
            if existing.block_hash != pp.block_hash:
                self._record_evidence(existing, pp)
            return
        if pp.block.header.height != pp.height:
            self._report(pp.sender, "pre-prepare block height differs from its sequence number")
            return
        self._pre_prepares[key] = pp
        self._pp_received_ms[key] = self.now_ms
        self._blocks[pp.block_hash] = pp.block
        self._check_commit_quorum(pp.view, pp.height)
        self._advance()

    def _on_prepare(self, peer: int, vote: Prepare) -> None:
        if self._record_vote(peer, vote, self._prepares, "prepare") and vote.view == self.view:
            self._advance()

    def _on_commit(self, peer: int, vote: Commit) -> None:
        if self._record_vote(peer, vote, self._commits, "commit"):
            self._check_commit_quorum(vote.view, vote.height)

    def _record_vote(
        self, peer: int, vote: Prepare | Commit, table: dict[tuple[int, int], dict[int, Any]], kind: str
    ) -> bool:
        """Tally a PREPARE or COMMIT; False when it is out of window, forged, or not new (a conflicting
        second vote from the same sender is kept as evidence)."""
        if not self._is_in_window(peer, vote):
            return False
        if not self._is_signed_by_sender(vote):
            self._report(peer, f"{kind} signature does not verify")
            return False
        votes = table.setdefault((vote.view, vote.height), {})
        existing = votes.get(vote.sender)
        if existing is not None:
            if existing.block_hash != vote.block_hash:
                self._record_evidence(existing, vote)
            return False
        votes[vote.sender] = vote
        return True

    # --- execution and checkpoints --------------------------------------------------------------------

    def _on_executed(self, event: BlockExecuted) -> None:
        height = event.height
        if height != self.executed_height + 1 or height > self.delivered_height:
            raise InvariantBroken(f"executed height {height} out of order (last {self.executed_height})")
        self.executed_height = height
        self._roots[height] = ExecutionRoots(event.state_root, event.results_root)
        # a committed header that carries roots for this height must agree with our execution
        for later in range(height + 1, min(self.delivered_height, height + self.p.pipeline_depth) + 1):
            header = self._chain[later].header
            if header.state_height == height and header.state_root != event.state_root:
                self._halt(
                    f"state divergence at height {height}: our state_root {event.state_root.hex()}, "
                    f"committed block {later} carries {header.state_root.hex()}"
                )
                return
        if height % self.p.checkpoint_interval == 0 and height > self._checkpoint_signed:
            block_hash = self._chain[height].block_hash
            unsigned = Checkpoint(height, block_hash, event.state_root, self.index, b"")
            checkpoint = replace(
                unsigned, signature=self._sign(compute_signing_digest(self.cfg.chain_id, unsigned))
            )
            self._checkpoint_signed = height
            self._persist(clog.record_checkpoint(height, block_hash, event.state_root))
            self._emit(Send(BROADCAST, checkpoint))
            self._checkpoints.setdefault(height, {})[self.index] = checkpoint
            self._check_checkpoint(height)
        self._advance()

    def _on_checkpoint(self, peer: int, checkpoint: Checkpoint) -> None:
        height = checkpoint.height
        if height % self.p.checkpoint_interval != 0 or height <= self.stable_checkpoint:
            return
        if height > self.executed_height + 2 * self.p.checkpoint_interval + self._height_window():
            if self._is_signed_by_sender(checkpoint):
                self._note_far(checkpoint.sender, height + 1)
            return
        if not self._is_signed_by_sender(checkpoint):
            self._report(peer, "checkpoint signature does not verify")
            return
        votes = self._checkpoints.setdefault(height, {})
        existing = votes.get(checkpoint.sender)
        if existing is not None:
            if existing.state_root != checkpoint.state_root or existing.block_hash != checkpoint.block_hash:
                self._record_evidence(existing, checkpoint)
            return
        votes[checkpoint.sender] = checkpoint
        self._check_checkpoint(height)

    def _check_checkpoint(self, height: int) -> None:
        votes = self._checkpoints.get(height, {})
        ours = votes.get(self.index)
        groups: dict[tuple[bytes, bytes], list[int]] = {}
        for sender, vote in votes.items():
            groups.setdefault((vote.block_hash, vote.state_root), []).append(sender)
        if ours is None:
            if height > self.delivered_height and len(votes) >= self.weak_quorum:
                self._note_behind(height, sorted(votes))
            return
        for (block_hash, state_root), senders in sorted(groups.items()):
            if (block_hash, state_root) == (ours.block_hash, ours.state_root):
                if len(senders) >= self.quorum:
                    self._make_checkpoint_stable(height)
            elif len(senders) >= self.quorum:
                self._halt(
                    f"state divergence at checkpoint height {height}: our state_root {ours.state_root.hex()}, "
                    f"validators {senders} have {state_root.hex()} (non-deterministic execution; not forking)"
                )
                return

    def _make_checkpoint_stable(self, height: int) -> None:
        if height <= self.stable_checkpoint:
            return
        old = [h for h in set(self._votes_log) | set(self._prepared) if h <= height]
        self.stable_checkpoint = height
        for h in old:
            self._votes_log.pop(h, None)
            self._prepared.pop(h, None)
        self._persist(*[r for h in sorted(old) for r in clog.delete_height_records(h)])
        self._checkpoints = {h: v for h, v in self._checkpoints.items() if h > height}
