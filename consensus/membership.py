"""Who votes: the validator set in force at each height, as the committed chain decides it.

The genesis set orders heights from 1. A change approved while executing height h (BlockExecuted carries
it) starts a new epoch at L + 1, L = core.validators.compute_activation_height(h); epochs are numbered
from 0. The set of a height is certain only once every change that could still affect it has been
executed: a change executed after height E takes effect above E + margin + 1, so the sets of heights up
to `known_through` = executed + margin + 1 are final. Every rule that counts votes or picks a primary asks
`at(height)` for a height in that range; a message for a height beyond it waits (it is dropped, and comes
again or is fetched).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.errors import InvariantBroken
from core.validators import ValidatorSet, compute_activation_height, compute_activation_margin


@dataclass(frozen=True, slots=True)
class Epoch:
    number: int  # 0 for the genesis set
    first_height: int  # the first height this set certifies
    validators: ValidatorSet


class Membership:
    def __init__(
        self,
        genesis_set: ValidatorSet,
        *,
        checkpoint_interval: int,
        pipeline_depth: int,
        executed_height: int = 0,
        approvals: Iterable[tuple[int, ValidatorSet]] = (),
    ) -> None:
        self._interval = checkpoint_interval
        self._depth = pipeline_depth
        self.margin = compute_activation_margin(pipeline_depth)
        self._epochs: list[Epoch] = [Epoch(0, 1, genesis_set)]
        self.executed_height = 0
        for approved_height, validators in approvals:
            self.approve(approved_height, validators)
        self.executed_height = executed_height

    @property
    def known_through(self) -> int:
        """The highest height whose set no later execution can change."""
        return self.executed_height + self.margin + 1

    def is_known(self, height: int) -> bool:
        return height <= self.known_through

    def note_executed(self, height: int, change: ValidatorSet | None) -> None:
        """Execution reached `height`; `change` is the set its block approved, if any."""
        if change is not None:
            self.approve(height, change)
        self.executed_height = max(self.executed_height, height)

    def approve(self, approved_height: int, validators: ValidatorSet) -> None:
        last = compute_activation_height(
            approved_height, checkpoint_interval=self._interval, pipeline_depth=self._depth
        )
        current = self._epochs[-1]
        if last + 1 <= current.first_height:
            raise InvariantBroken(
                f"a validator-set change approved at height {approved_height} would start before the one "
                f"starting at {current.first_height}: the chaincode must refuse a change while one is pending"
            )
        self._epochs.append(Epoch(current.number + 1, last + 1, validators))

    def epoch_at(self, height: int) -> Epoch:
        """The epoch certifying `height` (which must be known)."""
        if height > self.known_through:
            raise InvariantBroken(f"the validator set of height {height} is not certain yet")
        for epoch in reversed(self._epochs):
            if epoch.first_height <= height:
                return epoch
        return self._epochs[0]

    def at(self, height: int) -> ValidatorSet:
        """The set that orders and certifies block `height` (which must be known)."""
        return self.epoch_at(height).validators

    def last_height(self, epoch_number: int) -> int | None:
        """The last height of an epoch, once the change that ends it is approved."""
        if epoch_number + 1 < len(self._epochs):
            return self._epochs[epoch_number + 1].first_height - 1
        return None

    def epochs(self) -> tuple[Epoch, ...]:
        return tuple(self._epochs)
