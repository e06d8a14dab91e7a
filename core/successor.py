"""The one rule for "a valid certified successor block": every node and the auditor check blocks with it.

A block at height h is a valid successor of the chain tip (height h-1, its hash and time) when, in this
order (the first failure raises SuccessorError naming its check):
  1. height        h = tip height + 1;
  2. chain id      the header's chain id is the chain's;
  3. hash link     prev_hash is the tip's hash;
  4. block time    time_ms exceeds the tip's time_ms;
  5. proposer      the proposer number names a member of the set in force at h;
  5b. validator sets  validators_hash is the hash of the set in force at h, next_validators_hash that of
                 the set in force at h + 1 (they differ only at the last height of an epoch);
  6. tx count      tx_count equals the number of transactions, which is at most block_txs_max;
  7. tx root       tx_root is the merkle root of the transaction ids in order;
  8. state height  state_height = max(0, h - pipeline_depth);
  9. certificate   a quorum of distinct members of the set in force at h signed COMMIT for this header
                   (core.block.verify_commit_certificate);
 10. state root, results root   they equal our own roots of state_height, where we have them.
Checks 1, 3 and 4 need the tip (skipped while it is unknown, e.g. for a block buffered ahead); check 9
needs a certificate (skipped for one a replica assembled itself from votes it verified one by one); check
10 needs our roots. Who calls it: state transfer (consensus/catch_up.py), delivery in the normal case
(consensus/normal_case.py), the observer (node/observer.py) and the audit (audit/chain.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.block import Block, CertificateError, CommitCertificate, compute_tx_root, verify_commit_certificate
from core.errors import InvalidInput
from core.genesis import ConsensusParams
from core.validators import ValidatorSet

CHECK_HEIGHT = "height"
CHECK_CHAIN_ID = "chain id"
CHECK_HASH_LINK = "hash link"
CHECK_BLOCK_TIME = "block time"
CHECK_PROPOSER = "proposer"
CHECK_VALIDATORS = "validator sets"
CHECK_TX_COUNT = "transaction count"
CHECK_TX_ROOT = "transaction root"
CHECK_STATE_HEIGHT = "state height"
CHECK_CERTIFICATE = "commit certificate"
CHECK_STATE_ROOT = "state root"
CHECK_RESULTS_ROOT = "results root"
ROOT_CHECKS = (CHECK_STATE_ROOT, CHECK_RESULTS_ROOT)  # a failure here is divergence, not a bad sender


class SuccessorError(InvalidInput):
    """A block is not a valid certified successor; names the height, the check and what differs."""

    def __init__(self, height: int, check: str, detail: str) -> None:
        super().__init__(f"height {height}: {check}: {detail}")
        self.height = height
        self.check = check
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ChainTip:
    """The last block a successor must extend (the genesis: height 0, the genesis hash and time)."""

    height: int
    block_hash: bytes
    time_ms: int


RootsLookup = Callable[[int], "tuple[bytes, bytes] | None"]  # height -> (state_root, results_root)


def validate_certified_successor(
    block: Block,
    certificate: CommitCertificate | None,
    tip: ChainTip | None,
    *,
    chain_id: str,
    validators: ValidatorSet,
    next_validators: ValidatorSet,
    params: ConsensusParams,
    roots: RootsLookup | None = None,
) -> None:
    """Raise SuccessorError unless `block` (with `certificate`) validly extends `tip`; see the module."""
    header = block.header
    height = header.height
    if tip is not None and height != tip.height + 1:
        raise SuccessorError(tip.height + 1, CHECK_HEIGHT, f"the block has height {height}")
    if header.chain_id != chain_id:
        raise SuccessorError(height, CHECK_CHAIN_ID, f"block is for chain {header.chain_id!r}")
    if tip is not None and header.prev_hash != tip.block_hash:
        raise SuccessorError(
            height,
            CHECK_HASH_LINK,
            f"prev_hash {header.prev_hash.hex()} is not the hash of block {height - 1} ({tip.block_hash.hex()})",
        )
    if tip is not None and header.time_ms <= tip.time_ms:
        raise SuccessorError(
            height, CHECK_BLOCK_TIME, f"time_ms {header.time_ms} does not exceed {tip.time_ms}"
        )
    if not validators.contains(header.proposer):
        raise SuccessorError(
            height, CHECK_PROPOSER, f"validator {header.proposer} is not a member of the set"
        )
    if header.validators_hash != validators.set_hash:
        raise SuccessorError(
            height,
            CHECK_VALIDATORS,
            f"validators_hash {header.validators_hash.hex()} is not the set in force",
        )
    if header.next_validators_hash != next_validators.set_hash:
        raise SuccessorError(
            height,
            CHECK_VALIDATORS,
            f"next_validators_hash {header.next_validators_hash.hex()} is not the set in force at {height + 1}",
        )
    if header.tx_count != len(block.txs):
        raise SuccessorError(
            height,
            CHECK_TX_COUNT,
            f"the header says {header.tx_count} transactions, the block holds {len(block.txs)}",
        )
    if len(block.txs) > params.block_txs_max:
        raise SuccessorError(
            height, CHECK_TX_COUNT, f"{len(block.txs)} exceeds block_txs_max {params.block_txs_max}"
        )
    tx_root = compute_tx_root(block.txs)
    if tx_root != header.tx_root:
        raise SuccessorError(
            height,
            CHECK_TX_ROOT,
            f"the header commits to {header.tx_root.hex()}, the transactions hash to {tx_root.hex()}",
        )
    state_height = max(0, height - params.pipeline_depth)
    if header.state_height != state_height:
        raise SuccessorError(
            height,
            CHECK_STATE_HEIGHT,
            f"header certifies height {header.state_height}, must be {state_height}",
        )
    if certificate is not None:
        try:
            verify_commit_certificate(certificate, header, validators)
        except CertificateError as exc:
            raise SuccessorError(height, CHECK_CERTIFICATE, str(exc)) from None
    ours = None if roots is None else roots(state_height)
    if ours is not None:
        state_root, results_root = ours
        if header.state_root != state_root:
            raise SuccessorError(
                height,
                CHECK_STATE_ROOT,
                f"the header certifies {header.state_root.hex()} for height {state_height}, ours is "
                f"{state_root.hex()}",
            )
        if header.results_root != results_root:
            raise SuccessorError(
                height,
                CHECK_RESULTS_ROOT,
                f"the header certifies {header.results_root.hex()} for height {state_height}, ours is "
                f"{results_root.hex()}",
            )
