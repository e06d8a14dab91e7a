"""The roster follows executed blocks: which validators the peer layer admits before, during and after a
validator-set change, and the same answer after a restart rebuilt from the recorded history."""

from __future__ import annotations

from core.devkeys import dev_node_key
from core.validators import compute_activation_height
from node.roster import ApprovedSet, Roster
from p2p.identity import ValidatorEntry
from tests.node.nodekit import GENESIS

PARAMS = GENESIS.consensus
GENESIS_MEMBERS = [
    ValidatorEntry(i, v.node_key_bytes, v.peer_address) for i, v in enumerate(GENESIS.validators)
]
JOINER = ValidatorEntry(4, dev_node_key("validator", 4).public_key, "127.0.0.1:7104")
# validator-4 joins, validator-1 leaves, validator-3 moves
NEW_MEMBERS = (
    GENESIS_MEMBERS[0],
    GENESIS_MEMBERS[2],
    ValidatorEntry(3, GENESIS_MEMBERS[3].node_key, "10.0.0.3:7103"),
    JOINER,
)
APPROVED_AT = 3
LAST_OLD = compute_activation_height(
    APPROVED_AT, checkpoint_interval=PARAMS.checkpoint_interval, pipeline_depth=PARAMS.pipeline_depth
)


def numbers(entries: list[ValidatorEntry]) -> list[int]:
    return [entry.number for entry in entries]


def test_admitted_validators_before_during_and_after_a_change() -> None:
    told: list[list[ValidatorEntry]] = []
    roster = Roster(GENESIS, executed_height=0, on_admitted=told.append)
    assert roster.admitted() == GENESIS_MEMBERS
    for height in (1, 2):
        assert roster.note_executed(height, None) is None
    change = ApprovedSet(APPROVED_AT, NEW_MEMBERS)
    assert roster.note_executed(APPROVED_AT, change) == change.validators
    # pending: the set in force (with validator-3's old address) plus the joiner
    assert roster.admitted() == [*GENESIS_MEMBERS, JOINER]
    assert told == [[*GENESIS_MEMBERS, JOINER]]
    for height in range(APPROVED_AT + 1, LAST_OLD):
        roster.note_executed(height, None)
    assert len(told) == 1 and roster.members_at(LAST_OLD) == tuple(GENESIS_MEMBERS)
    roster.note_executed(LAST_OLD, None)  # the old set's last height: from now on only the new set
    assert roster.admitted() == list(NEW_MEMBERS)
    assert told[-1] == list(NEW_MEMBERS) and len(told) == 2
    assert roster.members_at(LAST_OLD + 1) == NEW_MEMBERS
    assert roster.membership.at(LAST_OLD + 1).numbers == (0, 2, 3, 4)
    assert roster.history == (change,)


def test_a_restarted_node_rebuilds_the_same_roster_from_the_history() -> None:
    change = ApprovedSet(APPROVED_AT, NEW_MEMBERS)
    pending = Roster(GENESIS, executed_height=APPROVED_AT + 1, history=[change])
    assert numbers(pending.admitted()) == [0, 1, 2, 3, 4]
    after = Roster(GENESIS, executed_height=LAST_OLD, history=[change])
    assert after.admitted() == list(NEW_MEMBERS)
    assert after.membership.at(LAST_OLD).numbers == (0, 1, 2, 3)
