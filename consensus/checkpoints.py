"""Checkpoints: every checkpoint_interval heights the validators sign the state root they executed to.

A quorum of matching CHECKPOINTs makes the height stable: the safety log below it is no longer needed and
is deleted. A quorum for a different root than ours means our execution diverged: the replica halts rather
than fork. f+1 CHECKPOINTs for a height we have not delivered prove that we are behind.
"""

from __future__ import annotations

from consensus import log as clog
from consensus.chain import ChainWindow
from consensus.config import ReplicaConfig
from consensus.membership import Membership
from consensus.messages import Checkpoint
from consensus.outbox import EvidenceLog, Outbox, SignatureCheck, Signer
from consensus.safety import SafetyLog
from consensus.transfer import FetchTracker
from consensus.view_state import ViewState


class Checkpoints:
    def __init__(
        self,
        *,
        config: ReplicaConfig,
        membership: Membership,
        outbox: Outbox,
        signer: Signer,
        signatures: SignatureCheck,
        evidence: EvidenceLog,
        views: ViewState,
        chain: ChainWindow,
        safety: SafetyLog,
        fetch: FetchTracker,
        last_signed: int,
    ) -> None:
        self.cfg = config
        self.p = config.params
        self.index = config.index
        self.membership = membership
        self.out = outbox
        self.signer = signer
        self.signatures = signatures
        self.evidence = evidence
        self.views = views
        self.chain = chain
        self.safety = safety
        self.fetch = fetch
        self.last_signed = last_signed  # the last height we signed a CHECKPOINT for (persisted)
        self.stable_height = 0  # the last height a quorum agreed on
        self._votes: dict[int, dict[int, Checkpoint]] = {}  # height -> sender -> CHECKPOINT

    def on_executed(self, height: int, state_root: bytes) -> None:
        """Sign a CHECKPOINT when execution reaches a checkpoint height."""
        if height % self.p.checkpoint_interval != 0 or height <= self.last_signed:
            return
        if self.membership.at(height).key_of(self.index) != self.signer.public_key:
            return  # not a validator of this height's set
        block = self.chain.block(height)
        assert block is not None  # executed heights are delivered, and recent blocks are kept
        checkpoint = self.signer.sign(Checkpoint(height, block.block_hash, state_root, self.index, b""))
        self.last_signed = height
        self.out.persist(clog.record_checkpoint(height, block.block_hash, state_root))
        self.out.broadcast(checkpoint)
        self._votes.setdefault(height, {})[self.index] = checkpoint
        self._evaluate(height)

    def on_checkpoint(self, peer: int, checkpoint: Checkpoint) -> None:
        height = checkpoint.height
        if height % self.p.checkpoint_interval != 0 or height <= self.stable_height:
            return
        if not self.membership.is_known(height):
            # beyond what we executed (its signers are not certain yet): f+1 links claiming it still
            # prove an honest validator got that far
            f = self.membership.at(self.chain.delivered_height + 1).f
            self.fetch.note_far(peer, height + 1, self.chain.delivered_height, f)
            return
        validators = self.membership.at(height)
        if not validators.contains(checkpoint.sender):
            self.out.report(
                peer, f"checkpoint for height {height} from validator {checkpoint.sender}, not a member"
            )
            return
        key = validators.key(checkpoint.sender)
        if height > self.chain.executed_height + 2 * self.p.checkpoint_interval + self.cfg.height_window:
            if self.signatures.is_signed_by(checkpoint, key):
                self.fetch.note_far(checkpoint.sender, height + 1, self.chain.delivered_height, validators.f)
            return
        if not self.signatures.is_signed_by(checkpoint, key):
            self.out.report(peer, "checkpoint signature does not verify")
            return
        votes = self._votes.setdefault(height, {})
        existing = votes.get(checkpoint.sender)
        if existing is not None:
            if existing.state_root != checkpoint.state_root or existing.block_hash != checkpoint.block_hash:
                self.evidence.record(existing, checkpoint)
            return
        votes[checkpoint.sender] = checkpoint
        self._evaluate(height)

    def _evaluate(self, height: int) -> None:
        validators = self.membership.at(height)
        votes = self._votes.get(height, {})
        ours = votes.get(self.index)
        groups: dict[tuple[bytes, bytes], list[int]] = {}
        for sender, vote in votes.items():
            groups.setdefault((vote.block_hash, vote.state_root), []).append(sender)
        if ours is None:
            if height > self.chain.delivered_height and len(votes) >= validators.weak_quorum:
                self.fetch.note_behind(height, sorted(votes), self.chain.delivered_height)
            return
        for (block_hash, state_root), senders in sorted(groups.items()):
            if (block_hash, state_root) == (ours.block_hash, ours.state_root):
                if len(senders) >= validators.quorum:
                    self._make_stable(height)
            elif len(senders) >= validators.quorum:
                self.views.halt(
                    f"state divergence at checkpoint height {height}: our state_root {ours.state_root.hex()}, "
                    f"validators {senders} have {state_root.hex()} (non-deterministic execution; not forking)"
                )
                return

    def _make_stable(self, height: int) -> None:
        if height <= self.stable_height:
            return
        self.stable_height = height
        self.out.persist(*self.safety.prune_through(height))
        self._votes = {h: v for h, v in self._votes.items() if h > height}
