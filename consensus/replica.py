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
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from consensus import log as clog
from consensus.certificate import (
    NewViewPlan,
    ProofError,
    Verify,
    compute_new_view_plan,
    get_primary,
    validate_view_change,
)
from consensus.events import (
    BROADCAST,
    TIMER_BATCH,
    TIMER_FETCH,
    TIMER_PROGRESS,
    TIMER_RETRANSMIT,
    TIMER_VIEW_CHANGE,
    BlockExecuted,
    BlocksFetched,
    CancelTimer,
    ExecuteBlock,
    FetchBlocks,
    Halt,
    Input,
    LogRecord,
    MessageReceived,
    Output,
    PeerConnected,
    Persist,
    ReportMisbehaviour,
    Send,
    SetTimer,
    Tick,
    TimerFired,
    TxReceived,
)
from consensus.messages import (
    Checkpoint,
    Commit,
    Message,
    NewView,
    Prepare,
    PreparedCertificate,
    PrePrepare,
    ViewChange,
    compute_signing_digest,
)
from consensus.pool import CommittedWindow, PendingPool, PendingTx
from consensus.transfer import FETCH_CHUNK, FetchTracker, ServedBlockError, validate_served_block
from core.block import EMPTY_ROOT, Block, BlockHeader, CommitCertificate, compute_tx_root
from core.errors import InvariantBroken
from core.genesis import ConsensusParams, Genesis
from core.keys import SigningKey, is_valid_signature
from core.quorum import compute_max_faulty, compute_quorum, compute_weak_quorum

VIEW_WINDOW = 4  # messages for views further ahead than this are ignored
BACKOFF_MAX = 6  # the view timeout doubles at most this many times (64x)
EVIDENCE_MAX = 1000  # misbehaviour evidence kept in memory
HEADER_BYTES_MAX = 1024  # room reserved for the header when filling a block to block_bytes_max
TIMER_SLACK_MS = 50  # a TimerFired this much before its deadline still counts (shell clocks differ slightly)


class Status(Enum):
    NORMAL = "normal"  # ordering blocks in `view`
    VIEW_CHANGE = "view_change"  # sent VIEW-CHANGE for `view`, waiting for its NEW-VIEW
    HALTED = "halted"  # state divergence detected; all inputs are ignored


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    chain_id: str
    genesis_hash: bytes  # prev_hash of block 1
    genesis_time_ms: int  # block 1's time must exceed it
    validator_keys: tuple[bytes, ...]  # genesis validator node keys, by index
    params: ConsensusParams
    index: int  # our validator index

    @classmethod
    def from_genesis(cls, genesis: Genesis, node_public_key: bytes) -> ReplicaConfig:
        keys = genesis.validator_keys
        if node_public_key not in keys:
            raise InvariantBroken("this node's key is not a genesis validator")
        return cls(
            genesis.chain_id,
            genesis.genesis_hash,
            genesis.genesis_time_ms,
            keys,
            genesis.consensus,
            keys.index(node_public_key),
        )


@dataclass(frozen=True, slots=True)
class ExecutionRoots:
    state_root: bytes  # world-state root after executing the height
    results_root: bytes  # merkle root of the height's transaction results


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


@dataclass(frozen=True, slots=True)
class Evidence:
    signer: int  # the validator that signed both messages
    first: Message  # the message seen first
    second: Message  # a conflicting one for the same (kind, view, height)


