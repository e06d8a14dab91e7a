"""Quorum certificates and the view-change rule: verifying them and computing a NEW-VIEW's re-proposals.

All functions are pure. Signature checks go through a `Verify` callable (core.keys.is_valid_signature in a
node; the simulation passes a caching wrapper) so the same code runs in both.

The re-proposal rule (docs/protocol/consensus.md, "View change"). Each VIEW-CHANGE carries the commit
certificate of its sender's last delivered block. `top` is the highest of them. Above top, the highest-view
prepared certificate of each height wins (ties: smaller block hash), for a run of at most pipeline_depth
heights that chain by prev_hash from top's block; a block that may have committed anywhere always lies
inside that run, so truncating at the first break never loses it.

Below top the blocks are already fixed: top's header names its parent by hash, and so on down. Only a
Byzantine validator may hold them, though (it alone saw a COMMIT quorum), and then honest replicas can
neither fetch them nor propose anything there. So the low mark drops below top when the prepared headers in
the VIEW-CHANGEs chain from a lower reported height up to top: those blocks are re-proposed unchanged and
commit again with a fresh certificate. The lowest such height wins, if it is no lower than the (f+1)-th
highest report (so an honest sender delivered it and can serve it) and the whole run of re-proposals still
fits in pipeline_depth heights (the message limits).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from consensus.messages import PreparedCertificate, ViewChange, compute_view_change_digest
from core.block import BlockHeader, CommitCertificate, compute_commit_digest
from core.errors import InvalidInput
from core.validators import ValidatorSet
from core.votes import compute_pre_prepare_digest, compute_prepare_digest

Verify = Callable[[bytes, bytes, bytes], bool]  # (public key, 32-byte digest, signature) -> valid?


class ProofError(InvalidInput):
    """A certificate or VIEW-CHANGE a peer sent does not prove what it claims."""


class NotYetCheckable(ProofError):
    """A proof names a height whose validator set we cannot know yet (we have not executed far enough):
    not a fault of the sender, it will be checkable once we caught up."""


class SetsByHeight(Protocol):
    """The validator set in force at a height (consensus.membership.Membership)."""

    def is_known(self, height: int) -> bool: ...

    def at(self, height: int) -> ValidatorSet: ...


def validate_commit_votes(
    cert: CommitCertificate, chain_id: str, validators: ValidatorSet, verify: Verify
) -> None:
    """Raise ProofError unless a quorum of `validators` signed COMMIT for (view, height, block_hash)."""
    digest = compute_commit_digest(chain_id, cert.view, cert.height, cert.block_hash)
    _validate_votes(cert.votes, validators, verify, lambda _index: digest, "commit certificate")


def validate_prepared_certificate(
    cert: PreparedCertificate, chain_id: str, validators: ValidatorSet, verify: Verify
) -> None:
    """Raise ProofError unless the view's primary pre-prepared and a quorum in all prepared this header."""
    if cert.header.chain_id != chain_id:
        raise ProofError("prepared certificate for another chain")
    primary = validators.primary(cert.view)
    block_hash = cert.block_hash
    pp_digest = compute_pre_prepare_digest(chain_id, cert.view, cert.height, block_hash)
    prepare_digest = compute_prepare_digest(chain_id, cert.view, cert.height, block_hash)
    if primary not in [index for index, _ in cert.votes]:
        raise ProofError("prepared certificate lacks the primary's pre-prepare")

    def digest_for(index: int) -> bytes:
        return pp_digest if index == primary else prepare_digest

    _validate_votes(cert.votes, validators, verify, digest_for, "prepared certificate")


def validate_view_change(
    vc: ViewChange, chain_id: str, epoch_set: ValidatorSet, sets: SetsByHeight, verify: Verify
) -> None:
    """Raise ProofError unless a VIEW-CHANGE is signed by a member of its epoch's set and every proof in it
    holds against the set in force at the proof's height (NotYetCheckable when that set is not certain)."""
    if not epoch_set.contains(vc.sender):
        raise ProofError(f"view change from validator {vc.sender}, not a member of the epoch's set")
    if not verify(epoch_set.key(vc.sender), compute_view_change_digest(chain_id, vc), vc.signature):
        raise ProofError(f"view change signature of validator {vc.sender} does not verify")
    low = 0 if vc.stable is None else vc.stable.height
    heights = [low] + [cert.height for cert in vc.prepared]
    if not all(sets.is_known(height) for height in heights):
        raise NotYetCheckable(f"view change names heights up to {max(heights)}, beyond what we executed")
    if vc.stable is not None:
        validate_commit_votes(vc.stable, chain_id, sets.at(vc.stable.height), verify)
    for cert in vc.prepared:
        if cert.view >= vc.view:
            raise ProofError("a prepared certificate must be from a view before the one requested")
        if cert.height <= low:
            raise ProofError("prepared certificates must lie above the stable height")
        validate_prepared_certificate(cert, chain_id, sets.at(cert.height), verify)


