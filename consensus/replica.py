"""The PBFT replica: a pure state machine from inputs to outputs (the shell contract is in consensus/__init__).

One object per validator. `step(input)` applies one input and returns the outputs for the shell to perform
in order. Safety rests on four rules, each enforced in one place:
  1. `SafetyLog.may_vote` refuses to sign a second digest for one (view, height) and anything for an older
     view; the vote is persisted (Persist output) before the message leaves.
  2. COMMIT for height h is sent only once h-1 is prepared in the same view or settled
     (`NormalCase._is_settled`), so a block that may commit always has its whole in-flight prefix reported
     by a VIEW-CHANGE quorum (consensus.certificate).
  3. A PRE-PREPARE is validated against the chain it extends (all lower heights known) and our own roots
     (`NormalCase._find_fault` and `_find_mismatch`).
  4. Blocks are executed only with a 2f+1 COMMIT certificate, strictly in height order and linked by hash
     (`NormalCase.deliver`).

`Replica` is a thin front: it builds the parts, routes each input to the part it concerns and runs the
checks due after every input. The parts own their state and each other's only through their methods:
  state    ViewState (view, phase, low mark), VoteBook (pre-prepares and votes), ChainWindow (delivered
           chain, roots, replay window), Candidates (blocks above it), SafetyLog (double-sign protection),
           PendingPool, FetchTracker, ProgressTimer, Membership;
  logic    NormalCase, ViewChanger, StateTransfer, Checkpoints;
  plumbing Clock, Outbox, Timers, Signer, SignatureCheck, EvidenceLog (consensus.outbox).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from consensus import log as clog
from consensus.assembly import BlockAssembly
from consensus.catch_up import StateTransfer
from consensus.certificate import Verify
from consensus.chain import Candidates, ChainWindow
from consensus.checkpoints import Checkpoints
from consensus.config import EVIDENCE_MAX, TIMER_SLACK_MS, VIEW_WINDOW, ExecutionRoots, ReplicaConfig
from consensus.events import (
    REFUSED_EXPIRED,
    REFUSED_FULL,
    REFUSED_REPLAY,
    REFUSED_WRONG_CHAIN,
    TIMER_BATCH,
    TIMER_FETCH,
    TIMER_PROGRESS,
    TIMER_RETRANSMIT,
    TIMER_TX_FETCH,
    TIMER_VIEW_CHANGE,
    BlockExecuted,
    BlocksFetched,
    Input,
    MessageReceived,
    Output,
    PeerConnected,
    PeerDisconnected,
    Tick,
    TimerFired,
    TxReceived,
    TxRefused,
    TxsFetched,
)
from consensus.membership import Membership
from consensus.messages import Checkpoint, Commit, Message, Prepare, PrePrepare, ViewChange
from consensus.normal_case import NormalCase
from consensus.outbox import Clock, Evidence, EvidenceLog, Outbox, SignatureCheck, Signer, Timers
from consensus.pool import PendingPool, PoolLimits
from consensus.progress import ProgressTimer
from consensus.safety import SafetyLog
from consensus.transfer import FetchTracker
from consensus.view_change import ViewChanger
from consensus.view_state import Status, ViewState
from consensus.votes import VoteBook
from core.block import EMPTY_ROOT, Block, CommitCertificate
from core.keys import SigningKey, is_valid_signature
from core.tx import SignedTx
from core.validators import ValidatorSet

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
    # every validator-set change the executed chain approved: (height approved at, the new set), ascending
    validator_changes: Sequence[tuple[int, ValidatorSet]] = ()

    @classmethod
    def genesis(cls, state_root: bytes, results_root: bytes = EMPTY_ROOT) -> RecoveredState:
        return cls(0, {0: ExecutionRoots(state_root, results_root)})


class Replica:
    """One validator's replica; the parts it is made of are listed in the module docstring."""

    def __init__(
        self,
        config: ReplicaConfig,
        key: SigningKey,
        recovered: RecoveredState,
        *,
        verify: Verify = is_valid_signature,
        pool_limits: PoolLimits | None = None,
    ) -> None:
        genesis_keys = config.validator_keys
        # (the key is not checked against genesis: a validator added later, or whose key was replaced, is a
        # member only where the chain's sets name its number with this key; elsewhere it votes for nothing)
        self.cfg = config
        p = config.params
        self.membership = Membership(
            ValidatorSet.of_keys(genesis_keys),
            checkpoint_interval=p.checkpoint_interval,
            pipeline_depth=p.pipeline_depth,
            executed_height=recovered.executed_height,
            approvals=recovered.validator_changes,
        )
        persisted = clog.load_persisted_state(recovered.log, params=p)

        self._clock = Clock()
        self._out = Outbox()
        self._timers = Timers(self._clock, self._out, TIMER_SLACK_MS)
        self._evidence = EvidenceLog(self._out, EVIDENCE_MAX)
        signer = Signer(config.chain_id, key)
        self._signer_key = key.public_key
        signatures = SignatureCheck(config.chain_id, verify)
        status = Status.VIEW_CHANGE if persisted.changing else Status.NORMAL
        self._views = ViewState(self._out, persisted.view, status, persisted.epoch)
        self._votes = VoteBook()
        self._chain = ChainWindow(
            genesis_hash=config.genesis_hash,
            genesis_time_ms=config.genesis_time_ms,
            executed_height=recovered.executed_height,
            roots=dict(recovered.roots),
            recent_blocks=recovered.recent_blocks,
            tx_validity_blocks_max=p.tx_validity_blocks_max,
        )
        self._candidates = Candidates()
        self._safety = SafetyLog(persisted.votes, persisted.prepared)
        self._pool = PendingPool(pool_limits or PoolLimits.for_chain(p.block_txs_max))
        self._fetch = FetchTracker(config.index)
        self._progress = ProgressTimer(self._clock, self._timers, p.view_timeout_ms)
        self._assembly = BlockAssembly(
            index=config.index,
            membership=self.membership,
            clock=self._clock,
            outbox=self._out,
            timers=self._timers,
            timeout_ms=max(1, p.view_timeout_ms // 4),
            lookup=self._pool.get,
        )

        self._normal = NormalCase(
            config=config,
            membership=self.membership,
            outbox=self._out,
            views=self._views,
            chain=self._chain,
            clock=self._clock,
            timers=self._timers,
            signer=signer,
            signatures=signatures,
            evidence=self._evidence,
            votes=self._votes,
            candidates=self._candidates,
            safety=self._safety,
            pool=self._pool,
            assembly=self._assembly,
            fetch=self._fetch,
            progress=self._progress,
            on_delivered=self._after_delivery,
        )
        self._transfer = StateTransfer(
            config=config,
            membership=self.membership,
            outbox=self._out,
            views=self._views,
            chain=self._chain,
            clock=self._clock,
            timers=self._timers,
            candidates=self._candidates,
            fetch=self._fetch,
            normal=self._normal,
        )
        self._view_changer = ViewChanger(
            config=config,
            membership=self.membership,
            outbox=self._out,
            views=self._views,
            chain=self._chain,
            clock=self._clock,
            timers=self._timers,
            signer=signer,
            signatures=signatures,
            evidence=self._evidence,
            votes=self._votes,
            candidates=self._candidates,
            safety=self._safety,
            fetch=self._fetch,
            progress=self._progress,
            normal=self._normal,
            transfer=self._transfer,
            collect_garbage=self._collect_garbage,
        )
        self._checkpoints = Checkpoints(
            config=config,
            membership=self.membership,
            outbox=self._out,
            views=self._views,
            chain=self._chain,
            signer=signer,
            signatures=signatures,
            evidence=self._evidence,
            safety=self._safety,
            fetch=self._fetch,
            last_signed=persisted.checkpoint_height,
        )

        for slot in self._safety.prepared_slots():
            self._candidates.add(slot.block)
        self._view_changer.restore(persisted.view_change, persisted.new_view)

    # --- public API -----------------------------------------------------------------------------------

    def start(self, now_ms: int) -> list[Output]:
        """Call once after construction: resumes timers, resends a pending VIEW-CHANGE, probes for blocks."""
        self._out.take()
        self._clock.advance(now_ms)
        self._progress.restart()
        self._assembly.start()
        self._maybe_start_epoch()  # we may have crashed between delivering an epoch's end and saying so
        self._view_changer.resume()
        self._transfer.probe()
        self._after_step()
        return self._out.take()

    def step(self, event: Input) -> list[Output]:
        """Apply one input; returns the outputs to perform in order (see the package docstring)."""
        if self._views.is_halted:
            return []
        self._out.take()
        if isinstance(event, Tick):
            self._clock.advance(event.now_ms)
        elif isinstance(event, MessageReceived):
            self._on_message(event.peer, event.message)
        elif isinstance(event, TxReceived):
            self._on_tx(event)
        elif isinstance(event, TimerFired):
            self._on_timer(event.timer_id)
        elif isinstance(event, BlockExecuted):
            self._on_executed(event)
        elif isinstance(event, BlocksFetched):
            self._transfer.on_blocks_fetched(event)
        elif isinstance(event, TxsFetched):
            self._on_txs_arrived(event.txs)
        elif isinstance(event, PeerConnected):
            self._on_peer_connected(event.peer)
        elif isinstance(event, PeerDisconnected) and event.peer != self.cfg.index:
            self._transfer.on_peer_disconnected(event.peer)
        if not self._views.is_halted:
            self._after_step()
        return self._out.take()

    def get_evidence(self) -> tuple[Evidence, ...]:
        """Pairs of conflicting signed messages seen from one validator (most recent EVIDENCE_MAX)."""
        return self._evidence.items()

    @property
    def view(self) -> int:
        return self._views.view

    @property
    def epoch(self) -> int:
        return self._views.epoch

    @property
    def status(self) -> Status:
        return self._views.status

    @property
    def primary(self) -> int:
        return self.membership.at(self._chain.delivered_height + 1).primary(self._views.view)

    @property
    def delivered_height(self) -> int:
        return self._chain.delivered_height

    @property
    def executed_height(self) -> int:
        return self._chain.executed_height

    @property
    def stable_checkpoint(self) -> int:
        return self._checkpoints.stable_height

    @property
    def is_catching_up(self) -> bool:
        """State transfer is under way: a block request is outstanding (until its answer or its timeout),
        or the network is known to have committed beyond our delivered height."""
        fetch = self._fetch
        return fetch.outstanding_peer is not None or fetch.target_height > self._chain.delivered_height

    @property
    def pending_tx_count(self) -> int:
        return len(self._pool)

    @property
    def pending_bytes(self) -> int:
        return self._pool.size_bytes

    def get_pending(self, tx_id: bytes) -> SignedTx | None:
        """The transaction while it waits in this replica's pool, the node's one pool of pending ones."""
        return self._pool.get(tx_id)

    def is_committed_recently(self, tx_id: bytes) -> bool | None:
        """Delivered within the last tx_validity_blocks_max heights (the replay window); None while that
        window is not complete here (after a restart, recovered with fewer blocks than it spans)."""
        committed = self._chain.committed
        return committed.contains(tx_id) if committed.is_complete else None

    def get_known_txs(self, tx_ids: Sequence[bytes]) -> list[SignedTx]:
        """Those of `tx_ids` we hold (pending, in a block we may vote on, or just delivered), in the order
        asked: what a peer assembling a proposal fetches from us (FetchTxs)."""
        wanted = set(tx_ids)
        found = {tx_id: tx for tx_id in wanted if (tx := self._pool.get(tx_id)) is not None}
        if len(found) < len(wanted):
            rest = wanted - found.keys()
            found.update(self._candidates.find_txs(rest))
            rest -= found.keys()
            if rest:
                found.update(self._chain.find_txs(rest, self.cfg.height_window))
        return [found[tx_id] for tx_id in dict.fromkeys(tx_ids) if tx_id in found]

    def get_pending_before(self, arrival_ms: int, limit: int) -> list[SignedTx]:
        """Pending transactions that arrived before `arrival_ms` (Tick time), oldest first: for re-gossip."""
        return self._pool.arrived_before(arrival_ms, limit)

    # --- after each input ---------------------------------------------------------------------------

    def _after_step(self) -> None:
        if self._candidates.has_unmatched():
            if self._candidates.match_certificates(self._chain.delivered_height):
                self._normal.deliver()
            if self._views.is_halted:
                return
        oldest = self._pool.oldest()
        self._progress.refresh(
            running=self._views.is_normal,
            has_work=self._normal.has_work(),
            oldest_tx_ms=None if oldest is None else oldest.arrival_ms,
        )
        self._transfer.after_step()

    def _after_delivery(self) -> None:
        self._maybe_start_epoch()
        self._collect_garbage()

    def _maybe_start_epoch(self) -> None:
        """Delivering the last height of an epoch starts the next one: its set, from view 0 (a replica
        that delivered several epochs at once, by state transfer, starts the latest)."""
        epoch = self.membership.epoch_at(self._chain.delivered_height + 1)
        if epoch.number <= self._views.epoch or self._views.is_halted:
            return
        self._views.become_epoch(epoch.number, low_height=epoch.first_height - 1)
        self._normal.clear_accepted()
        self._view_changer.start_epoch()
        self._progress.restart()

    def _collect_garbage(self) -> None:
        """Forget what delivery or a view change made obsolete, in every part."""
        p = self.cfg.params
        low = self._chain.delivered_height
        self._normal.prune()
        self._votes.prune(low, self._views.view - VIEW_WINDOW)
        live = self._votes.block_hashes() | {s.block.block_hash for s in self._safety.prepared_slots()}
        self._candidates.prune(low, low + self.cfg.height_window + p.checkpoint_interval, live)
        self._assembly.prune(self._votes.block_hashes())
        self._chain.prune(checkpoint_interval=p.checkpoint_interval, pipeline_depth=p.pipeline_depth)
        self._fetch.prune_far_claims(low)
        self._view_changer.prune()

    # --- inputs ---------------------------------------------------------------------------------------

    def _on_txs_arrived(self, txs: tuple[SignedTx, ...]) -> None:
        """Transactions a waiting proposal lacked: the blocks they complete can now be voted on."""
        completed = self._assembly.on_txs(txs)
        for block in completed:
            self._candidates.add(block)
        if completed:
            self._normal.advance()

    def _on_tx(self, event: TxReceived) -> None:
        wanted = tuple(tx for tx in event.txs if self._assembly.wants(tx.tx_id))
        if wanted:
            self._on_txs_arrived(wanted)
        added = False
        for tx in event.txs:
            refusal = self._refusal(tx)
            if refusal is not None:
                self._out.emit(TxRefused(tx.tx_id, refusal))
            elif self._pool.add(tx, self._clock.now_ms):
                added = True
        if added and self._views.is_normal and self._is_primary():
            self._normal.advance()

    def _refusal(self, tx: SignedTx) -> str | None:
        if tx.body.chain_id != self.cfg.chain_id:
            return REFUSED_WRONG_CHAIN
        if self._chain.committed.contains(tx.tx_id):
            return REFUSED_REPLAY
        if tx.body.valid_until < self._chain.delivered_height + 1:
            return REFUSED_EXPIRED
        if tx.tx_id not in self._pool and self._pool.is_full_for(tx):
            return REFUSED_FULL
        return None

    def _is_primary(self) -> bool:
        validators = self.membership.at(self._chain.delivered_height + 1)
        return self.primary == self.cfg.index and validators.key_of(self.cfg.index) == self._signer_key

    def _on_timer(self, timer_id: str) -> None:
        if not self._timers.take_fired(timer_id):
            return  # cancelled, or a stale fire of a timer that was set again later
        if timer_id == TIMER_BATCH:
            self._normal.advance()
        elif timer_id == TIMER_PROGRESS:
            self._view_changer.on_progress_timeout()
        elif timer_id == TIMER_VIEW_CHANGE:
            self._view_changer.on_view_change_timeout()
        elif timer_id == TIMER_RETRANSMIT:
            self._view_changer.on_retransmit()
        elif timer_id == TIMER_FETCH:
            self._transfer.on_fetch_timer()
        elif timer_id == TIMER_TX_FETCH:
            self._assembly.on_timer()

    def _on_message(self, peer: int, message: Message) -> None:
        # (each part checks the sender against the set in force at the message's height or epoch)
        if message.sender == self.cfg.index:
            return
        if isinstance(message, PrePrepare):
            self._normal.on_pre_prepare(peer, message)
        elif isinstance(message, Prepare):
            self._normal.on_prepare(peer, message)
        elif isinstance(message, Commit):
            self._normal.on_commit(peer, message)
        elif isinstance(message, Checkpoint):
            self._checkpoints.on_checkpoint(peer, message)
        elif isinstance(message, ViewChange):
            self._view_changer.on_view_change(peer, message)
        else:
            self._view_changer.on_new_view(peer, message)

    def _on_peer_connected(self, peer: int) -> None:
        if peer == self.cfg.index:
            return
        self._transfer.on_peer_connected(peer)
        self._view_changer.on_peer_connected(peer)

    def _on_executed(self, event: BlockExecuted) -> None:
        height = event.height
        self._chain.record_execution(height, ExecutionRoots(event.state_root, event.results_root))
        self.membership.note_executed(height, event.validators)
        # a committed header that carries roots for this height must agree with our execution
        p = self.cfg.params
        for later in range(height + 1, min(self._chain.delivered_height, height + p.pipeline_depth) + 1):
            block = self._chain.block(later)
            assert block is not None
            header = block.header
            if header.state_height == height and header.state_root != event.state_root:
                self._views.halt(
                    f"state divergence at height {height}: our state_root {event.state_root.hex()}, "
                    f"committed block {later} carries {header.state_root.hex()}"
                )
                return
        self._checkpoints.on_executed(height, event.state_root)
        self._progress.on_executed(height)
        # delivery may go further now that more heights' validator sets are certain
        self._transfer.on_executed()
        if self._candidates.is_certified(self._chain.delivered_height + 1):
            self._normal.deliver()
        self._normal.advance()
        self._view_changer.on_executed()  # a NEW-VIEW set aside while we were behind may be checkable now
