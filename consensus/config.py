"""What a replica is built from: its configuration, the limits every part shares, and execution roots."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InvariantBroken
from core.genesis import ConsensusParams, Genesis

VIEW_WINDOW = 4  # messages for views further ahead than this are ignored
BACKOFF_MAX = 6  # the view timeout doubles at most this many times (64x)
EVIDENCE_MAX = 1000  # misbehaviour evidence kept in memory
HEADER_BYTES_MAX = 1024  # room reserved for the header when filling a block to block_bytes_max
TIMER_SLACK_MS = 50  # a TimerFired this much before its deadline still counts (shell clocks differ slightly)


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    chain_id: str
    genesis_hash: bytes  # prev_hash of block 1
    genesis_time_ms: int  # block 1's time must exceed it
    validator_keys: tuple[bytes, ...]  # genesis validator node keys: validators 0..n-1
    params: ConsensusParams
    index: int  # our validator number (a genesis index, or the number a later change gave us)

    @classmethod
    def from_genesis(
        cls, genesis: Genesis, node_public_key: bytes, *, number: int | None = None
    ) -> ReplicaConfig:
        """Our number is our genesis index, or `number` for a validator a later change added."""
        keys = genesis.validator_keys
        if number is None:
            if node_public_key not in keys:
                raise InvariantBroken(
                    "this node's key is not a genesis validator (a joining one needs its number)"
                )
            number = keys.index(node_public_key)
        return cls(
            genesis.chain_id, genesis.genesis_hash, genesis.genesis_time_ms, keys, genesis.consensus, number
        )

    @property
    def height_window(self) -> int:
        """How far above the delivered height (or the view's low mark) votes are tallied."""
        return 2 * self.params.pipeline_depth + 2


@dataclass(frozen=True, slots=True)
class ExecutionRoots:
    state_root: bytes  # world-state root after executing the height
    results_root: bytes  # merkle root of the height's transaction results
