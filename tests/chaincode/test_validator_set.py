"""Validator-set changes through governance (docs/CHAINCODE.md section 12.4): each validation rule with its
code, the pending change with its activation height, activation at the end of exactly that block, permanent
numbers, the history, one change at a time, what the node reads after a block, the query; and the sets
the chaincode puts in force are the sets consensus.membership derives from the same approvals."""

from __future__ import annotations

from typing import Any

from chainkit import Chain
from hypothesis import given, settings
from hypothesis import strategies as st

from chaincode import get_validator_change, list_validator_changes
from chaincode.schema_gov import VALSET_PENDING
from chaincode.validators import to_validator_set
from consensus.membership import Membership
from core.devkeys import dev_node_key
from core.genesis import ConsensusParams
from core.keys import SigningKey
from core.validators import ValidatorSet, compute_activation_height
from core.votes import compute_node_key_proof_digest

VALIDATOR_ORGS = ("mee", "bank", "ent1", "ver1")  # four validators, one each: the members by default


RULE = ConsensusParams()  # the chain's consensus parameters: the defaults (interval 100, depth 2)


def make_chain() -> Chain:
    return Chain(validator_orgs=VALIDATOR_ORGS)


def activation_height(approved: int) -> int:
    return compute_activation_height(
        approved, checkpoint_interval=RULE.checkpoint_interval, pipeline_depth=RULE.pipeline_depth
    )


def run_to(chain: Chain, height: int) -> None:
    """Empty blocks up to and including `height`."""
    while chain.height < height:
        chain.run_block([])


def key_status(chain: Chain, org: str, key: SigningKey) -> str | None:
    keys = {k["public_key"]: k["status"] for k in chain.query("keys", org=org)["items"]}
    return keys.get(key.public_key.hex())


def numbers(view: dict[str, Any]) -> list[tuple[int, str]]:
    return [(v["number"], v["node_key"]) for v in view["validators"]]


def node_key(index: int) -> SigningKey:
    return dev_node_key("validator", index)


def proof(key: SigningKey, org: str, replaces: SigningKey | None = None) -> str:
    old = None if replaces is None else replaces.public_key
    return key.sign(compute_node_key_proof_digest("carbon-devnet", org, key.public_key, old)).hex()


def propose(chain: Chain, action: str, expect: str = "ok", /, **args: Any) -> int:
    result = chain.call("mee", "propose", action=action, args=args, expires_height=chain.height + 20)
    assert result.code == expect, result
    return int(result.events[0]["proposal"]) if expect == "ok" else 0


def approve(chain: Chain, number: int) -> None:
    """bank and ent1 approve: with mee's proposal, 3 of the 4 members."""
    for org in ("bank", "ent1"):
        chain.ok(org, "approve", proposal=number)


def add_args(org: str = "ent2", index: int = 4, **extra: Any) -> dict[str, Any]:
    key = node_key(index)
    return {"org": org, "node_key": key.public_key.hex(), "peer_address": "10.0.0.5:7000",
            "api_address": "10.0.0.5:8000", "proof": proof(key, org), **extra}  # fmt: skip


def test_an_approved_addition_is_pending_with_its_approval_height_and_the_node_reads_it() -> None:
    chain = make_chain()
    admitted = chain.call(
        "mee", "propose", action="admit_member", args={"org": "ent2"}, expires_height=chain.height + 20
    )
    approve(chain, int(admitted.events[0]["proposal"]))
    number = propose(chain, "add_validator", **add_args())
    propose(
        chain, "remove_validator", "change_pending", node_key=node_key(0).public_key.hex()
    )  # one at a time
    assert chain.query("validators")["open_proposal"] == number
    chain.ok("bank", "approve", proposal=number)
    chain.ok("ent1", "approve", proposal=number)  # ent2 made five members: four are needed
    chain.ok("ver1", "approve", proposal=number)
    view = chain.query("validators")
    assert [v["org"] for v in view["validators"]] == list(VALIDATOR_ORGS)  # not in force before L
    assert (view["epoch"], view["first_height"], view["open_proposal"]) == (0, 1, None)
    pending = view["pending"]
    assert pending["approved_height"] == chain.height and pending["action"] == "add_validator"
    assert pending["activation_height"] == activation_height(chain.height) and pending["number"] == 4
    assert [(v["number"], v["org"]) for v in pending["validators"]] == [
        *enumerate(VALIDATOR_ORGS),
        (4, "ent2"),
    ]
    assert view["last_height"] == pending["activation_height"]  # the genesis set's end is now known
    propose(chain, "remove_validator", "change_pending", node_key=node_key(0).public_key.hex())


