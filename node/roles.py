"""The two roles a node plays, behind one interface: a validator votes in PBFT through its consensus shell
(node.validator.ValidatorRole); an observer follows the chain and re-verifies every block without voting
(node.observer.ObserverFollower).

The runtime, the API backend and the sync channel talk to a node's role only through `Role`. Which role a
node plays is decided once, when node/runtime.py builds it from the config and the genesis entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from core.block import CertifiedBlock
from core.tx import SignedTx
from node.checkpoints import CheckpointStatus
from p2p import FrameHandler, PeerId


class Role(Protocol):
    """What a running node needs of its role."""

    @property
    def kind(self) -> str:
        """Either "validator" or "observer"."""
        ...

    @property
    def halted_reason(self) -> str | None:
        """Why the node stopped following the chain (safety halt), or None while it runs."""
        ...

    @property
    def paused_reason(self) -> str | None:
        """Why the node stopped ordering for now (its disk is nearly full: node.diskguard), or None."""
        ...

    @property
    def catching_up(self) -> bool:
        """True while blocks asked from peers have not arrived."""
        ...

    @property
    def view(self) -> int | None:
        """The consensus view; None for an observer, which takes no part in consensus."""
        ...

    @property
    def primary(self) -> int | None:
        """The primary of the current view; None for an observer."""
        ...

    def get_frame_handlers(self) -> Mapping[str, FrameHandler]:
        """The peer channels this role receives on besides "sync", each with its handler."""
        ...

    async def start(self) -> None:
        """Start taking part, once the peer layer runs."""
        ...

    async def stop(self) -> None: ...

    @property
    def validators_needed(self) -> int:
        """Validators this node must be linked to, to make progress (a quorum's others; one for an observer)."""
        ...

    def pause(self, reason: str) -> None:
        """Write nothing until resume(): a validator stops stepping its replica, an observer applying blocks."""
        ...

    def resume(self) -> None: ...

    def is_linked(self) -> bool:
        """Enough peers are connected for this role to make progress."""
        ...

    def get_checkpoint(self) -> CheckpointStatus | None:
        """The last stable checkpoint and the consensus log's size; None for an observer."""
        ...

    def on_peer_connected(self, peer: PeerId) -> None: ...

    def on_peer_disconnected(self, peer: PeerId) -> None: ...

    def on_blocks_answer(self, peer: PeerId, request_id: int, blocks: tuple[CertifiedBlock, ...]) -> None:
        """An answer on the sync channel (node/sync.py) to a range this role may have asked for."""
        ...

    def on_txs_answer(self, peer: PeerId, request_id: int, txs: tuple[SignedTx, ...]) -> None:
        """An answer on the sync channel to transactions this role may have asked for."""
        ...

    def get_known_txs(self, tx_ids: tuple[bytes, ...]) -> list[SignedTx]:
        """Those of `tx_ids` this role can serve to a validator assembling a proposal."""
        ...

    def offer(self, txs: Sequence[SignedTx]) -> list[str | None]:
        """Transactions that passed admission: take them into the node's one pending pool (the replica's,
        or the observer's relay pool). Per transaction, None when taken, else the refusal code
        (consensus.events.REFUSED_*)."""
        ...

    def get_pending(self, tx_id: bytes) -> SignedTx | None:
        """The transaction while it waits in the pending pool."""
        ...

    def is_committed_recently(self, tx_id: bytes) -> bool | None:
        """Whether it was committed within the last tx_validity_blocks_max heights, from memory; None when
        this role keeps no such window (the store is asked). Within the validity window is enough to refuse
        every replay of a transaction that has not expired (docs/protocol/consensus.md, replay window)."""
        ...

    @property
    def pending_count(self) -> int: ...

    @property
    def pending_bytes(self) -> int: ...

    def get_lingering(self, older_than_s: float, limit: int) -> list[SignedTx]:
        """Pending transactions older than `older_than_s`, oldest first (re-gossiped: a frame may be lost)."""
        ...

    def drop_expired(self, next_height: int) -> int:
        """Forget pending transactions that can no longer be included; how many."""
        ...
