"""The signing digests of validators' votes (what a PRE-PREPARE, PREPARE, COMMIT or CHECKPOINT signs), and of
the proof of possession a new validator node key signs.

They live in the base layer because more than consensus needs them: the replica signs and checks them
(consensus/messages.py), and the chaincode recomputes them to verify evidence of equivocation (two
conflicting messages signed by one validator, chaincode/evidence.py) inside block execution. Each is
`hash_value(Domain.<KIND>, payload)` over a map that always holds the chain id, so a signature cannot be
replayed across chains, views, heights or message kinds (docs/protocol/consensus.md, "Encoding and
signatures"). The COMMIT digest is core.block.compute_commit_digest (commit certificates are core vocabulary).
"""

from __future__ import annotations

from core.block import compute_commit_digest
from core.hashing import Domain, hash_value

__all__ = [
    "compute_checkpoint_digest",
    "compute_commit_digest",
    "compute_node_key_proof_digest",
    "compute_pre_prepare_digest",
    "compute_prepare_digest",
]


def compute_pre_prepare_digest(chain_id: str, view: int, height: int, block_hash: bytes) -> bytes:
    fields = {"block_hash": block_hash, "chain_id": chain_id, "height": height, "view": view}
    return hash_value(Domain.PRE_PREPARE, fields)


def compute_prepare_digest(chain_id: str, view: int, height: int, block_hash: bytes) -> bytes:
    fields = {"block_hash": block_hash, "chain_id": chain_id, "height": height, "view": view}
    return hash_value(Domain.PREPARE, fields)


def compute_checkpoint_digest(chain_id: str, height: int, block_hash: bytes, state_root: bytes) -> bytes:
    fields = {"block_hash": block_hash, "chain_id": chain_id, "height": height, "state_root": state_root}
    return hash_value(Domain.CHECKPOINT, fields)


def compute_node_key_proof_digest(chain_id: str, org: str, node_key: bytes, replaces: bytes | None) -> bytes:
    """What a validator's new node key signs to prove that its operator holds it (governance's
    add_validator and rotate_validator_key): the chain, the operating organisation, the key itself and the
    key it replaces (None when a validator is added). docs/CHAINCODE.md section 12.4."""
    fields = {"chain_id": chain_id, "node_key": node_key, "org": org, "replaces": replaces}
    return hash_value(Domain.NODE_KEY_PROOF, fields)