def test_get_validator_change_reads_only_the_block_that_approved_it() -> None:
    chain = make_chain()
    number = propose(chain, "move_validator", node_key=node_key(1).public_key.hex(),
                     peer_address="10.0.0.1:7001", api_address="10.0.0.1:8001")  # fmt: skip
    chain.ok("bank", "approve", proposal=number)
    from chaincode import execute_block  # the pure function the node calls after executing a block
    from core.block import EMPTY_ROOT, Block, BlockHeader

    tx = chain.make_tx("ent1", "approve", {"proposal": number})
    height = chain.height + 1
    header = BlockHeader("carbon-devnet", height, bytes(32), chain.time_ms + 1000, 0, 1, EMPTY_ROOT, 0,
                         EMPTY_ROOT, EMPTY_ROOT, EMPTY_ROOT, EMPTY_ROOT)  # fmt: skip
    execution = execute_block(chain.state, Block(header, (tx,)), chain.registry, is_committed=lambda _: False)
    change = get_validator_change(execution.writes, height)
    assert change is not None
    assert (change.action, change.proposal, change.approved_height, change.activation_height, change.number) == (
        "move_validator", number, height, activation_height(height), 1)  # fmt: skip
    assert change.node_key == node_key(1).public_key and change.new_node_key is None
    assert change.validators[1]["peer_address"] == "10.0.0.1:7001"
    assert change.validator_set == ValidatorSet.of_keys(node_key(i).public_key for i in range(4))
    assert get_validator_change(execution.writes, height + 1) is None
    assert get_validator_change({}, height) is None
    assert VALSET_PENDING in execution.writes


def test_each_rule_of_a_validator_change_fails_with_its_code() -> None:
    chain = make_chain()
    propose(chain, "add_validator", "not_member", **add_args(org="ent2"))
    propose(chain, "add_validator", "unknown_org", **add_args(org="ghost"))
    used = node_key(0)
    propose(
        chain, "add_validator", "node_key_used", **add_args(org="bank", index=0, proof=proof(used, "bank"))
    )
    propose(chain, "add_validator", "address_in_use", **add_args(org="bank", peer_address="127.0.0.1:7000"))
    propose(chain, "add_validator", "address_in_use", **add_args(org="bank", api_address="10.0.0.5:7000"))
    propose(chain, "add_validator", "bad_proof", **add_args(org="bank", proof=proof(node_key(4), "mee")))
    propose(chain, "add_validator", "invalid_args", **add_args(org="bank", peer_address="nowhere"))
    propose(chain, "remove_validator", "unknown_validator", node_key=node_key(9).public_key.hex())
    propose(chain, "remove_validator", "too_few_validators", node_key=node_key(0).public_key.hex())
    old = node_key(2)
    rotate = {"node_key": old.public_key.hex(), "new_node_key": node_key(5).public_key.hex()}
    propose(
        chain, "rotate_validator_key", "bad_proof", **rotate, proof=proof(node_key(5), "ent1")
    )  # no replaces
    propose(chain, "rotate_validator_key", "node_key_used", node_key=old.public_key.hex(),
            new_node_key=node_key(3).public_key.hex(), proof=proof(node_key(3), "ent1", old))  # fmt: skip
    move = {
        "node_key": old.public_key.hex(),
        "peer_address": "127.0.0.1:7002",
        "api_address": "127.0.0.1:8002",
    }
    propose(chain, "move_validator", "no_change", **move)
    propose(chain, "move_validator", "address_in_use", **{**move, "peer_address": "127.0.0.1:8003"})
    # a rotation approved: the number and addresses stay; at activation the old key is revoked and the new
    # one enrolled (as a node key: it signs only evidence)
    number = propose(chain, "rotate_validator_key", **rotate, proof=proof(node_key(5), "ent1", old))
    approve(chain, number)
    pending = chain.query("validators")["pending"]
    assert pending["validators"][2] == {"number": 2, "org": "ent1", "node_key": node_key(5).public_key.hex(),
                                        "peer_address": "127.0.0.1:7002", "api_address": "127.0.0.1:8002"}  # fmt: skip
    assert key_status(chain, "ent1", old) == "active" and key_status(chain, "ent1", node_key(5)) is None
    run_to(chain, pending["activation_height"])
    assert key_status(chain, "ent1", old) == "revoked" and key_status(chain, "ent1", node_key(5)) == "active"
    node = {k["public_key"]: k for k in chain.query("keys", org="ent1")["items"]}[
        node_key(5).public_key.hex()
    ]
    assert node["node"] is True


