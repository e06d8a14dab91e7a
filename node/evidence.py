"""A validator puts the equivocation its replica detects on chain: the report_evidence transaction.

The replica (consensus/) stays pure: when it holds two conflicting signed messages from one validator it
emits ReportMisbehaviour with both as `evidence` (consensus.outbox.EvidenceLog), and nothing else is
evidence. The validator shell hands such a report to an EvidenceReporter, which builds the transaction's
arguments from the two messages (`compute_evidence_args`), signs it with the node's own key (enrolled for
its organisation as a node key at genesis: it may sign only report_evidence) and submits it through the
node's own admission, like any client's transaction. Each pair is submitted once (a bounded memory of what
was sent); the chaincode records each offence once, whoever reports it first (docs/CHAINCODE.md §14).

One offender is reported at most once per OFFENDER_INTERVAL_BLOCKS: a validator that double-votes at every
height would otherwise make every evidence transaction a new block, and every new block a new offence, so
the chain would grow by itself for as long as it lied. One recorded offence is enough for governance to act.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from consensus.events import ReportMisbehaviour
from consensus.messages import Checkpoint, Commit, Message, Prepare, PrePrepare
from core import codec
from core.genesis import Genesis
from core.keys import SigningKey
from core.tx import SignedTx, TxBody, sign_transaction

log = logging.getLogger(__name__)

REPORTED_MAX = 1000  # evidence pairs remembered as submitted (as many as the replica keeps)
VALIDITY_BLOCKS = 100  # the evidence transaction may be included up to this many blocks ahead
OFFENDER_INTERVAL_BLOCKS = 100  # blocks between two reports against the same validator
_KINDS: dict[type, str] = {
    PrePrepare: "pre_prepare",
    Prepare: "prepare",
    Commit: "commit",
    Checkpoint: "checkpoint",
}
Vote = PrePrepare | Prepare | Commit | Checkpoint  # the messages whose conflicts the chaincode checks


def compute_evidence_args(first: Message, second: Message, validator_key: bytes) -> dict[str, Any] | None:
    """report_evidence's arguments for two messages signed by the validator with this key; None for
    messages that are not evidence the chaincode checks (different kinds or slots, or VIEW-CHANGE/NEW-VIEW)."""
    if not isinstance(first, Vote) or not isinstance(second, Vote) or type(first) is not type(second):
        return None
    if first.height != second.height:
        return None
    args: dict[str, Any] = {
        "kind": _KINDS[type(first)],
        "validator": validator_key.hex(),
        "height": first.height,
        "block_hash_1": first.block_hash.hex(),
        "signature_1": first.signature.hex(),
        "block_hash_2": second.block_hash.hex(),
        "signature_2": second.signature.hex(),
    }
    if isinstance(first, Checkpoint) and isinstance(second, Checkpoint):
        args["state_root_1"] = first.state_root.hex()
        args["state_root_2"] = second.state_root.hex()
        return args
    if isinstance(first, Checkpoint) or isinstance(second, Checkpoint) or first.view != second.view:
        return None
    args["view"] = first.view
    return args


class EvidenceReporter:
    """Signs and submits one report_evidence transaction per conflicting pair the replica reports."""

    def __init__(
        self,
        genesis: Genesis,
        key: SigningKey,
        org: Callable[[], str],  # our organisation (of our number in the set in force)
        submit: Callable[[SignedTx], None],
        next_height: Callable[[], int],
    ) -> None:
        self._genesis = genesis
        self._key = key
        self._org = org
        self._submit = submit  # into the node's own admission (the caller decides when: not re-entrantly)
        self._next_height = next_height
        self._reported: OrderedDict[bytes, None] = OrderedDict()
        self._last_report_height: dict[bytes, int] = {}  # offender's key -> our next height when reported

    def report(
        self, output: ReportMisbehaviour, signer_key: Callable[[Message], bytes | None]
    ) -> SignedTx | None:
        """The transaction submitted for this report, or None (no evidence in it, or reported already).
        `signer_key` names the key of a message's sender in the validator set in force at its height."""
        if len(output.evidence) != 2:
            return None
        first, second = output.evidence
        key = signer_key(first)
        if key is None or first.sender != second.sender:
            return None
        args = compute_evidence_args(first, second, key)
        if args is None:
            return None
        pair = codec.encode(args)  # the pair, as reported
        if pair in self._reported:
            return None
        height = self._next_height()
        last = self._last_report_height.get(key)
        if last is not None and height < last + OFFENDER_INTERVAL_BLOCKS:
            return None
        self._last_report_height[key] = height  # one entry per key ever reported
        self._reported[pair] = None
        while len(self._reported) > REPORTED_MAX:
            self._reported.popitem(last=False)
        body = TxBody(
            chain_id=self._genesis.chain_id,
            chaincode="carbon",
            function="report_evidence",
            args=args,
            sender_org=self._org(),
            sender_key=self._key.public_key,
            nonce=int.from_bytes(os.urandom(8), "big"),  # a restarted node's report is a new transaction
            valid_until=height + VALIDITY_BLOCKS,
        )
        tx = sign_transaction(body, self._key)
        log.warning(
            "submitting evidence that validator %d signed conflicting %s messages at height %d",
            first.sender,
            args["kind"],
            args["height"],
            extra={"peer": first.sender},
        )
        self._submit(tx)
        return tx