class Replica:
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
        self._out: list[Output] = []

        persisted = clog.load_persisted_state(recovered.log, params=self.p, validator_count=self.n)
        self.view = persisted.view
        self.status = Status.VIEW_CHANGE if persisted.changing else Status.NORMAL
        self._votes_log: dict[int, clog.VoteRecord] = persisted.votes
        self._prepared: dict[int, clog.PreparedSlot] = persisted.prepared
        self._checkpoint_signed = persisted.checkpoint_height
        self._backoff = 0
        self._probed = False

        # chain and execution
        self.delivered_height = recovered.executed_height
        self.executed_height = recovered.executed_height
        self._roots: dict[int, ExecutionRoots] = dict(recovered.roots)
        self._chain: dict[int, Block] = {}
        self._certs: dict[int, CommitCertificate] = {}
        self._committed = CommittedWindow(self.p.tx_validity_blocks_max)
        self._pool = PendingPool(max(10 * self.p.block_txs_max, 1000))
        self._unmatched_certs: dict[int, CommitCertificate] = {}  # proven committed, block not seen yet
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
        self._accepted: dict[int, PrePrepare] = {}  # validated pre-prepares of the current view
        self._pre_prepares: dict[tuple[int, int], PrePrepare] = {}  # first one seen per (view, height)
        self._pp_received_ms: dict[tuple[int, int], int] = {}
        self._rejected: set[tuple[int, int]] = set()
        self._prepares: dict[tuple[int, int], dict[int, Prepare]] = {}
        self._commits: dict[tuple[int, int], dict[int, Commit]] = {}
        self._blocks: dict[bytes, Block] = {}  # blocks by hash for heights above delivered
        self._certified: dict[int, tuple[Block, CommitCertificate]] = {}  # awaiting in-order delivery
        self._far_claims: dict[int, int] = {}  # sender -> highest height it signed beyond our window

        # checkpoints
        self._checkpoints: dict[int, dict[int, Checkpoint]] = {}
        self.stable_checkpoint = 0

        # view change
        self._view_changes: dict[int, dict[int, ViewChange]] = {}
        self._my_view_change: ViewChange | None = None
        self._new_view: NewView | None = None
        self._new_view_sent_ms: dict[int, int] = {}  # peer -> when we last showed it our NEW-VIEW

        self._fetch = FetchTracker(self.index, self.n)
        self._timers: dict[str, int] = {}
        self._evidence: deque[Evidence] = deque(maxlen=EVIDENCE_MAX)

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
    def primary(self) -> int:
        return get_primary(self.view, self.n)

    @property
    def is_primary(self) -> bool:
        return self.primary == self.index

    @property
    def pending_tx_count(self) -> int:
        return len(self._pool)

    def is_pending(self, tx_id: bytes) -> bool:
        """True while the transaction waits in this replica's pool (the shell checks admission with it)."""
        return tx_id in self._pool

    # --- plumbing -------------------------------------------------------------------------------------

    def _take(self) -> list[Output]:
        out, self._out = self._out, []
        return out

    def _emit(self, output: Output) -> None:
        self._out.append(output)

    def _persist(self, *records: LogRecord) -> None:
        if records:
            self._emit(Persist(tuple(records)))

    def _sign(self, digest: bytes) -> bytes:
        return self._key.sign(digest)

    def _is_signed_by_sender(self, message: Message) -> bool:
        digest = compute_signing_digest(self.cfg.chain_id, message)
        return self._verify_signature(self.cfg.validator_keys[message.sender], digest, message.signature)

    def _report(self, peer: int, reason: str, *evidence: Message) -> None:
        self._emit(ReportMisbehaviour(peer, reason, tuple(evidence)))

    def _record_evidence(self, first: Message, second: Message) -> None:
        self._evidence.append(Evidence(second.sender, first, second))
        kind = type(second).__name__
        self._report(
            second.sender, f"conflicting {kind} messages signed by validator {second.sender}", first, second
        )

    def _set_timer(self, timer_id: str, delay_ms: int) -> None:
        delay_ms = max(1, delay_ms)
        self._timers[timer_id] = self.now_ms + delay_ms
        self._emit(SetTimer(timer_id, delay_ms))

    def _cancel_timer(self, timer_id: str) -> None:
        if self._timers.pop(timer_id, None) is not None:
            self._emit(CancelTimer(timer_id))

    def _timeout_ms(self) -> int:
        return self.p.view_timeout_ms << min(self._backoff, BACKOFF_MAX)

    def _height_window(self) -> int:
        return 2 * self.p.pipeline_depth + 2

    def _prev_header_hash(self, height: int) -> bytes:
        """Hash of the block at `height` - 1 on our delivered chain."""
        if height == 1:
            return self.cfg.genesis_hash
        return self._chain[height - 1].block_hash

    def _note_certificate(self, cert: CommitCertificate) -> None:
        """Remember a verified commit certificate above our height: it lets us deliver a block we hold
        but whose COMMITs we missed."""
        if cert.height > self.delivered_height and cert.height not in self._certified:
            self._unmatched_certs[cert.height] = cert

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

    # --- normal case ----------------------------------------------------------------------------------

    def _advance(self) -> None:
        """Make every step of the normal case that has become possible. Idempotent."""
        if self.status is not Status.NORMAL:
            return
        if self.delivered_height >= self.view_low:
            self._accept_pre_prepares()
            if self.is_primary:
                self._propose()
        for height in sorted(self._accepted):
            if height > self.delivered_height:
                self._vote_on(height)

    def _next_free_height(self) -> int:
        height = max(self.delivered_height, self.view_low) + 1
        while height in self._accepted:
            height += 1
        return height

    def _accept_pre_prepares(self) -> None:
        height = self._next_free_height()
        while True:
            key = (self.view, height)
            pp = self._pre_prepares.get(key)
            if pp is None or key in self._rejected:
                return
            problem = self._check_pre_prepare(pp)
            if problem == "wait":
                return
            if problem:
                self._rejected.add(key)
                self._report(pp.sender, f"invalid pre-prepare at view {pp.view} height {height}: {problem}")
                return
            if not self._may_vote(height, pp.block_hash, clog.PHASE_PREPARE):
                self._rejected.add(key)
                return
            self._accepted[height] = pp
            height += 1

    def _previous_header(self, height: int) -> tuple[bytes, int]:
        """(hash, time_ms) of the block before `height` on the chain being extended in this view."""
        if height - 1 in self._accepted:
            header = self._accepted[height - 1].block.header
            return header.block_hash, header.time_ms
        if height == 1:
            return self.cfg.genesis_hash, self.cfg.genesis_time_ms
        block = self._chain[height - 1]
        return block.block_hash, block.header.time_ms

    def _in_flight_tx_ids(self, below: int) -> set[bytes]:
        return {tx.tx_id for h, pp in self._accepted.items() if h < below for tx in pp.block.txs}

    def _is_includable(self, tx_valid_until: int, tx_id: bytes, height: int, in_flight: set[bytes]) -> bool:
        if tx_valid_until < height or tx_valid_until > height + self.p.tx_validity_blocks_max:
            return False
        return not self._committed.contains(tx_id) and tx_id not in in_flight

    def _check_pre_prepare(self, pp: PrePrepare) -> str:
        """'' if valid, 'wait' if our execution must catch up first, else the reason it is invalid."""
        header, height = pp.block.header, pp.height
        state_height = max(0, height - self.p.pipeline_depth)
        if state_height > self.executed_height:
            return "wait"
        prev_hash, prev_time = self._previous_header(height)
        roots = self._roots.get(state_height)
        received_ms = self._pp_received_ms.get((pp.view, height), self.now_ms)
        checks = (
            (header.chain_id == self.cfg.chain_id, "wrong chain id"),
            (header.prev_hash == prev_hash, "prev_hash does not link to the previous block"),
            (header.proposer == get_primary(pp.view, self.n), "proposer is not the primary"),
            (header.tx_count == len(pp.block.txs), "tx_count is wrong"),
            (header.state_height == state_height, f"state_height must be {state_height}"),
            (roots is not None and header.state_root == roots.state_root, "state_root differs from ours"),
            (
                roots is not None and header.results_root == roots.results_root,
                "results_root differs from ours",
            ),
            (header.time_ms > prev_time, "time_ms does not exceed the previous block's"),
            (
                abs(header.time_ms - received_ms) <= self.p.clock_drift_max_ms,
                "time_ms is too far from our clock",
            ),
            (len(pp.block.txs) <= self.p.block_txs_max, "too many transactions"),
            (
                sum(len(tx.raw) for tx in pp.block.txs) <= self.p.block_bytes_max - HEADER_BYTES_MAX,
                "too large",
            ),
        )
        for ok, reason in checks:
            if not ok:
                return reason
        if header.tx_root != compute_tx_root(pp.block.txs):
            return "tx_root does not match the transactions"
        in_flight = self._in_flight_tx_ids(height)
        seen: set[bytes] = set()
        for tx in pp.block.txs:
            if tx.body.chain_id != self.cfg.chain_id or tx.tx_id in seen:
                return f"transaction {tx.tx_id.hex()} is duplicated or for another chain"
            if not self._is_includable(tx.body.valid_until, tx.tx_id, height, in_flight):
                return f"transaction {tx.tx_id.hex()} is expired, too long-lived, committed or in flight"
            seen.add(tx.tx_id)
        return ""

    def _may_vote(self, height: int, block_hash: bytes, phase: str) -> bool:
        """Double-sign protection: never a second digest for one (view, height), never an older view."""
        record = self._votes_log.get(height)
        if record is None or record.view < self.view:
            return True
        return record.view == self.view and record.block_hash == block_hash

    def _log_vote(self, height: int, block_hash: bytes, phase: str) -> LogRecord:
        record = clog.VoteRecord(self.view, phase, block_hash)
        self._votes_log[height] = record
        return clog.record_vote(height, record)

    def _has_voted(self, height: int, phase: str) -> bool:
        record = self._votes_log.get(height)
        return (
            record is not None
            and record.view == self.view
            and clog.PHASE_RANK[record.phase] >= clog.PHASE_RANK[phase]
        )

    def _needs_certifying_block(self, height: int) -> bool:
        """An idle chain must still certify the roots after its last transactions: header h carries the
        roots of h - pipeline_depth, so after a block with transactions the primary proposes up to
        pipeline_depth empty blocks. Without them a state proof of the newest state could never be
        checked against a certified header."""
        for earlier in range(height - 1, max(0, height - 1 - self.p.pipeline_depth), -1):
            accepted = self._accepted.get(earlier)
            block = accepted.block if accepted is not None else self._chain.get(earlier)
            if block is not None and block.txs:
                return True
        return False

    def _is_batch_still_filling(self) -> bool:
        """Cheap check before scanning the pool: too few transactions, and the oldest has not waited out
        the batch wait. Without it every arriving transaction would rescan the whole pool."""
        oldest = self._pool.oldest()
        if oldest is None or len(self._pool) >= self.p.block_txs_max:
            return False
        waited_ms = self.now_ms - oldest.arrival_ms
        if waited_ms >= self.p.batch_wait_ms:
            return False
        if TIMER_BATCH not in self._timers:
            self._set_timer(TIMER_BATCH, self.p.batch_wait_ms - waited_ms)
        return True

    def _propose(self) -> None:
        while True:
            height = self._next_free_height()
            if (
                height - self.p.pipeline_depth > self.executed_height
                or (self.view, height) in self._pre_prepares
            ):
                return
            if self._votes_log.get(height, clog.VoteRecord(-1, "", b"")).view >= self.view:
                return  # proposed here before a restart; let a view change resolve it
            if self._is_batch_still_filling():
                return
            prev_hash, prev_time = self._previous_header(height)
            in_flight = self._in_flight_tx_ids(height)
            txs: list[PendingTx] = []
            size = 0
            full = False
            for pending in self._pool.items():
                tx = pending.tx
                if not self._is_includable(tx.body.valid_until, tx.tx_id, height, in_flight):
                    continue
                if (
                    len(txs) == self.p.block_txs_max
                    or size + len(tx.raw) > self.p.block_bytes_max - HEADER_BYTES_MAX
                ):
                    full = True
                    break
                txs.append(pending)
                size += len(tx.raw)
            if not txs and not self._needs_certifying_block(height):
                self._cancel_timer(TIMER_BATCH)
                return
            full = full or len(txs) == self.p.block_txs_max
            waited_ms = self.now_ms - txs[0].arrival_ms if txs else self.p.batch_wait_ms
            if not full and waited_ms < self.p.batch_wait_ms:
                if TIMER_BATCH not in self._timers:
                    self._set_timer(TIMER_BATCH, self.p.batch_wait_ms - waited_ms)
                return
            state_height = max(0, height - self.p.pipeline_depth)
            roots = self._roots[state_height]
            block_txs = tuple(p.tx for p in txs)
            header = BlockHeader(
                chain_id=self.cfg.chain_id,
                height=height,
                prev_hash=prev_hash,
                time_ms=max(self.now_ms, prev_time + 1),
                proposer=self.index,
                tx_count=len(block_txs),
                tx_root=compute_tx_root(block_txs),
                state_height=state_height,
                state_root=roots.state_root,
                results_root=roots.results_root,
            )
            block = Block(header, block_txs)
            unsigned = PrePrepare(self.view, height, block, self.index, b"")
            pp = replace(unsigned, signature=self._sign(compute_signing_digest(self.cfg.chain_id, unsigned)))
            self._persist(self._log_vote(height, block.block_hash, clog.PHASE_PRE_PREPARE))
            self._emit(Send(BROADCAST, pp))
            self._pre_prepares[(self.view, height)] = pp
            self._blocks[block.block_hash] = block
            self._accepted[height] = pp

    def _is_prepared(self, height: int) -> bool:
        pp = self._accepted.get(height)
        if pp is None:
            return False
        votes = self._prepares.get((self.view, height), {})
        matching = sum(1 for s, v in votes.items() if v.block_hash == pp.block_hash and s != pp.sender)
        return matching + 1 >= self.quorum

    def _is_settled(self, height: int) -> bool:
        """Height is final for us, or prepared in this view (the COMMIT ordering rule)."""
        if height <= max(self.delivered_height, self.view_low) or height in self._certified:
            return True
        slot = self._prepared.get(height)
        return (
            height in self._accepted
            and slot is not None
            and slot.certificate.view == self.view
            and slot.certificate.block_hash == self._accepted[height].block_hash
        )

    def _vote_on(self, height: int) -> None:
        """Send PREPARE and then COMMIT for an accepted pre-prepare when due (again after a restart: the
        same vote re-signed is the same deterministic signature, and it re-enters our own tally)."""
        pp = self._accepted[height]
        digest = pp.block_hash
        key = (self.view, height)
        if pp.sender != self.index and self.index not in self._prepares.get(key, {}):
            unsigned = Prepare(self.view, height, digest, self.index, b"")
            vote = replace(
                unsigned, signature=self._sign(compute_signing_digest(self.cfg.chain_id, unsigned))
            )
            if not self._has_voted(height, clog.PHASE_PREPARE):
                self._persist(self._log_vote(height, digest, clog.PHASE_PREPARE))
            self._emit(Send(BROADCAST, vote))
            self._prepares.setdefault(key, {})[self.index] = vote
        if self.index in self._commits.get(key, {}) or not self._is_prepared(height):
            return
        if not self._is_settled(height - 1):
            return
        unsigned_commit = Commit(self.view, height, digest, self.index, b"")
        commit = replace(
            unsigned_commit, signature=self._sign(compute_signing_digest(self.cfg.chain_id, unsigned_commit))
        )
        if not self._has_voted(height, clog.PHASE_COMMIT):
            votes = self._prepares.get(key, {})
            cert_votes = [(pp.sender, pp.signature)]
            cert_votes += [
                (s, v.signature) for s, v in votes.items() if v.block_hash == digest and s != pp.sender
            ]
            cert = PreparedCertificate(self.view, pp.block.header, tuple(sorted(cert_votes)))
            slot = clog.PreparedSlot(cert, pp.block)
            self._prepared[height] = slot
            self._persist(clog.record_prepared(slot), self._log_vote(height, digest, clog.PHASE_COMMIT))
        self._emit(Send(BROADCAST, commit))
        self._commits.setdefault(key, {})[self.index] = commit
        self._check_commit_quorum(self.view, height)

    def _resend_commits(self) -> None:
        """Retransmit our COMMITs above the delivered height: a peer may hold the block but lack the votes
        (lost messages), while others hold the votes but not the block. Re-signing the same (view, height,
        digest) yields the same deterministic Ed25519 signature, so this is no new vote."""
        for height, record in sorted(self._votes_log.items()):
            if record.phase != clog.PHASE_COMMIT or height <= self.delivered_height:
                continue
            unsigned = Commit(record.view, height, record.block_hash, self.index, b"")
            commit = replace(
                unsigned, signature=self._sign(compute_signing_digest(self.cfg.chain_id, unsigned))
            )
            self._emit(Send(BROADCAST, commit))

    def _check_commit_quorum(self, view: int, height: int) -> None:
        if height <= self.delivered_height or height in self._certified:
            return
        votes = self._commits.get((view, height), {})
        tally: dict[bytes, list[tuple[int, bytes]]] = {}
        for sender, vote in votes.items():
            tally.setdefault(vote.block_hash, []).append((sender, vote.signature))
        for digest, signed in sorted(tally.items()):
            if len(signed) < self.quorum:
                continue
            cert = CommitCertificate(view, height, digest, tuple(sorted(signed)))
            self._note_certificate(cert)
            block = self._blocks.get(digest)
            if block is None or block.header.height != height:
                self._note_behind(height, [s for s, _ in signed])
                return
            self._certified[height] = (block, cert)
            self._deliver()
            return

    def _deliver(self) -> None:
        """Hand certified blocks to the executor strictly in height order."""
        delivered_any = False
        while self.delivered_height + 1 in self._certified:
            height = self.delivered_height + 1
            block, cert = self._certified.pop(height)
            if block.header.prev_hash != self._prev_header_hash(height):
                self._halt(
                    f"certified block {height} ({block.block_hash.hex()}) does not link to our block "
                    f"{height - 1}: more than f validators are faulty"
                )
                return
            accepted = self._accepted.get(height)
            if accepted is not None and accepted.block_hash != block.block_hash:
                # an equivocating primary made us accept another block; what we built on it is dead
                self._accepted = {h: pp for h, pp in self._accepted.items() if h < height}
            self.delivered_height = height
            self._chain[height] = block
            self._certs[height] = cert
            self._committed.add_block(block)
            for tx in block.txs:
                self._pool.remove(tx.tx_id)
            self._emit(ExecuteBlock(block, cert))
            delivered_any = True
        if not delivered_any:
            return
        self._last_progress_ms = self.now_ms
        self._probed = False
        if self.status is Status.NORMAL:
            self._backoff = 0
        self._pool.remove_expired(self.delivered_height + 1)
        self._collect_garbage()
        self._advance()

    def _collect_garbage(self) -> None:
        low = self.delivered_height
        self._accepted = {h: pp for h, pp in self._accepted.items() if h > low}
        min_view = self.view - VIEW_WINDOW
        self._pre_prepares = {k: v for k, v in self._pre_prepares.items() if k[1] > low and k[0] >= min_view}
        self._pp_received_ms = {k: v for k, v in self._pp_received_ms.items() if k in self._pre_prepares}
        self._rejected = {k for k in self._rejected if k in self._pre_prepares}
        self._prepares = {k: v for k, v in self._prepares.items() if k[1] > low and k[0] >= min_view}
        self._commits = {k: v for k, v in self._commits.items() if k[1] > low and k[0] >= min_view}
        self._certified = {h: c for h, c in self._certified.items() if h > low}
        window = low + self._height_window() + self.p.checkpoint_interval
        self._unmatched_certs = {h: c for h, c in self._unmatched_certs.items() if low < h <= window}
        live = {pp.block_hash for pp in self._pre_prepares.values()}
        live.update(block.block_hash for block, _ in self._certified.values())
        live.update(slot.block.block_hash for slot in self._prepared.values())
        self._blocks = {h: b for h, b in self._blocks.items() if h in live}
        keep_from = min(self.executed_height, low) - self.p.checkpoint_interval - self.p.pipeline_depth
        for height in [h for h in self._chain if h < keep_from and h < low]:
            del self._chain[height]
            self._certs.pop(height, None)
        for height in [h for h in self._roots if h < self.executed_height - self.p.pipeline_depth - 1]:
            del self._roots[height]
        self._far_claims = {s: h for s, h in self._far_claims.items() if h > low}
        self._view_changes = {v: m for v, m in self._view_changes.items() if v >= self.view}

    def _halt(self, reason: str) -> None:
        self.status = Status.HALTED
        self._emit(Halt(reason))

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

    # --- progress and view change ---------------------------------------------------------------------

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

    # --- state transfer -------------------------------------------------------------------------------

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