def test_a_node_key_signs_only_evidence() -> None:
    chain = make_chain()
    key = node_key(1)  # enrolled for bank at genesis as a node key
    assert (
        chain.call("bank", "deposit_cash", key=key, org="ent1", amount_fen=1, bank_ref="x").code
        == "restricted_key"
    )
    assert chain.call("bank", "approve", key=key, proposal=1).code == "restricted_key"


def admit(chain: Chain, org: str) -> None:
    number = propose(chain, "admit_member", org=org)
    for voter in ("bank", "ent1", "ver1"):
        if chain.query("proposal", proposal=number)["status"] == "open":
            chain.ok(voter, "approve", proposal=number)


def approve_all(chain: Chain, number: int) -> None:
    """Every other member approves until the proposal executes."""
    for member in [m["org"] for m in chain.query("members")["items"] if m["org"] != "mee"]:
        if chain.query("proposal", proposal=number)["status"] == "open":
            chain.ok(member, "approve", proposal=number)
    assert chain.query("proposal", proposal=number)["status"] == "executed"


def test_genesis_numbers_the_validators_in_order_as_epoch_0() -> None:
    view = make_chain().query("validators")
    assert numbers(view) == [(i, node_key(i).public_key.hex()) for i in range(4)]
    assert (view["epoch"], view["first_height"], view["last_height"], view["next_number"]) == (0, 1, None, 4)
    assert view["pending"] is None and len(view["history"]) == 1
    assert to_validator_set(view["validators"]) == ValidatorSet.of_keys(
        node_key(i).public_key for i in range(4)
    )


def test_a_change_comes_into_force_at_the_end_of_block_l_exactly() -> None:
    chain = make_chain()
    admit(chain, "ent2")
    number = propose(chain, "add_validator", **add_args())
    approve_all(chain, number)
    approved = chain.height
    last = activation_height(approved)
    assert last % RULE.checkpoint_interval == 0 and last >= approved + 2 * RULE.pipeline_depth + 2
    genesis_set = numbers(chain.query("validators"))
    run_to(chain, last - 1)
    before = chain.query("validators")
    assert numbers(before) == genesis_set and before["pending"]["activation_height"] == last  # not before L
    assert key_status(chain, "ent2", node_key(4)) is None
    propose(chain, "remove_validator", "change_pending", node_key=node_key(0).public_key.hex())
    run_to(chain, last)
    view = chain.query("validators")  # after block L: the new set, certifying from L + 1
    assert view["pending"] is None and view["open_proposal"] is None
    assert (view["epoch"], view["first_height"], view["last_height"], view["next_number"]) == (
        1,
        last + 1,
        None,
        5,
    )
    assert numbers(view) == [*genesis_set, (4, node_key(4).public_key.hex())]
    assert [(e["epoch"], e["first_height"], e["last_height"]) for e in view["history"]] == [
        (0, 1, last), (1, last + 1, None)]  # fmt: skip
    assert view["history"][1]["approved_height"] == approved and view["history"][1]["proposal"] == number
    assert numbers(chain.query("validators", height=last)) == genesis_set
    assert numbers(chain.query("validators", height=last + 1)) == numbers(view)
    assert key_status(chain, "ent2", node_key(4)) == "active"  # enrolled when it came into force
    # a new change may be proposed now
    propose(chain, "remove_validator", node_key=node_key(0).public_key.hex())


