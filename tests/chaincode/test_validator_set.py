"""Validator-set changes through governance (docs/CHAINCODE.md section 12.4): each validation rule with its
code, the pending change with its approval height, what the node reads after a block, the query."""

from __future__ import annotations

from typing import Any

from chainkit import Chain

from chaincode import get_validator_change
from chaincode.schema_gov import VALSET_PENDING
from core.devkeys import dev_node_key
from core.keys import SigningKey
from core.votes import compute_node_key_proof_digest

VALIDATOR_ORGS = ("mee", "bank", "ent1", "ver1")  # four validators, one each: the members by default


def make_chain() -> Chain:
    return Chain(validator_orgs=VALIDATOR_ORGS)


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
    assert [v["org"] for v in view["validators"]] == list(VALIDATOR_ORGS)  # not in force: consensus decides
    assert view["since_height"] == 0 and view["open_proposal"] is None
    pending = view["pending"]
    assert pending["approved_height"] == chain.height and pending["action"] == "add_validator"
    assert [v["org"] for v in pending["validators"]] == [*VALIDATOR_ORGS, "ent2"]
    # the node key is enrolled for ent2 as a node key: it signs only evidence
    keys = {k["public_key"]: k for k in chain.query("keys", org="ent2")["items"]}
    assert keys[node_key(4).public_key.hex()]["node"] is True
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
                         EMPTY_ROOT, EMPTY_ROOT)  # fmt: skip
    execution = execute_block(chain.state, Block(header, (tx,)), chain.registry, is_committed=lambda _: False)
    change = get_validator_change(execution.writes, height)
    assert change is not None and (change.action, change.proposal, change.approved_height) == (
        "move_validator",
        number,
        height,
    )
    assert change.node_key == node_key(1).public_key and change.new_node_key is None
    assert change.validators[1]["peer_address"] == "10.0.0.1:7001"
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
    # a rotation approved: the old key is revoked, the new one enrolled; the index and addresses stay
    number = propose(chain, "rotate_validator_key", **rotate, proof=proof(node_key(5), "ent1", old))
    approve(chain, number)
    pending = chain.query("validators")["pending"]
    assert pending["validators"][2] == {"org": "ent1", "node_key": node_key(5).public_key.hex(),
                                        "peer_address": "127.0.0.1:7002", "api_address": "127.0.0.1:8002"}  # fmt: skip
    keys = {k["public_key"]: k["status"] for k in chain.query("keys", org="ent1")["items"]}
    assert keys[old.public_key.hex()] == "revoked" and keys[node_key(5).public_key.hex()] == "active"


def test_a_node_key_signs_only_evidence() -> None:
    chain = make_chain()
    key = node_key(1)  # enrolled for bank at genesis as a node key
    assert (
        chain.call("bank", "deposit_cash", key=key, org="ent1", amount_fen=1, bank_ref="x").code
        == "restricted_key"
    )
    assert chain.call("bank", "approve", key=key, proposal=1).code == "restricted_key"
