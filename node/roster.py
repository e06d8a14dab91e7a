"""The validator sets the executed chain has decided, as the node's parts need them.

Governance approves a validator-set change while executing some height h (the chaincode records it); the
change takes effect after the activation height L (core/validators.py). The replica learns of it through
BlockExecuted.validators and orders heights with consensus.membership.Membership. The rest of the node
asks the `Roster`, which follows the same executed blocks:
- the peer layer admits and dials `admitted()`: the set in force after the last executed block, plus the
  members of an approved change that is not in force yet (a joining validator links and catches up before
  its first vote); a member whose set has ended is dropped when execution passes its last height;
- the observer and state transfer check each block against `membership.at(height)`;
- a restarted node rebuilds the same history from the changes the chain state records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaincode.validators import get_validator_change, list_epochs
from consensus.membership import Membership
from core.genesis import Genesis
from core.state import StateReader
from core.validators import ValidatorSet
from p2p.identity import ValidatorEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ApprovedSet:
    """A validator-set change as the chain recorded it: the height that approved it, and the whole set after
    it (number, node key and peer address of each member, in number order)."""

    approved_height: int
    members: tuple[ValidatorEntry, ...]
    orgs: Mapping[int, str] = field(default_factory=dict)  # number -> the organisation that runs it

    @property
    def validators(self) -> ValidatorSet:
        return ValidatorSet(tuple((entry.number, entry.node_key) for entry in self.members))


AdmittedListener = Callable[[list[ValidatorEntry]], None]
# the validator-set change a block approved, from its net writes and height (the chaincode's rule), or None
ChangeReader = Callable[[Mapping[bytes, bytes | None], int], "ApprovedSet | None"]


def read_validator_change(writes: Mapping[bytes, bytes | None], height: int) -> ApprovedSet | None:
    """The validator-set change block `height` approved, read from its net writes (the chaincode's rule)."""
    change = get_validator_change(writes, height)
    return None if change is None else _approved_set(change.approved_height, change.validators)


def read_validator_history(state: StateReader) -> list[ApprovedSet]:
    """Every validator-set change the executed chain approved, oldest first (a pending one last)."""
    return [_approved_set(epoch["approved_height"], epoch["validators"]) for epoch in list_epochs(state)[1:]]


def _approved_set(approved_height: int, validators: Sequence[Mapping[str, Any]]) -> ApprovedSet:
    """The chaincode's validator records (number order: number, node_key, org, peer_address, ...)."""
    members = tuple(
        ValidatorEntry(v["number"], bytes.fromhex(v["node_key"]), v["peer_address"]) for v in validators
    )
    return ApprovedSet(approved_height, members, {v["number"]: v["org"] for v in validators})


class Roster:
    def __init__(
        self,
        genesis: Genesis,
        *,
        executed_height: int,
        history: Sequence[ApprovedSet] = (),
        read_change: ChangeReader = read_validator_change,
        on_admitted: AdmittedListener | None = None,
    ) -> None:
        genesis_members = tuple(
            ValidatorEntry(i, v.node_key_bytes, v.peer_address) for i, v in enumerate(genesis.validators)
        )
        self._members: list[tuple[ValidatorEntry, ...]] = [genesis_members]  # per epoch
        self._orgs = {i: v.org for i, v in enumerate(genesis.validators)}
        self.membership = Membership(
            genesis.validator_set,
            checkpoint_interval=genesis.consensus.checkpoint_interval,
            pipeline_depth=genesis.consensus.pipeline_depth,
            executed_height=executed_height,
            approvals=[(change.approved_height, change.validators) for change in history],
        )
        self._members += [change.members for change in history]
        for change in history:
            self._orgs.update(change.orgs)
        self._history = tuple(history)
        self._read_change = read_change
        self._on_admitted = on_admitted
        self._admitted = self._compute_admitted()

    @property
    def history(self) -> tuple[ApprovedSet, ...]:
        """Every change the chain approved, oldest first (RecoveredState.validator_changes, the API)."""
        return self._history

    @property
    def executed_height(self) -> int:
        return self.membership.executed_height

    def set_listener(self, on_admitted: AdmittedListener) -> None:
        self._on_admitted = on_admitted

    def note_block(self, height: int, writes: Mapping[bytes, bytes | None]) -> ValidatorSet | None:
        """Execution committed `height` with these net writes: note_executed with the change they record."""
        return self.note_executed(height, self._read_change(writes, height))

    def note_executed(self, height: int, change: ApprovedSet | None) -> ValidatorSet | None:
        """Execution reached `height`; `change` is the set its block approved, if any (returned as the
        replica's BlockExecuted.validators). Tells the peer layer when the admitted validators change."""
        if change is not None:
            self.membership.note_executed(height, change.validators)
            self._members.append(change.members)
            self._orgs.update(change.orgs)
            self._history += (change,)
            epoch = self.membership.epochs()[-1]
            log.info(
                "validator-set change approved at height %d: %d validators from height %d",
                height,
                len(change.members),
                epoch.first_height,
                extra={"height": height},
            )
        else:
            self.membership.note_executed(height, None)
        admitted = self._compute_admitted()
        if admitted != self._admitted:
            self._admitted = admitted
            if self._on_admitted is not None:
                self._on_admitted(list(admitted))
        return None if change is None else change.validators

    def org_of(self, number: int) -> str:
        """The organisation running validator `number` ("" for a number the executed chain has not named)."""
        return self._orgs.get(number, "")

    def admitted(self) -> list[ValidatorEntry]:
        return list(self._admitted)

    def members_at(self, height: int) -> tuple[ValidatorEntry, ...]:
        """The members (with addresses) of the set certifying `height` (which must be known)."""
        return self._members[self.membership.epoch_at(height).number]

    def _compute_admitted(self) -> tuple[ValidatorEntry, ...]:
        """The members of every set that has not ended by the next height to execute; on a number listed
        twice (a moved address or, while a change is pending, a replaced key), the set in force wins."""
        next_height = self.membership.executed_height + 1
        by_number: dict[int, ValidatorEntry] = {}
        for epoch in reversed(self.membership.epochs()):
            last = self.membership.last_height(epoch.number)
            if last is not None and last < next_height:
                break  # this epoch and every earlier one have ended
            for entry in self._members[epoch.number]:
                by_number[entry.number] = entry  # earlier (in force) epochs overwrite later (pending) ones
        return tuple(by_number[number] for number in sorted(by_number))
