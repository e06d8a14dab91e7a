"""The observer's follower: a regulator's node that verifies and re-executes the chain without voting.

For every block it receives (pushed by validators as they commit, or fetched for a range it missed) it
checks the commit certificate against the genesis validator set, the link to the previous block and the
transaction root, then executes it through the same chaincode and commits it. Each header also certifies the
roots of an earlier height (state_height); a mismatch with our own execution means the validators' state
diverged from the rules, and the observer halts loudly instead of following.

An observer holds no validator key and sends no consensus messages: it cannot be made to vote. The
follower is the observer's whole role (node.roles.Role).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from core.block import (
    Block,
    CertificateError,
    CertifiedBlock,
    compute_tx_root,
    decode_certified_block,
    verify_commit_certificate,
)
from core.errors import InvalidInput
from core.genesis import Genesis
from core.tx import SignedTx
from node.applier import BlockApplier
from node.channels import CHANNEL_BLOCKS
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

    def __init__(self, genesis: Genesis, store: Store, network: PeerLinks, applier: BlockApplier) -> None:
        self.genesis = genesis
        self.store = store
        self.network = network
        self.applier = applier
        self.halted_reason: str | None = None
        self.known_height = store.last_height  # the highest height any validator showed us
        self._ahead: dict[int, CertifiedBlock] = {}
        self._requests = BlockRequests(network)
        self._task: asyncio.Task[None] | None = None

    @property
    def catching_up(self) -> bool:
        return self.known_height > self.store.last_height

    def get_frame_handlers(self) -> Mapping[str, FrameHandler]:
        return {CHANNEL_BLOCKS: self.on_block_frame}

    def is_linked(self) -> bool:
        return any(peer.is_validator for peer in self.network.connected_peers())

    async def start(self) -> None:
        self._task = asyncio.create_task(self._catch_up_loop(), name="observer-catch-up")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # --- inputs -------------------------------------------------------------------------------------------

    def on_block_frame(self, peer: PeerId, payload: bytes) -> None:
        block = decode_certified_block(payload, tx_bytes_max=self.genesis.consensus.tx_bytes_max)
        self.on_block(peer, block)

    def on_block(self, peer: PeerId, block: CertifiedBlock) -> None:
        """A block pushed by a validator as it committed it."""
        if peer.role.value != "validator":
            raise InvalidInput("only validators stream blocks")
        self._verify_certificate(block)
        height = block.block.header.height
        self.known_height = max(self.known_height, height)
        if height <= self.store.last_height:
            return
        if height == self.store.last_height + 1:
            self._apply_in_order(block)
        elif len(self._ahead) < BUFFERED_BLOCKS_MAX:
            self._ahead[height] = block
            self._request_missing(peer)

    def on_blocks_answer(self, peer: PeerId, request_id: int, blocks: tuple[CertifiedBlock, ...]) -> None:
        if not self._requests.accept_answer(peer, request_id):
            return
        for block in blocks:
            self._verify_certificate(block)
            height = block.block.header.height
            self.known_height = max(self.known_height, height)
            if height == self.store.last_height + 1:
                self._apply_in_order(block)
        if blocks and self.catching_up:
            self._request_missing(peer)

    def on_peer_connected(self, peer: PeerId) -> None:
        if peer.role.value == "validator":
            self._request_missing(peer)

    def offer(self, tx: SignedTx) -> str | None:
        return None  # kept in the mempool and gossiped to the validators, which propose it

    # --- work -----------------------------------------------------------------------------------------------

    def _verify_certificate(self, certified: CertifiedBlock) -> None:
        """A block whose certificate does not verify is a lie by the sender: InvalidInput bans it."""
        try:
            verify_commit_certificate(
                certified.certificate, certified.block.header, self.genesis.validator_keys
            )
        except CertificateError as exc:
            raise InvalidInput(
                f"block {certified.block.header.height} has a bad commit certificate: {exc}"
            ) from None
        if compute_tx_root(certified.block.txs) != certified.block.header.tx_root:
            raise InvalidInput(f"block {certified.block.header.height} does not match its transaction root")

    def _apply_in_order(self, certified: CertifiedBlock) -> None:
        while certified is not None and self.halted_reason is None:
            self._check_links(certified.block)
            if self.halted_reason is not None:
                return
            self.applier.apply(certified.block, certified.certificate)
            next_block = self._ahead.pop(self.store.last_height + 1, None)
            if next_block is None:
                break
            certified = next_block
        for height in [h for h in self._ahead if h <= self.store.last_height]:
            del self._ahead[height]

    def _check_links(self, block: Block) -> None:
        header = block.header
        expected_prev = self.store.last_block_hash
        if header.prev_hash != expected_prev:
            self._halt(f"block {header.height} does not link to our block {header.height - 1}")
            return
        roots = self.store.get_roots(header.state_height)
        if roots is None:
            self._halt(
                f"block {header.height} certifies roots of height {header.state_height}, which we lack"
            )
            return
        ours_state, ours_results = roots
        if header.state_root != ours_state or header.results_root != ours_results:
            self._halt(
                f"state divergence at height {header.state_height}: validators certified state root "
                f"{header.state_root.hex()} / results root {header.results_root.hex()}, our execution gives "
                f"{ours_state.hex()} / {ours_results.hex()}"
            )

    def _request_missing(self, peer: PeerId) -> None:
        if self._requests.is_asking(peer):
            return
        first = self.store.last_height + 1
        self._requests.request(peer, first, first + SYNC_BLOCKS_MAX - 1)

    async def _catch_up_loop(self) -> None:
        """Ask a validator for blocks periodically, so a missed push never leaves us behind for long."""
        while True:
            await asyncio.sleep(CATCH_UP_INTERVAL_S)
            self._requests.clear()
            for peer in self.network.connected_peers():
                if peer.role.value == "validator":
                    self._request_missing(peer)
                    break

    def _halt(self, reason: str) -> None:
        self.halted_reason = reason
        log.critical("OBSERVER HALTED: %s", reason, extra={"height": self.store.last_height})
