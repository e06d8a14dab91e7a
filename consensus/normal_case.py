"""The normal case of the PBFT replica: PRE-PREPARE -> PREPARE -> COMMIT -> ExecuteBlock, in one view.

The primary proposes blocks (batching pending transactions, certifying the roots of an idle chain); every
replica validates a PRE-PREPARE against the chain it extends and its own roots (safety rule 3; only a
proposal invalid in itself is reported as the primary's fault, one that merely does not fit our chain or
clock is refused quietly: docs/RELIABILITY.md, false accusations), votes only
through the safety log with the vote persisted before it leaves (rule 1), sends COMMIT for a height only
once the height below is prepared in this view or settled (rule 2), and hands blocks with a 2f+1 COMMIT
certificate to the executor strictly in height order (rule 4).

A slot (view, height) moves through: pre-prepared (a PRE-PREPARE held in the vote book) -> accepted
(validated against our chain and roots; we sent PREPARE) -> prepared (2f+1 matching pre-prepare/prepare
votes; we logged the prepared certificate and sent COMMIT) -> certified (2f+1 COMMITs) -> delivered.
A PRE-PREPARE carries the header and the transaction ids; its block is assembled from the transactions we
hold, the rest fetched (consensus/assembly.py), and it is accepted only once assembled. `NormalCase` owns
the accepted proposals of the current view (and NEW-VIEW re-proposals still waiting for their block);
everything else lives in the parts it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from consensus import log as clog
from consensus.assembly import BlockAssembly
from consensus.chain import Candidates, ChainWindow
from consensus.config import HEADER_BYTES_MAX, VIEW_WINDOW, ReplicaConfig
from consensus.events import TIMER_BATCH, ExecuteBlock
from consensus.membership import Membership
from consensus.messages import Commit, Message, Prepare, PreparedCertificate, PrePrepare
from consensus.outbox import Clock, EvidenceLog, Outbox, SignatureCheck, Signer, Timers
from consensus.pool import PendingPool, PendingTx
from consensus.progress import ProgressTimer
from consensus.safety import SafetyLog
from consensus.transfer import FetchTracker
from consensus.view_state import ViewState
from consensus.votes import VoteBook
from core.block import Block, BlockHeader, CommitCertificate, compute_tx_root
from core.hashing import merkle_root
from core.successor import SuccessorError, validate_certified_successor


@dataclass(frozen=True, slots=True)
class Proposal:
    """An accepted PRE-PREPARE with its assembled block."""

    pp: PrePrepare
    block: Block


class NormalCase:
    """Proposing, validating, voting on and delivering blocks in the current view."""

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
        pool: PendingPool,
        assembly: BlockAssembly,
        fetch: FetchTracker,
        progress: ProgressTimer,
        on_delivered: Callable[[], None],
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
        self.pool = pool
        self.assembly = assembly
        self.fetch = fetch
        self.progress = progress
        self._on_delivered = on_delivered  # the replica's clean-up after delivery
        self._accepted: dict[int, Proposal] = {}  # validated proposals of the current view
        self._reproposed: dict[int, PrePrepare] = {}  # NEW-VIEW re-proposals waiting for their block

    # --- the accepted proposals of the view -----------------------------------------------------------

    def clear_accepted(self) -> None:
        """A view change started: nothing of the old view is accepted any more."""
        self._accepted = {}
        self._reproposed = {}

    def accept(self, pp: PrePrepare) -> None:
        """Accept a re-proposal of a NEW-VIEW (already checked against its view changes), once its block is
        assembled."""
        self._reproposed[pp.height] = pp
        self._promote_reproposals()

    def ensure_block(self, pp: PrePrepare) -> None:
        """Have the proposal's block at hand: held already, assembled from our transactions, or fetched."""
        if self.candidates.get(pp.block_hash) is None:
            block = self.assembly.assemble(pp)
            if block is not None:
                self.candidates.add(block)

    def _promote_reproposals(self) -> None:
        for height, pp in sorted(self._reproposed.items()):
            block = self.candidates.get(pp.block_hash)
            if block is not None:
                del self._reproposed[height]
                self._accepted[height] = Proposal(pp, block)

    def has_work(self) -> bool:
        """Something is in flight that should make progress within the view timeout."""
        delivered = self.chain.delivered_height
        return bool(
            any(h > delivered for h in self._accepted)
            or self._reproposed
            or self.candidates.has_certified()
            or self.views.low_height > delivered
            or self._is_waiting_for_transactions()
        )

    def _is_waiting_for_transactions(self) -> bool:
        """The next proposal of this view is held up by transactions nobody has served yet (a primary that
        cannot serve its own block must not stall the view forever)."""
        view, height = self.views.view, self._next_free_height()
        pp = self.votes.pre_prepare(view, height)
        return (
            pp is not None
            and not self.votes.is_rejected(view, height)
            and self.candidates.get(pp.block_hash) is None
        )

    def prune(self) -> None:
        low = self.chain.delivered_height
        self._accepted = {h: p for h, p in self._accepted.items() if h > low}
        self._reproposed = {h: pp for h, pp in self._reproposed.items() if h > low}

    # --- messages -------------------------------------------------------------------------------------

    def is_signed_by_sender(self, message: Message, height: int) -> bool:
        return self.signatures.is_signed_by(message, self.membership.at(height).key(message.sender))

    def is_in_window(self, peer: int, message: Prepare | Commit | PrePrepare) -> bool:
        """Cheap bounds before any signature check: a height above ours whose validator set is certain,
        a view near the one of the height's epoch (views restart at 0 in an epoch), a member as sender
        (a non-member is reported); far-ahead heights count as evidence we are behind."""
        delivered = self.chain.delivered_height
        height = message.height
        if not self.membership.is_known(height):
            # beyond what we executed: who may sign it is not certain yet, but f+1 links claiming such
            # heights still prove that an honest validator is that far ahead
            f = self.membership.at(delivered + 1).f
            self.fetch.note_far(peer, height, delivered, f)
            return False
        epoch = self.membership.epoch_at(height)
        if not epoch.validators.contains(message.sender):
            # honest validators only sign for heights of their sets, however old the height
            self.out.report(
                peer, f"message for height {height} from validator {message.sender}, not a member"
            )
            return False
        if height <= delivered:
            return False
        view = self.views.view if epoch.number == self.views.epoch else 0
        if not view - VIEW_WINDOW <= message.view <= view + VIEW_WINDOW:
            return False
        if height > max(delivered, self.views.low_height) + self.cfg.height_window:
            if self.is_signed_by_sender(message, height):
                self.fetch.note_far(message.sender, height, delivered, epoch.validators.f)
            return False
        return True

    def on_pre_prepare(self, peer: int, pp: PrePrepare) -> None:
        if not self.is_in_window(peer, pp):
            return
        if pp.sender != self.membership.at(pp.height).primary(pp.view):
            self.out.report(peer, f"pre-prepare for view {pp.view} from non-primary {pp.sender}")
            return
        if not self.is_signed_by_sender(pp, pp.height):
            self.out.report(peer, "pre-prepare signature does not verify")
            return
        existing = self.votes.pre_prepare(pp.view, pp.height)
        if existing is not None:
            if existing.block_hash != pp.block_hash:
                self.evidence.record(existing, pp)
            return
        if pp.header.height != pp.height:
            self.out.report(pp.sender, "pre-prepare block height differs from its sequence number")
            return
        self.votes.put_pre_prepare(pp, received_ms=self.clock.now_ms)
        self.ensure_block(pp)
        self.check_commit_quorum(pp.view, pp.height)
        self.advance()

    def on_prepare(self, peer: int, vote: Prepare) -> None:
        if self._is_new_vote(peer, vote, "prepare") and vote.view == self.views.view:
            self.advance()

    def on_commit(self, peer: int, vote: Commit) -> None:
        if self._is_new_vote(peer, vote, "commit"):
            self.check_commit_quorum(vote.view, vote.height)

    def _is_new_vote(self, peer: int, vote: Prepare | Commit, kind: str) -> bool:
        """Tally a PREPARE or COMMIT; False when it is out of window, forged, or not new (a conflicting
        second vote from the same sender is kept as evidence)."""
        if not self.is_in_window(peer, vote):
            return False
        if not self.is_signed_by_sender(vote, vote.height):
            self.out.report(peer, f"{kind} signature does not verify")
            return False
        earlier: Prepare | Commit | None
        if isinstance(vote, Prepare):
            added, earlier = self.votes.prepares.add(vote)
        else:
            added, earlier = self.votes.commits.add(vote)
        if earlier is not None:
            self.evidence.record(earlier, vote)
        return added

    # --- proposing, accepting and voting ------------------------------------------------------------

    def advance(self) -> None:
        """Make every step of the normal case that has become possible. Idempotent."""
        if not self.views.is_normal:
            return
        if self._reproposed:
            self._promote_reproposals()
        if self.chain.delivered_height >= self.views.low_height:
            self._accept_pre_prepares()
            if self._is_primary():
                self._propose()
        for height in sorted(self._accepted):
            if height > self.chain.delivered_height:
                self._vote_on(height)

    def _is_primary(self) -> bool:
        """We are the primary of the view for the next height, with the key the set names for us (a
        validator whose key is being replaced is not, with the other key, until the new one is in force)."""
        height = self.chain.delivered_height + 1
        return self.membership.at(height).primary(self.views.view) == self.index and self._is_member(height)

    def _next_free_height(self) -> int:
        height = max(self.chain.delivered_height, self.views.low_height) + 1
        while height in self._accepted:
            height += 1
        return height

    def _epoch_end(self) -> int | None:
        """The last height of the current epoch, once the change that ends it is approved."""
        return self.membership.last_height(self.views.epoch)

    def _is_member(self, height: int) -> bool:
        """We are a validator of the set certifying `height` (with the key we sign with)."""
        return self.membership.at(height).key_of(self.index) == self.signer.public_key

    def _accept_pre_prepares(self) -> None:
        view = self.views.view
        height = self._next_free_height()
        last = self._epoch_end()
        while last is None or height <= last:  # the next epoch's heights belong to its views
            pp = self.votes.pre_prepare(view, height)
            if pp is None or self.votes.is_rejected(view, height) or height in self._reproposed:
                return
            block = self.candidates.get(pp.block_hash)
            if block is None:
                return  # its transactions are still being fetched
            if max(0, height - self.p.pipeline_depth) > self.chain.executed_height:
                return  # the roots it must carry are not executed here yet
            fault = self._find_fault(pp, block)
            if fault or self._find_mismatch(pp):
                self.votes.reject(view, height)
                if fault:
                    self.out.report(
                        pp.sender, f"invalid pre-prepare at view {pp.view} height {height}: {fault}"
                    )
                return
            if not self.safety.may_vote(view, height, pp.block_hash):
                self.votes.reject(view, height)
                return
            self._accepted[height] = Proposal(pp, block)
            height += 1

    def _previous_header(self, height: int) -> tuple[bytes, int]:
        """(hash, time_ms) of the block before `height` on the chain being extended in this view."""
        if height - 1 in self._accepted:
            header = self._accepted[height - 1].pp.header
            return header.block_hash, header.time_ms
        return self.chain.prev_header(height)

    def _in_flight_tx_ids(self, below: int) -> set[bytes]:
        return {tx_id for h, p in self._accepted.items() if h < below for tx_id in p.pp.tx_ids}

    def _is_includable(self, tx_valid_until: int, tx_id: bytes, height: int, in_flight: set[bytes]) -> bool:
        if tx_valid_until < height or tx_valid_until > height + self.p.tx_validity_blocks_max:
            return False
        return not self.chain.committed.contains(tx_id) and tx_id not in in_flight

    def _find_fault(self, pp: PrePrepare, block: Block) -> str:
        """What makes the proposal invalid whatever chain it extends: the primary's fault ('' if none)."""
        header, height = pp.header, pp.height
        checks = (
            (header.chain_id == self.cfg.chain_id, "wrong chain id"),
            (header.proposer == self.membership.at(height).primary(pp.view), "proposer is not the primary"),
            (header.tx_count == len(pp.tx_ids), "tx_count is wrong"),
            (
                header.state_height == max(0, height - self.p.pipeline_depth),
                f"state_height must be {max(0, height - self.p.pipeline_depth)}",
            ),
            (len(block.txs) <= self.p.block_txs_max, "too many transactions"),
            (
                sum(len(tx.raw) for tx in block.txs) <= self.p.block_bytes_max - HEADER_BYTES_MAX,
                "too large",
            ),
        )
        for ok, reason in checks:
            if not ok:
                return reason
        if header.tx_root != merkle_root(list(pp.tx_ids)):
            return "tx_root does not match the transactions"
        seen: set[bytes] = set()
        for tx in block.txs:
            if tx.body.chain_id != self.cfg.chain_id or tx.tx_id in seen:
                return f"transaction {tx.tx_id.hex()} is duplicated or for another chain"
            if not height <= tx.body.valid_until <= height + self.p.tx_validity_blocks_max:
                return f"transaction {tx.tx_id.hex()} is expired or valid for too long"
            seen.add(tx.tx_id)
        return ""

    def _find_mismatch(self, pp: PrePrepare) -> str:
        """Why the proposal does not fit our chain, roots or clock ('' if it does). Not an accusation: a
        primary still in an older view, a replica resumed after a pause (its clock jumped, the message
        waited in a socket buffer) or our own state can be what differs."""
        header, height = pp.header, pp.height
        prev_hash, prev_time = self._previous_header(height)
        roots = self.chain.roots(header.state_height)
        received_ms = self.votes.received_ms(pp.view, height, self.clock.now_ms)
        checks = (
            (header.prev_hash == prev_hash, "prev_hash does not link to the previous block"),
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
            (
                header.validators_hash == self.membership.at(height).set_hash
                and header.next_validators_hash == self.membership.at(height + 1).set_hash,
                "the validator sets it names differ from ours",
            ),
        )
        for ok, reason in checks:
            if not ok:
                return reason
        in_flight = self._in_flight_tx_ids(height)
        for tx_id in pp.tx_ids:
            if self.chain.committed.contains(tx_id) or tx_id in in_flight:
                return f"transaction {tx_id.hex()} is committed or in flight"
        return ""

    def _needs_certifying_block(self, height: int) -> bool:
        """An idle chain must still certify the roots after its last transactions: header h carries the
        roots of h - pipeline_depth, so after a block with transactions the primary proposes up to
        pipeline_depth empty blocks. Without them a state proof of the newest state could never be
        checked against a certified header."""
        for earlier in range(height - 1, max(0, height - 1 - self.p.pipeline_depth), -1):
            accepted = self._accepted.get(earlier)
            block = accepted.block if accepted is not None else self.chain.block(earlier)
            if block is not None and block.txs:
                return True
        return False

    def _is_batch_still_filling(self) -> bool:
        """Cheap check before scanning the pool: too few transactions, and the oldest has not waited out
        the batch wait. Without it every arriving transaction would rescan the whole pool."""
        oldest = self.pool.oldest()
        if oldest is None or len(self.pool) >= self.p.block_txs_max:
            return False
        waited_ms = self.clock.now_ms - oldest.arrival_ms
        if waited_ms >= self.p.batch_wait_ms:
            return False
        if TIMER_BATCH not in self.timers:
            self.timers.set(TIMER_BATCH, self.p.batch_wait_ms - waited_ms)
        return True

    def _select_txs(self, height: int) -> tuple[list[PendingTx], bool]:
        """Pending transactions for a block at `height`, oldest first; True if the block is full."""
        in_flight = self._in_flight_tx_ids(height)
        txs: list[PendingTx] = []
        size = 0
        for pending in self.pool.items():
            tx = pending.tx
            if not self._is_includable(tx.body.valid_until, tx.tx_id, height, in_flight):
                continue
            if (
                len(txs) == self.p.block_txs_max
                or size + len(tx.raw) > self.p.block_bytes_max - HEADER_BYTES_MAX
            ):
                return txs, True
            txs.append(pending)
            size += len(tx.raw)
        return txs, len(txs) == self.p.block_txs_max

    def _propose(self) -> None:
        view = self.views.view
        last = self._epoch_end()
        while True:
            height = self._next_free_height()
            if height - self.p.pipeline_depth > self.chain.executed_height or self.votes.pre_prepare(
                view, height
            ):
                return
            if last is not None and height > last:
                return  # the next epoch's primary proposes it
            if self.safety.last_vote_view(height) >= view:
                return  # proposed here before a restart; let a view change resolve it
            if self._is_batch_still_filling():
                return
            prev_hash, prev_time = self._previous_header(height)
            txs, full = self._select_txs(height)
            if not txs and not self._needs_certifying_block(height):
                self.timers.cancel(TIMER_BATCH)
                return
            waited_ms = self.clock.now_ms - txs[0].arrival_ms if txs else self.p.batch_wait_ms
            if not full and waited_ms < self.p.batch_wait_ms:
                if TIMER_BATCH not in self.timers:
                    self.timers.set(TIMER_BATCH, self.p.batch_wait_ms - waited_ms)
                return
            state_height = max(0, height - self.p.pipeline_depth)
            roots = self.chain.roots(state_height)
            assert roots is not None  # executed_height >= state_height, and recent roots are kept
            block_txs = tuple(p.tx for p in txs)
            header = BlockHeader(
                chain_id=self.cfg.chain_id,
                height=height,
                prev_hash=prev_hash,
                time_ms=max(self.clock.now_ms, prev_time + 1),
                proposer=self.index,
                tx_count=len(block_txs),
                tx_root=compute_tx_root(block_txs),
                state_height=state_height,
                state_root=roots.state_root,
                results_root=roots.results_root,
                validators_hash=self.membership.at(height).set_hash,
                next_validators_hash=self.membership.at(height + 1).set_hash,
            )
            block = Block(header, block_txs)
            pp = self.signer.sign(PrePrepare.of_block(view, block, self.index))
            self.out.persist(self.safety.log_vote(view, height, block.block_hash, clog.PHASE_PRE_PREPARE))
            self.out.broadcast(pp)
            self.votes.put_pre_prepare(pp)
            self.candidates.add(block)
            self._accepted[height] = Proposal(pp, block)

    def _is_prepared(self, height: int) -> bool:
        proposal = self._accepted.get(height)
        if proposal is None:
            return False
        pp = proposal.pp
        matching = self.votes.prepares.signatures_for(self.views.view, height, pp.block_hash, pp.sender)
        return len(matching) + 1 >= self.membership.at(height).quorum

    def _is_settled(self, height: int) -> bool:
        """Height is final for us, or prepared in this view (the COMMIT ordering rule)."""
        if height <= max(self.chain.delivered_height, self.views.low_height) or self.candidates.is_certified(
            height
        ):
            return True
        slot = self.safety.prepared(height)
        return (
            height in self._accepted
            and slot is not None
            and slot.certificate.view == self.views.view
            and slot.certificate.block_hash == self._accepted[height].pp.block_hash
        )

    def _vote_on(self, height: int) -> None:
        """Send PREPARE and then COMMIT for an accepted pre-prepare when due (again after a restart: the
        same vote re-signed is the same deterministic signature, and it re-enters our own tally)."""
        if not self._is_member(height):
            return  # a validator not in this height's set follows the votes of those who are
        proposal = self._accepted[height]
        pp = proposal.pp
        view = self.views.view
        digest = pp.block_hash
        if pp.sender != self.index and not self.votes.prepares.has_voted(view, height, self.index):
            vote = self.signer.sign(Prepare(view, height, digest, self.index, b""))
            if not self.safety.has_voted(view, height, clog.PHASE_PREPARE):
                self.out.persist(self.safety.log_vote(view, height, digest, clog.PHASE_PREPARE))
            self.out.broadcast(vote)
            self.votes.prepares.put(vote)
        if self.votes.commits.has_voted(view, height, self.index) or not self._is_prepared(height):
            return
        if not self._is_settled(height - 1):
            return
        commit = self.signer.sign(Commit(view, height, digest, self.index, b""))
        if not self.safety.has_voted(view, height, clog.PHASE_COMMIT):
            cert_votes = [(pp.sender, pp.signature)]
            cert_votes += self.votes.prepares.signatures_for(view, height, digest, pp.sender)
            cert = PreparedCertificate(view, pp.header, tuple(sorted(cert_votes)))
            slot = clog.PreparedSlot(cert, proposal.block)
            self.out.persist(
                self.safety.put_prepared(slot), self.safety.log_vote(view, height, digest, clog.PHASE_COMMIT)
            )
        self.out.broadcast(commit)
        self.votes.commits.put(commit)
        self.check_commit_quorum(view, height)

    def resend_commits(self) -> None:
        """Retransmit our COMMITs above the delivered height: a peer may hold the block but lack the votes
        (lost messages), while others hold the votes but not the block. Re-signing the same (view, height,
        digest) yields the same deterministic Ed25519 signature, so this is no new vote."""
        for height, record in self.safety.commit_votes_above(self.chain.delivered_height):
            self.out.broadcast(
                self.signer.sign(Commit(record.view, height, record.block_hash, self.index, b""))
            )

    # --- certificates and delivery --------------------------------------------------------------------

    def check_commit_quorum(self, view: int, height: int) -> None:
        if height <= self.chain.delivered_height or self.candidates.is_certified(height):
            return
        quorum = self.membership.at(height).quorum
        for digest, signed in self.votes.commits.by_block(view, height):
            if len(signed) < quorum:
                continue
            cert = CommitCertificate(view, height, digest, tuple(sorted(signed)))
            self.candidates.note_certificate(cert, self.chain.delivered_height)
            block = self.candidates.get(digest)
            if block is None or block.header.height != height:
                self.fetch.note_behind(height, [s for s, _ in signed], self.chain.delivered_height)
                return
            self.candidates.certify(block, cert)
            self.deliver()
            return

    def deliver(self) -> None:
        """Hand certified blocks to the executor strictly in height order."""
        delivered_any = served_backlog = False
        while self.chain.delivered_height < self.chain.executed_height + self.membership.margin:
            # (never further ahead of execution: the next height's validator set must stay certain)
            height = self.chain.delivered_height + 1
            certified = self.candidates.pop_certified(height)
            if certified is None:
                break
            block, cert = certified
            try:
                # the certificate is ours, assembled from COMMITs verified one by one
                validate_certified_successor(
                    block,
                    None,
                    self.chain.tip(),
                    chain_id=self.cfg.chain_id,
                    validators=self.membership.at(height),
                    next_validators=self.membership.at(height + 1),
                    params=self.p,
                )
            except SuccessorError as exc:
                self.views.halt(
                    f"certified block {height} ({block.block_hash.hex()}) is not a valid successor of our "
                    f"chain ({exc}): more than f validators are faulty"
                )
                return
            accepted = self._accepted.get(height)
            if accepted is not None and accepted.pp.block_hash != block.block_hash:
                # an equivocating primary made us accept another block; what we built on it is dead
                self._accepted = {h: p for h, p in self._accepted.items() if h < height}
            self.chain.append(block, cert)
            if self.pool.remove_delivered(block, slack_ms=self.p.view_timeout_ms):
                served_backlog = True
                self.progress.note_served_backlog(height)
            self.out.emit(ExecuteBlock(block, cert))
            delivered_any = True
        if not delivered_any:
            return
        self.progress.on_delivered(in_normal_case=self.views.is_normal, served_backlog=served_backlog)
        self.pool.remove_expired(self.chain.delivered_height + 1)
        self._on_delivered()
        self.advance()
