"""The observer's follower: a regulator's node that verifies and re-executes the chain without voting.

For every block it receives (pushed by validators as they commit, or fetched for a range it missed) it
checks that the block is a valid certified successor of its chain (core/successor.py): on arrival what the
block proves on its own (counts, transaction root, the commit certificate against the validator set in force
at its height: the sets governance changes, as the executed chain decides them, consensus.membership), and
before applying it the link to the previous block and the roots of an earlier height (state_height) it
certifies. A block that fails on arrival is a lie by its sender (banned); one that fails at apply time
means the validators' state diverged from the rules, and the observer halts loudly instead of following.
It then executes the block through the same chaincode and commits it. Its pool of pending transactions
(node/relay.py) holds what clients submitted here until a block commits it.

An observer holds no validator key and sends no consensus messages: it cannot be made to vote. The
follower is the observer's whole role (node.roles.Role).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from consensus.pool import PoolLimits
from core.block import CertifiedBlock, CommitCertificate, decode_certified_block, peek_certified_block_height
from core.errors import InvalidInput
from core.genesis import Genesis
from core.successor import ROOT_CHECKS, ChainTip, SuccessorError, validate_certified_successor
from core.tx import SignedTx
from node.applier import BlockApplier
from node.channels import CHANNEL_BLOCKS
from node.relay import RelayPool
from node.roster import Roster
from node.sync import SYNC_BLOCKS_MAX, BlockRequests, PeerLinks
from p2p import FrameHandler, PeerId
from storage import Store

log = logging.getLogger(__name__)

BUFFERED_BLOCKS_MAX = 1000  # blocks received ahead of our height, kept until the gap is filled
CATCH_UP_INTERVAL_S = 2.0


class ObserverFollower:
    kind = "observer"
    view = None  # an observer takes no part in consensus
    primary = None
    validators_needed = 1  # any validator streams blocks and answers block ranges

    def __init__(
        self,
        genesis: Genesis,
        store: Store,
        network: PeerLinks,
        applier: BlockApplier,
        roster: Roster,
        pool_limits: PoolLimits | None = None,
    ) -> None:
        self.genesis = genesis
        self.roster = roster  # the validator set of each height, from the blocks we executed
        self.pool = RelayPool(pool_limits or PoolLimits.for_chain(genesis.consensus.block_txs_max))
        self.store = store
        self.network = network
        self.applier = applier
        self.halted_reason: str | None = None
        self.paused_reason: str | None = None  # set by pause(): no block is applied meanwhile
        self.known_height = store.last_height  # the highest height any validator showed us
        self._ahead: dict[int, CertifiedBlock] = {}
        self._unverified: set[int] = set()  # heights in _ahead whose certificate waits for its set
        self._requests = BlockRequests(network)
        self._applied_tip: ChainTip | None = None  # of the last block applied here (saves a block read)
        self._height_at_tick = store.last_height  # our height at the last catch-up tick
        self._task: asyncio.Task[None] | None = None

    @property
    def catching_up(self) -> bool:
        return self.known_height > self.store.last_height

    def get_frame_handlers(self) -> Mapping[str, FrameHandler]:
        return {CHANNEL_BLOCKS: self.on_block_frame}

    def is_linked(self) -> bool:
        return any(peer.is_validator for peer in self.network.connected_peers())

    def get_checkpoint(self) -> None:
        return None  # checkpoints are signed by validators; an observer re-verifies every block instead

    async def start(self) -> None:
        self._task = asyncio.create_task(self._catch_up_loop(), name="observer-catch-up")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def pause(self, reason: str) -> None:
        """Apply no more blocks until resume(); the catch-up loop fetches what was missed afterwards."""
        self.paused_reason = reason

    def resume(self) -> None:
        self.paused_reason = None

    # --- inputs -------------------------------------------------------------------------------------------

    def on_block_frame(self, peer: PeerId, payload: bytes) -> None:
        if peer.role.value != "validator":
            raise InvalidInput("only validators stream blocks")
        # Every validator pushes every block it commits: decode (the observer's costliest step) only the
        # first copy of a height, skipping heights already applied or buffered.
        height = peek_certified_block_height(payload)
        if height is not None and (height <= self.store.last_height or self._is_buffered(height)):
            return
        block = decode_certified_block(payload, tx_bytes_max=self.genesis.consensus.tx_bytes_max)
        self.on_block(peer, block)

    def _is_buffered(self, height: int) -> bool:
        """A checked block of this height waits in the buffer (an unchecked one may be replaced)."""
        return height in self._ahead and height not in self._unverified

    def on_block(self, peer: PeerId, block: CertifiedBlock) -> None:
        """A block pushed by a validator as it committed it."""
        if peer.role.value != "validator":
            raise InvalidInput("only validators stream blocks")
        verified = self._verify_certificate(block)
        height = block.block.header.height
        if verified:
            self.known_height = max(self.known_height, height)
        if height <= self.store.last_height:
            return
        if height == self.store.last_height + 1:
            self._apply_in_order(block)
        elif len(self._ahead) < BUFFERED_BLOCKS_MAX:
            self._ahead[height] = block
            if not verified:
                self._unverified.add(height)
            self._request_missing(peer)

    def on_blocks_answer(self, peer: PeerId, request_id: int, blocks: tuple[CertifiedBlock, ...]) -> None:
        if not self._requests.accept_answer(peer, request_id):
            return
        for block in blocks:
            height = block.block.header.height
            if self._verify_certificate(block):
                self.known_height = max(self.known_height, height)
            if height == self.store.last_height + 1:
                self._apply_in_order(block)
        if blocks and self.catching_up:
            self._request_missing(peer)

    def on_peer_connected(self, peer: PeerId) -> None:
        if peer.role.value == "validator":
            self._request_missing(peer)

    def on_peer_disconnected(self, peer: PeerId) -> None:
        return  # the follower asks whichever validator pushes or answers next

    def offer(self, txs: Sequence[SignedTx]) -> list[str | None]:
        return [self.pool.offer(tx) for tx in txs]  # relayed to the validators, which propose them

    def on_txs_answer(self, peer: PeerId, request_id: int, txs: tuple[SignedTx, ...]) -> None:
        return  # an observer assembles no proposals, so it asks for no transactions

    def get_known_txs(self, tx_ids: tuple[bytes, ...]) -> list[SignedTx]:
        return []  # only validators are asked

    def get_pending(self, tx_id: bytes) -> SignedTx | None:
        return self.pool.get(tx_id)

    def is_committed_recently(self, tx_id: bytes) -> bool | None:
        return None  # no window kept: the store answers

    @property
    def pending_count(self) -> int:
        return len(self.pool)

    @property
    def pending_bytes(self) -> int:
        return self.pool.size_bytes

    def get_lingering(self, older_than_s: float, limit: int) -> list[SignedTx]:
        return self.pool.get_lingering(older_than_s, limit)

    def drop_expired(self, next_height: int) -> int:
        return len(self.pool.remove_expired(next_height))

    # --- work -----------------------------------------------------------------------------------------------

    def _verify_certificate(self, certified: CertifiedBlock) -> bool:
        """Everything a block proves on its own (core/successor.py without the tip): a block that fails is
        a lie by the sender, and InvalidInput bans it. False, unchecked, for a block so far ahead that the
        validator sets of its heights are not certain yet (it is checked whole before it is applied)."""
        if not self.roster.membership.is_known(certified.block.header.height + 1):
            return False
        try:
            self._validate(certified, certified.certificate, tip=None, check_roots=False)
        except SuccessorError as exc:
            raise InvalidInput(f"served a bad block: {exc}") from None
        return True

    def _apply_in_order(self, certified: CertifiedBlock) -> None:
        if self.paused_reason is not None:
            return
        while certified is not None and self.halted_reason is None:
            height = certified.block.header.height
            unverified = height in self._unverified
            self._unverified.discard(height)
            try:
                # a certificate verified on arrival is not checked again; now the link and the roots it
                # certifies (the roots are checked after the certificate: a failure there is certified)
                certificate = certified.certificate if unverified else None
                self._validate(certified, certificate, tip=self._tip(), check_roots=True)
            except SuccessorError as exc:
                if unverified and exc.check not in ROOT_CHECKS:  # an uncertified block someone pushed
                    log.warning("dropped a block received ahead of our height: %s", exc)
                    break
                # a certified block that certifies other roots than our own execution (the validators'
                # state diverged from the rules), or does not extend our chain (more than f are faulty)
                if exc.check in ROOT_CHECKS:
                    state_height = certified.block.header.state_height
                    self._halt(f"state divergence at height {state_height}: {exc.check}: {exc.detail}")
                else:
                    self._halt(f"a certified block does not extend our chain: {exc}")
                return
            applied = self.applier.apply(certified.block, certified.certificate)
            self.roster.note_block(height, applied.writes)
            header = certified.block.header
            self._applied_tip = ChainTip(header.height, certified.block.block_hash, header.time_ms)
            self.pool.remove_many(tx.tx_id for tx in certified.block.txs)
            next_block = self._ahead.pop(self.store.last_height + 1, None)
            if next_block is None:
                break
            certified = next_block
        for height in [h for h in self._ahead if h <= self.store.last_height]:
            del self._ahead[height]
            self._unverified.discard(height)

    def _validate(
        self,
        certified: CertifiedBlock,
        certificate: CommitCertificate | None,
        *,
        tip: ChainTip | None,
        check_roots: bool,
    ) -> None:
        validate_certified_successor(
            certified.block,
            certificate,
            tip,
            chain_id=self.genesis.chain_id,
            validators=self.roster.membership.at(certified.block.header.height),
            next_validators=self.roster.membership.at(certified.block.header.height + 1),
            params=self.genesis.consensus,
            roots=self.store.get_roots if check_roots else None,
        )

    def _tip(self) -> ChainTip:
        height = self.store.last_height
        if self._applied_tip is not None and self._applied_tip.height == height:
            return self._applied_tip
        if height == 0:
            return ChainTip(0, self.genesis.genesis_hash, self.genesis.genesis_time_ms)
        stored = self.store.get_block(height)
        assert stored is not None  # the last committed block is stored with it
        return ChainTip(height, stored.block.block_hash, stored.block.header.time_ms)

    def _request_missing(self, peer: PeerId) -> None:
        if self._requests.is_asking(peer):
            return
        first = self.store.last_height + 1
        self._requests.request(peer, first, first + SYNC_BLOCKS_MAX - 1)

    async def _catch_up_loop(self) -> None:
        while True:
            await asyncio.sleep(CATCH_UP_INTERVAL_S)
            self.on_catch_up_tick()

    def on_catch_up_tick(self) -> None:
        """Every CATCH_UP_INTERVAL_S: ask a validator for blocks, so a missed push never leaves us behind for
        long (an unanswered request is forgotten first). Not while pushes keep us at the head: blocks were
        applied since the last tick and none is known beyond ours. An answer then would hold the blocks the
        pushes bring anyway, decoded and checked twice."""
        progressed = self.store.last_height != self._height_at_tick
        self._height_at_tick = self.store.last_height
        if progressed and not self.catching_up:
            return
        self._requests.clear()
        for peer in self.network.connected_peers():
            if peer.role.value == "validator":
                self._request_missing(peer)
                break

    def _halt(self, reason: str) -> None:
        self.halted_reason = reason
        log.critical("OBSERVER HALTED: %s", reason, extra={"height": self.store.last_height})
