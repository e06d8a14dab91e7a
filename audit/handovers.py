"""Validator-set handovers: how a verifier holding only the genesis file learns the set of a later height.

A state proof is certified by the commit certificate of one header; after governance changed the validator
set, that certificate is signed by a set the genesis does not list. The chain proves each change itself: the
header at the last height L of a set is certified by that set and names the next set's hash in
`next_validators_hash` (docs/protocol/core.md §6.5). A *handover* is that header, its certificate and the
next set's members; checked in order from the genesis set, a list of them yields the set of every height
(docs/protocol/audit.md, "Validator-set handovers"). Nothing else is trusted: a handover left out shows, because
the header of any later height names its own set's hash.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core import codec
from core.block import BlockHeader, CertificateError, CommitCertificate, verify_commit_certificate
from core.errors import CodecError
from core.genesis import Genesis
from core.validators import NUMBER_MAX, ValidatorSet

HANDOVERS_MAX = 1024  # more set changes than any chain's life will see; bounds what a document may hold


class HandoverError(ValueError):
    """A handover does not prove the next set; names the height and why."""

    def __init__(self, height: int, detail: str) -> None:
        super().__init__(f"validator-set handover at height {height}: {detail}")
        self.height = height
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Handover:
    header: BlockHeader  # the last height certified by the outgoing set
    certificate: CommitCertificate  # of that header, by the outgoing set
    next_set: ValidatorSet  # the set certifying from header.height + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "last_height": self.header.height,
            "header": codec.encode(self.header.to_wire()).hex(),
            "certificate": codec.encode(self.certificate.to_wire()).hex(),
            "validators": [[number, key.hex()] for number, key in self.next_set.members],
        }

    @classmethod
    def from_json(cls, document: Any) -> Handover:
        """A handover from its JSON form; HandoverError for anything malformed."""
        height = document.get("last_height", -1) if isinstance(document, dict) else -1
        try:
            header = BlockHeader.from_wire(codec.decode(bytes.fromhex(str(document["header"]))))
            certificate = CommitCertificate.from_wire(
                codec.decode(bytes.fromhex(str(document["certificate"])))
            )
            members = document["validators"]
            if not isinstance(members, list) or len(members) > NUMBER_MAX + 1:
                raise ValueError("validators must be a list of [number, key hex]")
            pairs = tuple((int(number), bytes.fromhex(str(key))) for number, key in members)
            next_set = ValidatorSet(pairs)
        except (KeyError, TypeError, ValueError, CodecError) as exc:
            raise HandoverError(int(height) if isinstance(height, int) else -1, f"malformed: {exc}") from None
        if header.height != height:
            raise HandoverError(header.height, f"last_height says {height}, the header is of {header.height}")
        return cls(header, certificate, next_set)


@dataclass(frozen=True, slots=True)
class SetHistory:
    """The validator sets a verified list of handovers proves: (first height, set), ascending."""

    epochs: tuple[tuple[int, ValidatorSet], ...]

    def at(self, height: int) -> ValidatorSet:
        """The set the handovers prove for `height` (the last one for every height after the last handover)."""
        chosen = self.epochs[0][1]
        for first_height, validators in self.epochs:
            if first_height <= height:
                chosen = validators
        return chosen


def verify_handovers(genesis: Genesis, handovers: Sequence[Handover]) -> SetHistory:
    """Check handovers in order from the genesis set; HandoverError at the first that does not prove its set."""
    if len(handovers) > HANDOVERS_MAX:
        raise HandoverError(-1, f"more than {HANDOVERS_MAX} handovers")
    current = genesis.validator_set
    epochs = [(1, current)]
    last = 0
    for handover in handovers:
        header = handover.header
        height = header.height
        if header.chain_id != genesis.chain_id:
            raise HandoverError(height, f"the header is for chain {header.chain_id!r}")
        if height <= last:
            raise HandoverError(height, f"handovers must be in increasing height order (after {last})")
        if header.validators_hash != current.set_hash:
            raise HandoverError(
                height, "the header is not certified by the set in force (a handover is missing?)"
            )
        try:
            verify_commit_certificate(handover.certificate, header, current)
        except CertificateError as exc:
            raise HandoverError(height, f"commit certificate: {exc}") from None
        if header.next_validators_hash != handover.next_set.set_hash:
            raise HandoverError(height, "next_validators_hash is not the hash of the set it hands over to")
        if handover.next_set.set_hash == current.set_hash:
            raise HandoverError(height, "the header hands over to the same set: not the last height of a set")
        current, last = handover.next_set, height
        epochs.append((height + 1, current))
    return SetHistory(tuple(epochs))


def parse_handovers(documents: Any) -> list[Handover]:
    """The `validator_sets` list of a proof or receipt document (absent: no change since genesis)."""
    if documents is None:
        return []
    if not isinstance(documents, list) or len(documents) > HANDOVERS_MAX:
        raise HandoverError(-1, f"validator_sets must be a list of at most {HANDOVERS_MAX} handovers")
    return [Handover.from_json(document) for document in documents]


def handover_heights(history: Sequence[Mapping[str, Any]], below: int) -> list[tuple[int, list[list[Any]]]]:
    """From a `validators` query's history: (last height, the next set's [number, key hex] list) of each set
    that ended below `below`, in order (the headers a prover of a height-`below` header fetches)."""
    handovers = []
    for ended, following in itertools.pairwise(history):
        last = ended.get("last_height")
        if last is None or int(last) >= below:
            break
        members = [[v["number"], v["node_key"]] for v in following["validators"]]
        handovers.append((int(last), members))
    return handovers
