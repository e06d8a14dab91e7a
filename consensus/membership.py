"""Who votes: the validator set in force at a height, with its quorum arithmetic and primary rotation.

Every rule that counts votes or picks a primary asks the set in force at the height in question. Today
that is the genesis set at every height; reconfiguration makes it a function of the chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.quorum import compute_max_faulty, compute_quorum, compute_weak_quorum


@dataclass(frozen=True, slots=True)
class ValidatorSet:
    keys: tuple[bytes, ...]  # node public keys, by validator index
    n: int = field(init=False)
    f: int = field(init=False)  # the most Byzantine members the set tolerates
    quorum: int = field(init=False)  # 2f+1 (n - f): any two quorums share an honest member
    weak_quorum: int = field(init=False)  # f+1: at least one member is honest

    def __post_init__(self) -> None:
        n = len(self.keys)
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "f", compute_max_faulty(n))
        object.__setattr__(self, "quorum", compute_quorum(n))
        object.__setattr__(self, "weak_quorum", compute_weak_quorum(n))

    def primary(self, view: int) -> int:
        """The primary of a view: validators[view % n]."""
        return view % self.n

    def contains(self, index: int) -> bool:
        return 0 <= index < self.n

    def key(self, index: int) -> bytes:
        return self.keys[index]


class Membership:
    """The validator set in force at each height."""

    def __init__(self, genesis_set: ValidatorSet) -> None:
        self._genesis = genesis_set

    def at(self, height: int) -> ValidatorSet:
        """The set that orders and certifies block `height`."""
        return self._genesis
