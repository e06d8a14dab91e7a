"""Governance proposals (docs/CHAINCODE.md section 12): thresholds, one vote per organisation, execution
exactly once, rejection, cancellation, expiry at the end of a block, policies changed under the stricter
policy, membership."""

from __future__ import annotations

from typing import Any

from chainkit import Chain

from chaincode.context import OverlayState, TxContext
from chaincode.ledger import get_params
from core import codec
from core.devkeys import dev_admin_key

MEMBERS = ["mee", "bank", "ent1", "ver1"]  # 4 members: 2/3 needs 3 of them


def make_chain(**params: Any) -> Chain:
    return Chain(params, governance={"members": MEMBERS})


def propose(
    chain: Chain, sender: str, action: str, expect: str = "ok", /, *, expires_in: int = 10, **args: Any
) -> int:
    result = chain.call(
        sender, "propose", action=action, args=args, expires_height=chain.height + 1 + expires_in
    )
    assert result.code == expect, result
    if expect != "ok":
        return 0
    return int(next(e["proposal"] for e in result.events if e["type"] == "proposal_created"))


def proposal(chain: Chain, number: int) -> dict[str, Any]:
    return dict(chain.query("proposal", proposal=number))


def test_a_parameter_change_executes_once_when_two_thirds_of_the_members_approve() -> None:
    chain = make_chain()
    number = propose(chain, "mee", "set_parameter", name="offset_cap_bps", value=800)
    assert proposal(chain, number)["status"] == "open"
    assert [v["org"] for v in proposal(chain, number)["approvals"]] == ["mee"]  # proposing is approving
    chain.ok("bank", "approve", proposal=number)
    assert proposal(chain, number)["status"] == "open"
    assert chain.query("params")["offset_cap_bps"] == 500
    result = chain.ok("ent1", "approve", proposal=number)
    assert [e["type"] for e in result.events] == [
        "proposal_approved",
        "proposal_executed",
        "parameter_changed",
    ]
    assert chain.query("params")["offset_cap_bps"] == 800
    record = proposal(chain, number)
    assert record["status"] == "executed" and record["closed_height"] == chain.height
    assert [v["key"] for v in record["approvals"]] == [dev_admin_key(o).public_key.hex() for o in MEMBERS[:3]]
    chain.fails("proposal_closed", "ver1", "approve", proposal=number)  # exactly once
    assert list(chain.state.iterate(b"orgprop/")) == [] and list(chain.state.iterate(b"expiry/")) == []


def test_a_parameter_change_applies_to_the_next_transaction_of_the_same_block() -> None:
    # the parameters are decoded once per distinct value (chaincode.ledger.get_params): a change earlier
    # in the block must reach the very next transaction, and a later block must not see a dropped one
    chain = make_chain()
    chain.open_period()
    chain.ok("mee", "allocate", period="2025", org="ent2", amount_t=10_000)
    number = propose(chain, "mee", "set_parameter", name="four_eyes_allowance_t", value=100)
    chain.ok("bank", "approve", proposal=number)

    def transfer() -> Any:
        return chain.make_tx("ent2", "transfer_allowances", {"to": "ent3", "amount_t": 500})

    executing = chain.make_tx("ent1", "approve", {"proposal": number})
    before, approval, after = chain.run_block([transfer(), executing, transfer()])
    assert [e["type"] for e in before.events] == ["allowances_transferred"]  # 500 <= 10,000
    assert "parameter_changed" in [e["type"] for e in approval.events]
    assert [e["type"] for e in after.events] == ["request_created"]  # 500 > 100, in the same block
    assert chain.query("params")["four_eyes_allowance_t"] == 100


def test_parameters_are_handed_out_as_copies() -> None:
    chain = make_chain()
    context = TxContext(
        OverlayState(chain.state), sender_org="mee", sender_role="regulator", sender_key=b"",
        sender_is_admin=True, height=1, block_time_ms=0, tx_id=b"",
    )  # fmt: skip
    params = get_params(context)
    params["offset_cap_bps"] = 9_999
    assert get_params(context)["offset_cap_bps"] == 500
    assert chain.query("params")["offset_cap_bps"] == 500


def test_one_organisation_counts_once_however_many_of_its_keys_approve() -> None:
    chain = make_chain()
    second = chain.client_key("bank")
    chain.ok("bank", "enrol_key", public_key=second.public_key.hex(), admin=True)
    number = propose(chain, "mee", "set_parameter", name="penalty_fen_per_t", value=20_000)
    chain.ok("bank", "approve", proposal=number)
    assert chain.call("bank", "approve", key=second, proposal=number).code == "already_voted"
    assert chain.call("bank", "reject", key=second, proposal=number).code == "already_voted"
    assert chain.call("mee", "approve", proposal=number).code == "already_voted"  # the proposer's vote
    record = proposal(chain, number)
    assert record["status"] == "open" and len(record["approvals"]) == 2
    assert chain.query("params")["penalty_fen_per_t"] == 10_000


