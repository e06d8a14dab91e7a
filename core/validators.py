"""Validator sets: who may order and certify a height, how a set is hashed, and when a change takes effect.

A validator has a permanent number: the genesis validators are 0..n-1 in genesis order, a validator added
later gets the next unused number, and a number is never reused. Every consensus message and commit
certificate names validators by number; a set is the members in force for a range of heights. The primary
of view v is the (v mod n)-th member in number order.

A change approved on chain (by governance) while executing height h takes effect after the activation
height L = the first multiple of checkpoint_interval with L >= h + margin, margin = 2 * pipeline_depth + 2
(the replicas' vote window): heights up to L are certified by the old set, heights from L + 1 by the new
one. Every honest replica derives L from the committed chain alone, and none has voted above h + margin
when it executes h, so no height is certified by two sets (docs/protocol/consensus.md, "Reconfiguration").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.hashing import Domain, hash_value
from core.quorum import compute_max_faulty, compute_quorum, compute_weak_quorum

NUMBER_MAX = 1023  # validator numbers are below 1024 (bounds what a message may name)


@dataclass(frozen=True, slots=True)
class ValidatorSet:
    members: tuple[tuple[int, bytes], ...]  # (number, node public key), in increasing number order
    n: int = field(init=False)
    f: int = field(init=False)  # the most Byzantine members the set tolerates
    quorum: int = field(init=False)  # n - f (2f+1 when n = 3f+1): any two quorums share an honest member
    weak_quorum: int = field(init=False)  # f+1: at least one member is honest
    _keys: dict[int, bytes] = field(init=False, repr=False, compare=False)
    _order: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        numbers = [number for number, _ in self.members]
        if not numbers or numbers != sorted(set(numbers)) or not 0 <= numbers[0] <= numbers[-1] <= NUMBER_MAX:
            raise ValueError("a validator set lists distinct numbers in [0, 1023], in increasing order")
        n = len(numbers)
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "f", compute_max_faulty(n))
        object.__setattr__(self, "quorum", compute_quorum(n))
        object.__setattr__(self, "weak_quorum", compute_weak_quorum(n))
        object.__setattr__(self, "_keys", dict(self.members))
        object.__setattr__(self, "_order", tuple(numbers))

    @classmethod
    def of_keys(cls, keys: Iterable[bytes]) -> ValidatorSet:
        """The genesis set: numbers 0..n-1 in order."""
        return cls(tuple(enumerate(keys)))

    @property
    def numbers(self) -> tuple[int, ...]:
        return self._order

    @property
    def keys(self) -> Mapping[int, bytes]:
        """Number -> node public key."""
        return self._keys

    def primary(self, view: int) -> int:
        """The number of the primary of `view`: the (view mod n)-th member."""
        return self._order[view % self.n]

    def contains(self, number: int) -> bool:
        return number in self._keys

    def key(self, number: int) -> bytes:
        return self._keys[number]

    def key_of(self, number: int) -> bytes | None:
        """The member's key, or None if `number` is not a member."""
        return self._keys.get(number)

    @property
    def set_hash(self) -> bytes:
        return compute_validator_set_hash(self)


def compute_validator_set_hash(validators: ValidatorSet) -> bytes:
    """H(validator-set, {"members": [[number, key], ...]}): what a block header names as its signers."""
    return hash_value(
        Domain.VALIDATOR_SET, {"members": [[number, key] for number, key in validators.members]}
    )


def compute_activation_margin(pipeline_depth: int) -> int:
    """Heights between an approval and the earliest last height of the old set: the replicas' vote window."""
    return 2 * pipeline_depth + 2


def compute_activation_height(approved_height: int, *, checkpoint_interval: int, pipeline_depth: int) -> int:
    """The last height the old set certifies (L): the new set certifies from L + 1."""
    earliest = approved_height + compute_activation_margin(pipeline_depth)
    return -(-earliest // checkpoint_interval) * checkpoint_interval