def _validate_votes(
    votes: Sequence[tuple[int, bytes]],
    validators: ValidatorSet,
    verify: Verify,
    digest_for: Callable[[int], bytes],
    what: str,
) -> None:
    indexes = [index for index, _ in votes]
    if indexes != sorted(set(indexes)):
        raise ProofError(f"{what}: votes must come from distinct validators in increasing order")
    if len(indexes) < validators.quorum:
        raise ProofError(f"{what}: {len(indexes)} votes, a quorum needs {validators.quorum}")
    for index, signature in votes:
        if not validators.contains(index) or not verify(validators.key(index), digest_for(index), signature):
            raise ProofError(f"{what}: vote of validator {index} does not verify")


@dataclass(frozen=True, slots=True)
class NewViewPlan:
    """What a NEW-VIEW must contain, computed identically by the new primary and by every verifier."""

    low_height: int  # every height up to it is committed, and an honest sender delivered it
    low_hash: bytes  # hash of the block at low_height (the genesis hash at 0)
    low_certificate: CommitCertificate | None  # the proof of low_height (None at 0)
    top_certificate: CommitCertificate | None  # the highest delivered height reported (None at 0)
    reproposals: tuple[BlockHeader, ...]  # headers to re-propose at low_height + 1, + 2, ...


def compute_new_view_plan(
    view_changes: Iterable[ViewChange],
    genesis_hash: bytes,
    pipeline_depth: int,
    max_faulty: int,
    last_height: int | None = None,
) -> NewViewPlan:
    """`last_height`: the last height of the epoch, when the change that ends it is approved: nothing above
    it is re-proposed (no valid VIEW-CHANGE can hold a prepared certificate there: see the module doc)."""
    vcs = list(view_changes)
    reported = sorted(
        (vc.stable for vc in vcs), key=lambda cert: -1 if cert is None else cert.height, reverse=True
    )
    top = reported[0] if reported else None
    served = reported[min(max_faulty, len(reported) - 1)] if reported else None  # f+1-th highest
    prepared_headers: dict[bytes, BlockHeader] = {}
    best: dict[int, PreparedCertificate] = {}
    for vc in vcs:
        for cert in vc.prepared:
            prepared_headers[cert.block_hash] = cert.header
            current = best.get(cert.height)
            if current is None or (cert.view, _neg(cert.block_hash)) > (
                current.view,
                _neg(current.block_hash),
            ):
                best[cert.height] = cert

    forward: list[BlockHeader] = []
    prev_hash = _hash_of(top, genesis_hash)
    height = _height_of(top) + 1
    while height in best and len(forward) < pipeline_depth and (last_height is None or height <= last_height):
        header = best[height].header
        if header.prev_hash != prev_hash:
            break
        forward.append(header)
        prev_hash = header.block_hash
        height += 1
    room = pipeline_depth - len(forward)
    low, below_top = _find_low(top, served, reported, prepared_headers, genesis_hash, room)
    return NewViewPlan(_height_of(low), _hash_of(low, genesis_hash), low, top, tuple(below_top + forward))


def _find_low(
    top: CommitCertificate | None,
    served: CommitCertificate | None,
    reported: Sequence[CommitCertificate | None],
    prepared_headers: Mapping[bytes, BlockHeader],
    genesis_hash: bytes,
    room: int,
) -> tuple[CommitCertificate | None, list[BlockHeader]]:
    """The low mark and the headers (ascending) that link it to top: walk down top's prev_hash chain through
    the prepared headers, at most `room` heights and no lower than `served`, and stop at the lowest reported
    height it passes."""
    low: CommitCertificate | None = top
    below_top: list[BlockHeader] = []
    if top is None:
        return low, below_top
    proofs = {_height_of(cert): cert for cert in reported}
    walked: list[BlockHeader] = []
    wanted, height = top.block_hash, top.height
    while height > _height_of(served) and len(walked) < room:
        header = prepared_headers.get(wanted)
        if header is None or header.height != height:
            break
        walked.append(header)
        wanted, height = header.prev_hash, height - 1
        if height in proofs and _hash_of(proofs[height], genesis_hash) == wanted:
            low, below_top = proofs[height], walked[::-1]
    return low, below_top


def _height_of(cert: CommitCertificate | None) -> int:
    return 0 if cert is None else cert.height


def _hash_of(cert: CommitCertificate | None, genesis_hash: bytes) -> bytes:
    return genesis_hash if cert is None else cert.block_hash


def _neg(digest: bytes) -> bytes:
    """Order key under which the smaller hash compares greater (tie-break of equal views)."""
    return bytes(255 - b for b in digest)
