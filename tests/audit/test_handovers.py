"""Validator-set handovers on the conformance chain, whose fifth validator comes into force after block 13:
the header of 13, certified by the four, hands over to the five; a verifier with the genesis file alone
checks a later header's certificate against the five, and notices a handover left out or forged."""

from __future__ import annotations

import dataclasses

import pytest

from audit import AuditFailure
from audit.chain import verify_certifying_block
from audit.handovers import Handover, HandoverError, handover_heights, parse_handovers, verify_handovers
from chaincode import schema_gov
from chaincode.context import decode_record
from conformance.vectors import Height, build_chain
from core.block import CertifiedBlock
from core.genesis import Genesis
from core.validators import ValidatorSet

LAST_OF_FOUR = 13
Chain = tuple[Genesis, list[Height]]


@pytest.fixture(scope="module")
def chain() -> Chain:
    return build_chain()


def certified(chain: Chain, height: int) -> CertifiedBlock:
    block = chain[1][height].certified
    assert block is not None
    return block


def handover(chain: Chain) -> Handover:
    """Block 13's header and certificate, and the five validators the state names after it."""
    record = decode_record(chain[1][LAST_OF_FOUR].state[schema_gov.VALSET])
    five = ValidatorSet(tuple((v["number"], bytes.fromhex(v["node_key"])) for v in record["validators"]))
    assert five.n == 5 and certified(chain, LAST_OF_FOUR + 1).block.header.validators_hash == five.set_hash
    last = certified(chain, LAST_OF_FOUR)
    return Handover(last.block.header, last.certificate, five)


def test_a_handover_proves_the_next_set_and_a_later_header_verifies_against_it(chain: Chain) -> None:
    genesis = chain[0]
    step = handover(chain)
    history = verify_handovers(genesis, [step])
    assert history.at(LAST_OF_FOUR) == genesis.validator_set
    assert history.at(LAST_OF_FOUR + 1) == step.next_set and history.at(10**6) == step.next_set
    later = certified(chain, 16)
    header = later.block.header
    verify_certifying_block(
        genesis, later, state_height=header.state_height, state_root=header.state_root, handovers=[step]
    )
    assert parse_handovers([step.to_json()]) == [step]
    assert parse_handovers(None) == []


def test_a_missing_or_forged_handover_is_named(chain: Chain) -> None:
    genesis = chain[0]
    step = handover(chain)
    later = certified(chain, 16)
    header = later.block.header
    with pytest.raises(AuditFailure, match=r"validator sets: .*a handover is missing"):
        verify_certifying_block(
            genesis, later, state_height=header.state_height, state_root=header.state_root
        )
    with pytest.raises(HandoverError, match="next_validators_hash is not the hash"):
        verify_handovers(genesis, [dataclasses.replace(step, next_set=genesis.validator_set)])
    twelve = certified(chain, 12)
    with pytest.raises(HandoverError, match="next_validators_hash"):  # block 12 still names the four next
        verify_handovers(genesis, [Handover(twelve.block.header, twelve.certificate, step.next_set)])
    too_few = dataclasses.replace(step.certificate, votes=step.certificate.votes[:2])
    with pytest.raises(HandoverError, match="commit certificate"):
        verify_handovers(genesis, [dataclasses.replace(step, certificate=too_few)])
    with pytest.raises(HandoverError, match="increasing height"):
        verify_handovers(genesis, [step, step])
    with pytest.raises(HandoverError, match="malformed"):
        parse_handovers([{"last_height": 13, "header": "zz"}])


def test_the_heights_to_fetch_come_from_the_validators_query_history() -> None:
    aa, bb = {"number": 0, "node_key": "aa"}, {"number": 4, "node_key": "bb"}
    history = [
        {"first_height": 1, "last_height": 13, "validators": [aa]},
        {"first_height": 14, "last_height": 30, "validators": [aa, bb]},
        {"first_height": 31, "last_height": None, "validators": [bb]},
    ]
    assert handover_heights(history, below=20) == [(13, [[0, "aa"], [4, "bb"]])]
    assert handover_heights(history, below=31) == [(13, [[0, "aa"], [4, "bb"]]), (30, [[4, "bb"]])]
    assert handover_heights(history, below=13) == []