def test_only_the_electorate_proposes_and_votes_and_only_with_admin_keys() -> None:
    chain = make_chain()
    propose(chain, "ent2", "set_parameter", "not_eligible", name="offset_cap_bps", value=800)
    number = propose(chain, "mee", "set_parameter", name="offset_cap_bps", value=800)
    chain.fails("not_eligible", "ent2", "approve", proposal=number)
    chain.fails("not_eligible", "ent2", "reject", proposal=number)
    client = chain.client_key("bank")
    chain.ok("bank", "enrol_key", public_key=client.public_key.hex())
    assert chain.call("bank", "approve", key=client, proposal=number).code == "not_admin"
    chain.fails("unknown_proposal", "bank", "approve", proposal=99)


def test_enough_rejections_defeat_a_proposal_and_it_never_executes() -> None:
    chain = make_chain()
    number = propose(chain, "mee", "set_parameter", name="offset_cap_bps", value=800)
    assert [e["type"] for e in chain.ok("bank", "reject", proposal=number).events] == ["proposal_rejected"]
    result = chain.ok("ent1", "reject", proposal=number)  # 4 - 2 = 2 can approve, 3 are needed
    assert [e["type"] for e in result.events] == ["proposal_rejected", "proposal_defeated"]
    assert proposal(chain, number)["status"] == "rejected"
    chain.fails("proposal_closed", "ver1", "approve", proposal=number)
    assert chain.query("params")["offset_cap_bps"] == 500


def test_the_proposer_cancels_and_a_cancelled_proposal_never_executes() -> None:
    chain = make_chain()
    number = propose(chain, "mee", "set_parameter", name="offset_cap_bps", value=800)
    chain.ok("bank", "approve", proposal=number)
    chain.fails("not_proposer", "bank", "cancel", proposal=number)
    chain.ok("mee", "cancel", proposal=number)
    chain.fails("proposal_closed", "ent1", "approve", proposal=number)
    chain.fails("proposal_closed", "mee", "cancel", proposal=number)
    assert proposal(chain, number)["status"] == "cancelled"
    assert chain.query("params")["offset_cap_bps"] == 500


def test_a_proposal_expires_at_the_end_of_its_last_block() -> None:
    chain = make_chain()
    number = propose(chain, "mee", "set_parameter", expires_in=1, name="offset_cap_bps", value=800)
    last = proposal(chain, number)["expires_height"]
    assert last == chain.height + 1
    chain.ok("bank", "approve", proposal=number)  # in its last block: still open at that block's end...
    assert chain.height == last and proposal(chain, number)["status"] == "expired"  # ...then expired
    assert proposal(chain, number)["closed_height"] == last
    chain.fails("proposal_closed", "ent1", "approve", proposal=number)
    assert chain.query("params")["offset_cap_bps"] == 500
    propose(chain, "mee", "set_parameter", "bad_expiry", expires_in=-1, name="offset_cap_bps", value=800)
    propose(chain, "mee", "set_parameter", "bad_expiry", expires_in=100_001, name="offset_cap_bps", value=800)


def test_an_action_that_no_longer_applies_ends_failed_with_its_code() -> None:
    chain = make_chain()
    first = propose(chain, "mee", "admit_member", org="ent2")
    second = propose(chain, "bank", "admit_member", org="ent2")
    chain.ok("ent1", "approve", proposal=first)
    chain.ok("ver1", "approve", proposal=first)  # executes: ent2 is a member
    assert "ent2" in [member["org"] for member in chain.query("members")["items"]]
    chain.ok("mee", "approve", proposal=second)
    chain.ok("ent1", "approve", proposal=second)  # ent2 made five members: four are needed now
    assert proposal(chain, second)["status"] == "open"
    result = chain.ok("ver1", "approve", proposal=second)  # the vote counts; the action fails
    assert result.events[-1] == {"type": "proposal_failed", "proposal": second, "action": "admit_member",
                                 "code": "already_member"}  # fmt: skip
    record = proposal(chain, second)
    assert (record["status"], record["failure"]) == ("failed", "already_member")


def test_a_policy_change_needs_the_stricter_of_the_old_and_the_new_policy() -> None:
    chain = make_chain()
    # raising parameters to every member: the new policy needs 4 approvals, the old ones only 3
    number = propose(chain, "mee", "set_policy", policy="parameters", proposers="members", approvers="members",
                     threshold_num=1, threshold_den=1, threshold_min=1)  # fmt: skip
    assert proposal(chain, number)["policies"] == ["policies", "parameters"]
    chain.ok("bank", "approve", proposal=number)
    chain.ok("ent1", "approve", proposal=number)
    assert proposal(chain, number)["status"] == "open"
    chain.ok("ver1", "approve", proposal=number)
    assert chain.query("policies")["items"][1]["threshold_num"] == 1
    # lowering it again to one member needs the old policy: all four
    number = propose(chain, "mee", "set_policy", policy="parameters", proposers="members", approvers="members",
                     threshold_num=0, threshold_den=1, threshold_min=1)  # fmt: skip
    for org in ("bank", "ent1"):
        chain.ok(org, "approve", proposal=number)
    assert proposal(chain, number)["status"] == "open"
    chain.ok("ver1", "approve", proposal=number)
    assert proposal(chain, number)["status"] == "executed"
    assert propose(chain, "ent1", "set_parameter", name="offset_cap_bps", value=900)  # one member now
    assert chain.query("params")["offset_cap_bps"] == 900


