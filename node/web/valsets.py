"""The validator sets the dashboard shows, read from the chain rather than the genesis.

Governance changes the set (docs/CHAINCODE.md §12.4), so a page asks the `validators` query once and
answers every height from its `history`: each set with the heights it certifies, a pending change's set
last. Validators are named by their permanent number, never by position: after a removal the set may be
{0, 2, 3, 4}, and the primary of view v is the (v mod n)-th member in number order (as
core.validators.ValidatorSet.primary). A number is never reused, so a number names one organisation for
the chain's whole life (a rotation changes only its key).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from core.keys import compute_key_id
from core.quorum import compute_quorum


@dataclass(frozen=True, slots=True)
class ValidatorInfo:
    number: int  # permanent: genesis order, then the next unused
    org: str
    org_name: str
    node_key: str
    key_id: str
    api_address: str


@dataclass(frozen=True, slots=True)
class ValidatorEpoch:
    epoch: int  # 0: the genesis set
    first_height: int  # the first height it certifies
    last_height: int | None  # None while no change ending it is approved
    validators: tuple[ValidatorInfo, ...]  # in number order
    action: str | None  # the change that made it (None: genesis)
    proposal: int | None
    approved_height: int | None

    @property
    def n(self) -> int:
        return len(self.validators)

    @property
    def quorum(self) -> int:
        return compute_quorum(self.n)

    def primary(self, view: int) -> ValidatorInfo:
        return self.validators[view % self.n]

    def member(self, number: int) -> ValidatorInfo | None:
        return next((v for v in self.validators if v.number == number), None)

    def certifies(self, height: int) -> bool:
        return self.first_height <= height and (self.last_height is None or height <= self.last_height)


@dataclass(frozen=True, slots=True)
class ValidatorHistory:
    epochs: tuple[ValidatorEpoch, ...]  # oldest first; a pending change's set last, as the epoch it will be
    current: ValidatorEpoch  # the set in force after the last executed block
    pending: Mapping[str, Any] | None  # the `validators` query's pending change (activation_height, ...)
    open_proposal: int | None  # the open proposal of a validator-set action

    @property
    def changed(self) -> bool:
        """Whether governance ever changed (or is about to change) the genesis set."""
        return len(self.epochs) > 1

    def at(self, height: int) -> ValidatorEpoch:
        """The set that certifies `height` (final up to the last executed height + the activation margin)."""
        for epoch in reversed(self.epochs):
            if epoch.first_height <= height:
                return epoch
        return self.epochs[0]

    def by_number(self, number: int) -> ValidatorInfo | None:
        """The validator with this number in the newest set that had it (its organisation never changes)."""
        for epoch in reversed(self.epochs):
            member = epoch.member(number)
            if member is not None:
                return member
        return None

    def orgs_by_number(self) -> dict[int, str]:
        """Every number ever used, with its organisation."""
        return {v.number: v.org for epoch in self.epochs for v in epoch.validators}


def read_validator_history(answer: Mapping[str, Any], name_of: Callable[[str], str]) -> ValidatorHistory:
    """A ValidatorHistory from the `validators` query's answer (asked without a height); `name_of` gives an
    organisation's display name."""
    infos: dict[tuple[int, str, str], ValidatorInfo] = {}

    def info(record: Mapping[str, Any]) -> ValidatorInfo:
        number, key, address = int(record["number"]), str(record["node_key"]), str(record["api_address"])
        cached = infos.get((number, key, address))
        if cached is None:
            org = str(record["org"])
            cached = ValidatorInfo(
                number, org, name_of(org), key, compute_key_id(bytes.fromhex(key)), address
            )
            infos[(number, key, address)] = cached
        return cached

    epochs = tuple(
        ValidatorEpoch(
            epoch=int(e["epoch"]),
            first_height=int(e["first_height"]),
            last_height=None if e.get("last_height") is None else int(e["last_height"]),
            validators=tuple(info(v) for v in e["validators"]),
            action=e.get("action"),
            proposal=e.get("proposal"),
            approved_height=e.get("approved_height"),
        )
        for e in answer["history"]
    )
    current = next(e for e in epochs if e.epoch == int(answer["epoch"]))
    return ValidatorHistory(epochs, current, answer.get("pending"), answer.get("open_proposal"))
