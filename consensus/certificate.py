"""Quorum certificates and the view-change rule: verifying them and computing a NEW-VIEW's re-proposals.

All functions are pure. Signature checks go through a `Verify` callable (core.keys.is_valid_signature in a
node; the simulation passes a caching wrapper) so the same code runs in both.

The re-proposal rule (docs/protocol/consensus.md, "View change"): min_s is the highest height proven
committed by any VIEW-CHANGE's commit certificate; for each height above it the highest-view prepared
certificate wins (ties: smaller block hash); re-proposals are the longest run of consecutive heights from
min_s + 1, at most pipeline_depth long, whose headers chain by prev_hash to the block at min_s. A block that
may have committed anywhere always lies inside that run, so truncating at the first break never loses it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from consensus.messages import (
    PreparedCertificate,
    ViewChange,
    compute_pre_prepare_digest,
    compute_prepare_digest,
    compute_view_change_digest,
)
from core.block import BlockHeader, CommitCertificate, compute_commit_digest
from core.errors import InvalidInput
from core.quorum import compute_quorum

Verify = Callable[[bytes, bytes, bytes], bool]  # (public key, 32-byte digest, signature) -> valid?


class ProofError(InvalidInput):
    """A certificate or VIEW-CHANGE a peer sent does not prove what it claims."""


def get_primary(view: int, validator_count: int) -> int:
    """The primary of a view: validators[view % n]."""
    return view % validator_count


def validate_commit_votes(
    cert: CommitCertificate, chain_id: str, keys: Sequence[bytes], verify: Verify
) -> None:
    """Raise ProofError unless 2f+1 distinct validators signed COMMIT for (view, height, block_hash)."""
    digest = compute_commit_digest(chain_id, cert.view, cert.height, cert.block_hash)
    _validate_votes(cert.votes, keys, verify, lambda _index: digest, "commit certificate")


def validate_prepared_certificate(
    cert: PreparedCertificate, chain_id: str, keys: Sequence[bytes], verify: Verify
) -> None:
    """Raise ProofError unless the view's primary pre-prepared and 2f others prepared this header."""
    if cert.header.chain_id != chain_id:
        raise ProofError("prepared certificate for another chain")
    primary = get_primary(cert.view, len(keys))
    block_hash = cert.block_hash
    pp_digest = compute_pre_prepare_digest(chain_id, cert.view, cert.height, block_hash)
    prepare_digest = compute_prepare_digest(chain_id, cert.view, cert.height, block_hash)
    if primary not in [index for index, _ in cert.votes]:
        raise ProofError("prepared certificate lacks the primary's pre-prepare")

    def digest_for(index: int) -> bytes:
        return pp_digest if index == primary else prepare_digest

    _validate_votes(cert.votes, keys, verify, digest_for, "prepared certificate")


def validate_view_change(vc: ViewChange, chain_id: str, keys: Sequence[bytes], verify: Verify) -> None:
    """Raise ProofError unless a VIEW-CHANGE is signed by its sender and every proof in it holds."""
    if not verify(keys[vc.sender], compute_view_change_digest(chain_id, vc), vc.signature):
        raise ProofError(f"view change signature of validator {vc.sender} does not verify")
    low = 0 if vc.stable is None else vc.stable.height
    if vc.stable is not None:
        validate_commit_votes(vc.stable, chain_id, keys, verify)
    for cert in vc.prepared:
        if cert.view >= vc.view:
            raise ProofError("a prepared certificate must be from a view before the one requested")
        if cert.height <= low:
            raise ProofError("prepared certificates must lie above the stable height")
        validate_prepared_certificate(cert, chain_id, keys, verify)


def _validate_votes(
    votes: Sequence[tuple[int, bytes]],
    keys: Sequence[bytes],
    verify: Verify,
    digest_for: Callable[[int], bytes],
    what: str,
) -> None:
    indexes = [index for index, _ in votes]
    if indexes != sorted(set(indexes)):
        raise ProofError(f"{what}: votes must come from distinct validators in increasing order")
    needed = compute_quorum(len(keys))
    if len(indexes) < needed:
        raise ProofError(f"{what}: {len(indexes)} votes, a quorum needs {needed}")
    for index, signature in votes:
        if not 0 <= index < len(keys) or not verify(keys[index], digest_for(index), signature):
            raise ProofError(f"{what}: vote of validator {index} does not verify")


@dataclass(frozen=True, slots=True)
class NewViewPlan:
    """What a NEW-VIEW must contain, computed identically by the new primary and by every verifier."""

    low_height: int  # min_s: highest height proven committed by the VIEW-CHANGE set
    low_hash: bytes  # hash of the block at low_height (the genesis hash at 0)
    low_certificate: CommitCertificate | None  # the proof of low_height (None at 0)
    reproposals: tuple[BlockHeader, ...]  # headers to re-propose at low_height + 1, + 2, ...


def compute_new_view_plan(
    view_changes: Iterable[ViewChange], genesis_hash: bytes, pipeline_depth: int
) -> NewViewPlan:
    vcs = list(view_changes)
    low_cert: CommitCertificate | None = None
    for vc in vcs:
        if vc.stable is not None and (low_cert is None or vc.stable.height > low_cert.height):
            low_cert = vc.stable
    low_height = 0 if low_cert is None else low_cert.height
    low_hash = genesis_hash if low_cert is None else low_cert.block_hash
    best: dict[int, PreparedCertificate] = {}
    for vc in vcs:
        for cert in vc.prepared:
            if cert.height <= low_height:
                continue
            current = best.get(cert.height)
            if current is None or (cert.view, _neg(cert.block_hash)) > (
                current.view,
                _neg(current.block_hash),
            ):
                best[cert.height] = cert
    chain: list[BlockHeader] = []
    prev_hash = low_hash
    height = low_height + 1
    while height in best and len(chain) < pipeline_depth:
        header = best[height].header
        if header.prev_hash != prev_hash:
            break
        chain.append(header)
        prev_hash = header.block_hash
        height += 1
    return NewViewPlan(low_height, low_hash, low_cert, tuple(chain))


def _neg(digest: bytes) -> bytes:
    """Order key under which the smaller hash compares greater (tie-break of equal views)."""
    return bytes(255 - b for b in digest)