def test_numbers_are_permanent_and_never_reused() -> None:
    chain = make_chain()
    admit(chain, "ent2")

    def add(index: int) -> tuple[str, dict[str, Any]]:
        return "add_validator", add_args(index=index, peer_address=f"10.0.0.{index}:7000",
                                         api_address=f"10.0.0.{index}:8000")  # fmt: skip

    def remove(index: int) -> tuple[str, dict[str, Any]]:
        return "remove_validator", {"node_key": node_key(index).public_key.hex()}

    steps = [add(4), add(5), remove(4), remove(1), add(6)]
    for action, args in steps:
        approve_all(chain, propose(chain, action, **args))
        run_to(chain, chain.query("validators")["pending"]["activation_height"])
    view = chain.query("validators")
    assert [v["number"] for v in view["validators"]] == [0, 2, 3, 5, 6]  # 6, not 4 or 1 again
    assert view["validators"][-1]["node_key"] == node_key(6).public_key.hex() and view["next_number"] == 7
    assert [e["epoch"] for e in view["history"]] == [0, 1, 2, 3, 4, 5]
    assert [e["action"] for e in view["history"]] == [None, *(action for action, _ in steps)]
    for earlier, later in zip(view["history"], view["history"][1:], strict=False):
        assert later["first_height"] == earlier["last_height"] + 1  # no gap, no overlap
    assert (
        key_status(chain, "ent2", node_key(4)) == "revoked"
        and key_status(chain, "bank", node_key(1)) == "revoked"
    )


def test_a_restarted_node_reads_every_change_from_state() -> None:
    chain = make_chain()
    move = {"node_key": node_key(3).public_key.hex(), "peer_address": "10.0.0.3:7003",
            "api_address": "10.0.0.3:8003"}  # fmt: skip
    approve_all(chain, propose(chain, "move_validator", **move))
    first = chain.height
    run_to(chain, chain.query("validators")["pending"]["activation_height"])
    old = node_key(2)
    rotate = {"node_key": old.public_key.hex(), "new_node_key": node_key(6).public_key.hex()}
    approve_all(
        chain, propose(chain, "rotate_validator_key", **rotate, proof=proof(node_key(6), "ent1", old))
    )
    second = chain.height  # pending: it counts too
    genesis_keys = [node_key(i).public_key for i in range(4)]
    rotated = ValidatorSet(
        tuple((i, node_key(6).public_key if i == 2 else k) for i, k in enumerate(genesis_keys))
    )
    assert list_validator_changes(chain.state) == [
        (first, ValidatorSet.of_keys(genesis_keys)),
        (second, rotated),
    ]


# The chaincode's sets and consensus' Membership come from the same rule: a property over random schedules.
_ACTIONS = st.lists(st.tuples(st.sampled_from(["add", "remove", "rotate", "move"]), st.integers(0, 120)),
                    min_size=1, max_size=4)  # fmt: skip


@settings(max_examples=15, deadline=None)
@given(schedule=_ACTIONS)
def test_the_sets_in_force_are_the_ones_membership_derives(schedule: list[tuple[str, int]]) -> None:
    chain = make_chain()
    admit(chain, "ent2")
    fresh = iter(range(4, 40))
    membership = Membership(ValidatorSet.of_keys(node_key(i).public_key for i in range(4)),
                            checkpoint_interval=RULE.checkpoint_interval, pipeline_depth=RULE.pipeline_depth)  # fmt: skip
    for kind, gap in schedule:
        run_to(chain, chain.height + gap)
        pending = chain.query("validators")["pending"]
        if pending is not None:
            run_to(chain, pending["activation_height"])
        members = chain.query("validators")["validators"]
        target = members[gap % len(members)]
        if kind == "add" or (kind == "remove" and len(members) == 4):
            index = next(fresh)
            args = add_args(
                index=index, peer_address=f"10.1.0.{index}:7000", api_address=f"10.1.0.{index}:8000"
            )
            action = "add_validator"
        elif kind == "remove":
            action, args = "remove_validator", {"node_key": target["node_key"]}
        elif kind == "rotate":
            new = node_key(next(fresh))
            digest = compute_node_key_proof_digest(
                "carbon-devnet", target["org"], new.public_key, bytes.fromhex(target["node_key"])
            )
            args = {"node_key": target["node_key"], "new_node_key": new.public_key.hex(),
                    "proof": new.sign(digest).hex()}  # fmt: skip
            action = "rotate_validator_key"
        else:
            action, place = "move_validator", next(fresh)
            args = {"node_key": target["node_key"], "peer_address": f"10.2.0.{place}:7000",
                    "api_address": f"10.2.0.{place}:8000"}  # fmt: skip
        approve_all(chain, propose(chain, action, **args))
        change = chain.query("validators")["pending"]
        membership.note_executed(change["approved_height"], to_validator_set(change["validators"]))
    run_to(chain, chain.query("validators")["pending"]["activation_height"] + 1)
    membership.note_executed(chain.height, None)
    for height in range(1, chain.height + 1):
        assert to_validator_set(chain.query("validators", height=height)["validators"]) == membership.at(
            height
        )
