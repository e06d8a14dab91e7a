"""Quorum arithmetic for n = 3f + 1 (or more) validators. Kept tiny and tested on its own."""

from __future__ import annotations


def compute_max_faulty(validator_count: int) -> int:
    """f: the most Byzantine validators the set tolerates."""
    if validator_count < 1:
        raise ValueError("a validator set has at least one member")
    return (validator_count - 1) // 3


def compute_quorum(validator_count: int) -> int:
    """Votes needed for a quorum: any two quorums share at least f + 1 validators, one of them honest."""
    return validator_count - compute_max_faulty(validator_count)


def compute_weak_quorum(validator_count: int) -> int:
    """f + 1: enough that at least one voter is honest."""
    return compute_max_faulty(validator_count) + 1
