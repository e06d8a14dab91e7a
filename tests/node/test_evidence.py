"""node/evidence.py: which conflicting pairs the validator puts on chain, and how often per offender."""

from __future__ import annotations

from dataclasses import replace

from consensus.events import ReportMisbehaviour
from consensus.messages import Message, Prepare, compute_signing_digest
from core.devkeys import dev_node_key
from core.tx import SignedTx
from node.evidence import OFFENDER_INTERVAL_BLOCKS, EvidenceReporter
from tests.node.nodekit import GENESIS


def double_vote(sender: int, height: int) -> ReportMisbehaviour:
    key = dev_node_key("validator", sender)
    pair = tuple(
        replace(m, signature=key.sign(compute_signing_digest(GENESIS.chain_id, m)))
        for m in (
            Prepare(0, height, b"\x01" * 32, sender, b""),
            Prepare(0, height, b"\x02" * 32, sender, b""),
        )
    )
    return ReportMisbehaviour(sender, "conflicting Prepare messages", pair)


def signer_key(message: Message) -> bytes:
    return dev_node_key("validator", message.sender).public_key


def test_a_validator_that_double_votes_at_every_height_is_reported_once_per_interval() -> None:
    # each evidence transaction makes a block and each block a new offence: unlimited, a lying validator
    # would keep the chain growing by itself
    submitted: list[SignedTx] = []
    height = 5
    reporter = EvidenceReporter(
        GENESIS, dev_node_key("validator", 1), lambda: "bank", submitted.append, lambda: height
    )

    def reports() -> list[tuple[str, int]]:
        return [(tx.body.args["validator"], tx.body.args["height"]) for tx in submitted]

    liar, other = (dev_node_key("validator", n).public_key.hex() for n in (2, 3))
    for h in range(3, 3 + OFFENDER_INTERVAL_BLOCKS):
        height = h + 2
        reporter.report(double_vote(2, h), signer_key)
    assert reports() == [(liar, 3)]
    reporter.report(double_vote(3, 50), signer_key)  # another offender is not held back by the first
    assert reports()[1:] == [(other, 50)]
    height = 5 + OFFENDER_INTERVAL_BLOCKS
    reporter.report(double_vote(2, height - 2), signer_key)
    assert reports()[2:] == [(liar, height - 2)]