def test_role_electorates_and_unreachable_policies() -> None:
    chain = make_chain()
    propose(chain, "mee", "set_policy", "policy_unreachable", policy="membership", proposers="members",
            approvers="verifier", threshold_num=1, threshold_den=1, threshold_min=3)  # fmt: skip
    propose(chain, "mee", "set_policy", "no_change", policy="membership", proposers="members",
            approvers="members", threshold_num=2, threshold_den=3, threshold_min=1)  # fmt: skip
    propose(chain, "mee", "set_policy", "invalid_args", policy="membership", proposers="members",
            approvers="members", threshold_num=4, threshold_den=3, threshold_min=1)  # fmt: skip
    # the regulator alone decides parameters: the approving electorate is role regulator (one org)
    number = propose(chain, "mee", "set_policy", policy="parameters", proposers="regulator",
                     approvers="regulator", threshold_num=1, threshold_den=1, threshold_min=1)  # fmt: skip
    for org in ("bank", "ent1"):  # the policies policy and the old parameters policy: 3 members
        chain.ok(org, "approve", proposal=number)
    assert proposal(chain, number)["status"] == "executed"
    propose(chain, "bank", "set_parameter", "not_eligible", name="offset_cap_bps", value=800)
    number = propose(chain, "mee", "set_parameter", name="offset_cap_bps", value=800)
    assert proposal(chain, number)["status"] == "executed"  # created and executed in one transaction


def test_membership_admission_with_registration_and_removal() -> None:
    chain = make_chain()
    key = dev_admin_key("ent9").public_key.hex()
    propose(chain, "mee", "admit_member", "unknown_org", org="ent9")
    propose(
        chain, "mee", "admit_member", "org_exists", org="ent2", name="E2", role="enterprise", admin_keys=[key]
    )
    propose(chain, "mee", "admit_member", "key_exists", org="ent9", name="E9", role="enterprise",
            admin_keys=[key, key])  # fmt: skip
    propose(chain, "mee", "admit_member", "invalid_args", org="ent9", name="E9")
    propose(chain, "mee", "admit_member", "already_member", org="bank")
    number = propose(
        chain, "mee", "admit_member", org="ent9", name="Nine", role="enterprise", admin_keys=[key]
    )
    chain.ok("bank", "approve", proposal=number)
    result = chain.ok("ent1", "approve", proposal=number)
    assert [e["type"] for e in result.events][-2:] == ["organisation_registered", "member_admitted"]
    assert chain.query("organisation", org="ent9")["registered_height"] == chain.height
    assert len(chain.query("members")["items"]) == 5
    propose(chain, "mee", "remove_member", "runs_validator", org="mee")  # it operates the validator
    propose(chain, "mee", "remove_member", "not_member", org="ent2")
    number = propose(chain, "ent9", "remove_member", org="ver1")
    for org in ("bank", "ent1", "mee"):  # 5 members: 4 needed
        chain.ok(org, "approve", proposal=number)
    assert [m["org"] for m in chain.query("members")["items"]] == ["bank", "ent1", "ent9", "mee"]


def test_open_proposals_are_bounded_per_organisation() -> None:
    chain = make_chain(open_proposals_max=2)
    propose(chain, "mee", "set_parameter", name="offset_cap_bps", value=801)
    propose(chain, "mee", "set_parameter", name="offset_cap_bps", value=802)
    propose(chain, "mee", "set_parameter", "limit_exceeded", name="offset_cap_bps", value=803)
    propose(chain, "bank", "set_parameter", name="offset_cap_bps", value=803)
    propose(chain, "ent1", "set_parameter", "no_change", name="offset_cap_bps", value=500)
    propose(chain, "ent1", "set_parameter", "invalid_args", name="offset_cap_bps", value=10_001)
    propose(chain, "mee", "set_parameter", "invalid_args", name="reference_price_fen", value=1)
    propose(chain, "mee", "set_parameter", "invalid_args", name="penalty_rule", value="us")


def test_every_governance_record_is_declared() -> None:
    chain = make_chain()
    number = propose(chain, "mee", "set_parameter", name="penalty_rule", value="eu")
    raw = chain.state.get(b"proposal/%016d" % number)
    assert raw is not None and codec.decode(raw)["args"] == {"name": "penalty_rule", "value": "eu"}
    for org in ("bank", "ent1"):
        chain.ok(org, "approve", proposal=number)
    assert chain.query("params")["penalty_rule"] == "eu"  # chainkit checks every entry against schema
