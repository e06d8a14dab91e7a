"""The normal case of the PBFT replica: PRE-PREPARE -> PREPARE -> COMMIT -> ExecuteBlock, in one view.

The primary proposes blocks (batching pending transactions, certifying the roots of an idle chain); every
replica validates a PRE-PREPARE against the chain it extends and its own roots (safety rule 3), votes only
through `_may_vote` with the vote persisted before it leaves (rule 1), sends COMMIT for a height only once
the height below is prepared in this view or settled (rule 2), and hands blocks with a 2f+1 COMMIT
certificate to the executor strictly in height order (rule 4). A mixin of consensus.replica.Replica.
"""

from __future__ import annotations

from dataclasses import replace

from consensus import log as clog
from consensus.certificate import get_primary
from consensus.events import BROADCAST, TIMER_BATCH, ExecuteBlock, Halt, LogRecord, Send
from consensus.messages import Commit, Prepare, PreparedCertificate, PrePrepare, compute_signing_digest
from consensus.pool import PendingTx
from consensus.replica_base import HEADER_BYTES_MAX, VIEW_WINDOW, ReplicaBase, Status
from core.block import Block, BlockHeader, CommitCertificate, compute_tx_root


class NormalCaseMixin(ReplicaBase):
    """Proposing, validating, voting on and delivering blocks in the current view."""

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
