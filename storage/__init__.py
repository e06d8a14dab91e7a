"""Durable storage of a node over LevelDB (plyvel): blocks, world state with history, the state trie and
its proofs, and the consensus log.

Importing `storage` or `storage.proof` does not load plyvel, so clients and auditors can verify state proofs
without it; `Store`, `StoreSnapshot` and `ConsensusLog` are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from storage.errors import (
    CommitRefused,
    GenesisMismatch,
    ProofError,
    SchemaMismatch,
    StorageError,
    StorageIOError,
    StoreCorrupt,
    StoreLocked,
)
from storage.proof import StateProof, verify_state_proof
from storage.records import CommitOutcome, KeyVersion, StoredBlock, TxLocation
from storage.trie import compute_state_root

if TYPE_CHECKING:
    from storage.consensus_log import ConsensusLog
    from storage.store import Store, StoreSnapshot

__all__ = [
    "CommitOutcome",
    "CommitRefused",
    "ConsensusLog",
    "GenesisMismatch",
    "KeyVersion",
    "ProofError",
    "SchemaMismatch",
    "StateProof",
    "StorageError",
    "StorageIOError",
    "Store",
    "StoreCorrupt",
    "StoreLocked",
    "StoreSnapshot",
    "StoredBlock",
    "TxLocation",
    "compute_state_root",
    "verify_state_proof",
]


def __getattr__(name: str) -> Any:
    if name in ("Store", "StoreSnapshot"):
        from storage import store

        return getattr(store, name)
    if name == "ConsensusLog":
        from storage import consensus_log

        return consensus_log.ConsensusLog
    raise AttributeError(f"module 'storage' has no attribute {name!r}")
