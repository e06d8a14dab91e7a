"""What every part of the PBFT replica shares: configuration, limits, the replica's state and its plumbing.

`consensus.replica.Replica` is one object assembled from parts that each own one concern:
`normal_case` (PRE-PREPARE -> PREPARE -> COMMIT -> delivery, double-sign protection), `view_change` (the
progress timer and view changes) and `catch_up` (state transfer); `replica` keeps construction, the public
API, input dispatch, execution and checkpoints. Each part is a mixin over ReplicaBase, which declares the
state (assigned in Replica.__init__) with its types, holds the helpers every part uses (outputs, signing,
timers, evidence), and declares the few methods one part calls on another; the part that owns such a
method comes before ReplicaBase in Replica's method resolution order, so its implementation is the one used.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from consensus import log as clog
from consensus.certificate import Verify, get_primary
from consensus.events import CancelTimer, LogRecord, Output, Persist, ReportMisbehaviour, SetTimer
from consensus.messages import (
    Checkpoint,
    Commit,
    Message,
    NewView,
    Prepare,
    PrePrepare,
    ViewChange,
    compute_signing_digest,
)
from consensus.pool import CommittedWindow, PendingPool
from consensus.transfer import FetchTracker
from core.block import Block, CommitCertificate
from core.errors import InvariantBroken
from core.genesis import ConsensusParams, Genesis
from core.keys import SigningKey

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
class Evidence:
    signer: int  # the validator that signed both messages
    first: Message  # the message seen first
    second: Message  # a conflicting one for the same (kind, view, height)


class ReplicaBase:
    """The replica's state and plumbing; see the module docstring. Never instantiated on its own."""

    cfg: ReplicaConfig
    p: ConsensusParams
    _key: SigningKey
    _verify_signature: Verify
    n: int
    f: int
    quorum: int
    weak_quorum: int
    index: int
    now_ms: int
    _out: list[Output]

    view: int
    status: Status
    _votes_log: dict[int, clog.VoteRecord]
    _prepared: dict[int, clog.PreparedSlot]
    _checkpoint_signed: int
    _backoff: int
    _probed: bool

    # chain and execution
    delivered_height: int
    executed_height: int
    _roots: dict[int, ExecutionRoots]
    _chain: dict[int, Block]
    _certs: dict[int, CommitCertificate]
    _committed: CommittedWindow
    _pool: PendingPool
    _unmatched_certs: dict[int, CommitCertificate]  # proven committed, block not seen yet

    # normal case
    view_low: int  # min_s of the current view: every height up to it is proven committed
    _censor_since_ms: int
    _last_progress_ms: int
    _accepted: dict[int, PrePrepare]  # validated pre-prepares of the current view
    _pre_prepares: dict[tuple[int, int], PrePrepare]  # first one seen per (view, height)
    _pp_received_ms: dict[tuple[int, int], int]
    _rejected: set[tuple[int, int]]
    _prepares: dict[tuple[int, int], dict[int, Prepare]]
    _commits: dict[tuple[int, int], dict[int, Commit]]
    _blocks: dict[bytes, Block]  # blocks by hash for heights above delivered
    _certified: dict[int, tuple[Block, CommitCertificate]]  # awaiting in-order delivery
    _far_claims: dict[int, int]  # sender -> highest height it signed beyond our window

    # checkpoints
    _checkpoints: dict[int, dict[int, Checkpoint]]
    stable_checkpoint: int

    # view change
    _view_changes: dict[int, dict[int, ViewChange]]
    _my_view_change: ViewChange | None
    _new_view: NewView | None
    _new_view_sent_ms: dict[int, int]  # peer -> when we last showed it our NEW-VIEW

    _fetch: FetchTracker
    _timers: dict[str, int]
    _evidence: deque[Evidence]

    @property
    def primary(self) -> int:
        return get_primary(self.view, self.n)

    @property
    def is_primary(self) -> bool:
        return self.primary == self.index

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

    # --- implemented by other parts -------------------------------------------------------------------

    def _advance(self) -> None:
        raise NotImplementedError  # consensus.normal_case

    def _may_vote(self, height: int, block_hash: bytes, phase: str) -> bool:
        raise NotImplementedError  # consensus.normal_case

    def _log_vote(self, height: int, block_hash: bytes, phase: str) -> LogRecord:
        raise NotImplementedError  # consensus.normal_case

    def _resend_commits(self) -> None:
        raise NotImplementedError  # consensus.normal_case

    def _deliver(self) -> None:
        raise NotImplementedError  # consensus.normal_case

    def _collect_garbage(self) -> None:
        raise NotImplementedError  # consensus.normal_case

    def _note_behind(self, height: int, peers: Sequence[int]) -> None:
        raise NotImplementedError  # consensus.catch_up

    def _probe(self, peer: int | None = None) -> None:
        raise NotImplementedError  # consensus.catch_up
