"""Where the replica stands: its epoch and view, whether it orders blocks in it, and the view's low mark.

The replica's phase changes only through the `become_*` functions, checked against one transition table:
NORMAL (ordering blocks in `view`) -> VIEW_CHANGE (asked for a higher view, waiting for its NEW-VIEW) ->
NORMAL (entered a NEW-VIEW); NORMAL -> NORMAL (a NEW-VIEW for a later view, or the next epoch, which
starts at view 0 above the last height of the previous one); any phase -> HALTED (state divergence:
every later input is ignored). Views count from 0 in every epoch (the validator set of an epoch is
consensus.membership's); the epoch of a height is a function of the chain.
"""

from __future__ import annotations

from enum import Enum

from consensus.events import Halt
from consensus.outbox import Outbox
from core.errors import InvariantBroken


class Status(Enum):
    NORMAL = "normal"  # ordering blocks in `view`
    VIEW_CHANGE = "view_change"  # sent VIEW-CHANGE for `view`, waiting for its NEW-VIEW
    HALTED = "halted"  # state divergence detected; all inputs are ignored


_TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.NORMAL: frozenset({Status.NORMAL, Status.VIEW_CHANGE, Status.HALTED}),
    Status.VIEW_CHANGE: frozenset({Status.NORMAL, Status.VIEW_CHANGE, Status.HALTED}),
    Status.HALTED: frozenset({Status.HALTED}),  # a second divergence found in the same step is reported too
}


class ViewState:
    def __init__(self, outbox: Outbox, view: int, status: Status, epoch: int = 0) -> None:
        self._outbox = outbox
        self.epoch = epoch
        self.view = view
        self.status = status
        self.low_height = 0  # min_s of the current view: every height up to it is proven committed

    @property
    def is_normal(self) -> bool:
        return self.status is Status.NORMAL

    @property
    def is_changing(self) -> bool:
        return self.status is Status.VIEW_CHANGE

    @property
    def is_halted(self) -> bool:
        return self.status is Status.HALTED

    def become_view_change(self, view: int) -> None:
        self._move(Status.VIEW_CHANGE)
        self.view = view

    def become_normal(self, view: int, low_height: int) -> None:
        """Enter a NEW-VIEW: order blocks in `view` above `low_height`."""
        self._move(Status.NORMAL)
        self.view = view
        self.low_height = low_height

    def become_epoch(self, epoch: int, low_height: int) -> None:
        """The previous epoch ended at `low_height` (delivered): order the next one from view 0."""
        self._move(Status.NORMAL)
        self.epoch = epoch
        self.view = 0
        self.low_height = low_height

    def halt(self, reason: str) -> None:
        self._move(Status.HALTED)
        self._outbox.emit(Halt(reason))

    def _move(self, to: Status) -> None:
        if to not in _TRANSITIONS[self.status]:
            raise InvariantBroken(f"replica cannot go from {self.status.value} to {to.value}")
        self.status = to
