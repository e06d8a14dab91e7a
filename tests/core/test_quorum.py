"""Quorum arithmetic (core.quorum)."""

from __future__ import annotations

import itertools

import pytest

from core.quorum import compute_max_faulty, compute_quorum, compute_weak_quorum

# n: (f, quorum, weak quorum), written out by hand.
EXPECTED = {
    1: (0, 1, 1),
    2: (0, 2, 1),
    3: (0, 3, 1),
    4: (1, 3, 2),
    5: (1, 4, 2),
    6: (1, 5, 2),
    7: (2, 5, 3),
    8: (2, 6, 3),
    9: (2, 7, 3),
    10: (3, 7, 4),
}


@pytest.mark.parametrize("n", sorted(EXPECTED))
def test_values(n: int) -> None:
    assert (compute_max_faulty(n), compute_quorum(n), compute_weak_quorum(n)) == EXPECTED[n]


@pytest.mark.parametrize("n", range(1, 11))
def test_quorums_intersect_in_an_honest_validator(n: int) -> None:
    f, q = compute_max_faulty(n), compute_quorum(n)
    assert n >= 3 * f + 1
    # Smallest possible intersection of two quorums, by counting and by enumerating small sets.
    assert 2 * q - n >= f + 1
    if n <= 7:
        members = range(n)
        smallest = min(
            len(set(a) & set(b)) for a, b in itertools.product(itertools.combinations(members, q), repeat=2)
        )
        assert smallest >= f + 1
    # A quorum is always reachable with f validators silent.
    assert q <= n - f


def test_rejects_empty_set() -> None:
    with pytest.raises(ValueError):
        compute_max_faulty(0)
