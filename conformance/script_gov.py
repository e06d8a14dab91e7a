"""The conformance chain's governance blocks: evidence, proposals, four-eyes requests, and the shrinking of
the consortium to one member (conformance.script adds them after the compliance years).

The genesis names four members (mee, bank, ent1, ver1: three approve) and low four-eyes thresholds and
limits, with freezes single-key until a proposal switches `four_eyes_freezes` on. Requests and proposals
are numbered as the script creates them (the counters start at 1), so the calls can name them. Requests
made in block 8 that nobody approves expire at the end of block 10 (the window is 2 blocks); proposal 5
expires at the end of block 8.
"""

from __future__ import annotations

from itertools import count
from typing import Any

from conformance.genesis import CHAIN_ID, DAY_MS, EVIDENCE, at, key_hex
from conformance.script_blocks import ScriptBlock
from core.devkeys import dev_node_key
from core.votes import compute_checkpoint_digest, compute_node_key_proof_digest, compute_prepare_digest

FIRST_HEIGHT = 7  # the height of the first governance block (after the six of conformance.script)
HASH_A, HASH_B, ROOT_A, ROOT_B = "aa" * 32, "bb" * 32, "cc" * 32, "dd" * 32


def node_hex(index: int) -> str:
    return dev_node_key("validator", index).public_key.hex()


def _prepare_signature(index: int, view: int, height: int, block_hash: str) -> str:
    digest = compute_prepare_digest(CHAIN_ID, view, height, bytes.fromhex(block_hash))
    return dev_node_key("validator", index).sign(digest).hex()


def _checkpoint_signature(index: int, height: int, block_hash: str, root: str) -> str:
    digest = compute_checkpoint_digest(CHAIN_ID, height, bytes.fromhex(block_hash), bytes.fromhex(root))
    return dev_node_key("validator", index).sign(digest).hex()


def prepare_evidence(
    index: int, view: int, height: int, first: str = HASH_A, second: str = HASH_B
) -> dict[str, Any]:
    """Validator `index` signed PREPAREs for two blocks at (view, height)."""
    return {
        "kind": "prepare",
        "validator": node_hex(index),
        "height": height,
        "view": view,
        "block_hash_1": first,
        "signature_1": _prepare_signature(index, view, height, first),
        "block_hash_2": second,
        "signature_2": _prepare_signature(index, view, height, second),
    }


def proof(index: int, org: str, replaces: str | None = None) -> str:
    """Validator key `index`'s proof of possession for `org`."""
    key = dev_node_key("validator", index)
    old = None if replaces is None else bytes.fromhex(replaces)
    return key.sign(compute_node_key_proof_digest(CHAIN_ID, org, key.public_key, old)).hex()


def build_governance_blocks(offset_ms: int) -> list[ScriptBlock]:
    proposals, requests = count(1), count(1)
    return [
        _proposals(ScriptBlock(offset_ms), proposals),
        _four_eyes(ScriptBlock(offset_ms + 10_000), requests),
        _shrink(ScriptBlock(offset_ms + 20_000), proposals),
        ScriptBlock(offset_ms + 30_000),  # requests of block 8 expire at the end of this block
    ]


def _propose(b: ScriptBlock, sender: str, action: str, expect: str = "ok", /, *, expires: int = 40,
             key: str = "admin", **args: Any) -> None:  # fmt: skip
    b.add(sender, "propose", expect, key=key, action=action, args=args, expires_height=expires)


# --- block 7: evidence, and proposals in every way they succeed and fail -------------------------------------


def _proposals(b: ScriptBlock, proposals: count[int]) -> ScriptBlock:
    height = FIRST_HEIGHT
    # evidence (docs/CHAINCODE.md section 14)
    evidence = prepare_evidence(1, 0, 3)
    b.add("ent2", "report_evidence", **evidence)
    swapped = {**evidence, "block_hash_1": evidence["block_hash_2"], "signature_1": evidence["signature_2"],
               "block_hash_2": evidence["block_hash_1"], "signature_2": evidence["signature_1"]}  # fmt: skip
    b.add("ent1", "report_evidence", "duplicate_evidence", **swapped)  # the same pair, the other way round
    b.add("ent2", "report_evidence", "same_message", **{**evidence, "block_hash_2": HASH_A,
                                                         "signature_2": evidence["signature_1"]})  # fmt: skip
    b.add("ent2", "report_evidence", "invalid_signature", **{**evidence, "signature_2": "00" * 64})
    b.add(
        "ent2", "report_evidence", "invalid_signature", **prepare_evidence(1, 1, 3) | {"view": 0}
    )  # view 1's
    b.add("ent2", "report_evidence", "unknown_validator", **{**evidence, "validator": node_hex(9)})
    b.add("ent2", "report_evidence", "invalid_args", **{**evidence, "state_root_1": ROOT_A})
    checkpoint = {
        "kind": "checkpoint",
        "validator": node_hex(2),
        "height": 100,
        "block_hash_1": HASH_A,
        "state_root_1": ROOT_A,
        "signature_1": _checkpoint_signature(2, 100, HASH_A, ROOT_A),
        "block_hash_2": HASH_A,
        "state_root_2": ROOT_B,
        "signature_2": _checkpoint_signature(2, 100, HASH_A, ROOT_B),
    }
    b.add("mee", "report_evidence", key="node-0", **checkpoint)  # a validator, with its node key
    b.add("mee", "set_reference_price", "restricted_key", key="node-0", price_fen=5000)  # only evidence
    # refusals of propose, in check order
    p5: dict[str, Any] = {"name": "offset_cap_bps", "value": 600}
    _propose(b, "mee", "set_parameter", "not_admin", key="client-0", **p5)
    _propose(b, "mee", "set_parameter", "bad_expiry", expires=height, **p5)
    _propose(b, "mee", "set_parameter", "bad_expiry", expires=height + 101, **p5)  # proposal_blocks_max 100
    _propose(b, "mee", "set_parameter", "invalid_args", name="offset_cap_bps", value="high")
    _propose(b, "ent2", "set_parameter", "not_eligible", **p5)
    _propose(b, "mee", "set_parameter", "no_change", name="offset_cap_bps", value=500)
    _propose(b, "mee", "admit_member", "unknown_org", org="ghost")
    _propose(b, "mee", "admit_member", "org_exists", org="ent2", name="x", role="enterprise",
             admin_keys=[key_hex("ent2")])  # fmt: skip
    _propose(b, "mee", "admit_member", "key_exists", org="ent9", name="x", role="enterprise",
             admin_keys=[key_hex("ent9"), key_hex("ent9")])  # fmt: skip
    _propose(b, "mee", "admit_member", "invalid_args", org="ent9", name="x")
    _propose(b, "mee", "admit_member", "already_member", org="bank")
    _propose(b, "mee", "remove_member", "not_member", org="ent2")
    _propose(b, "mee", "remove_member", "runs_validator", org="mee")  # it operates the validators
    _propose(b, "mee", "set_policy", "policy_unreachable", policy="membership", proposers="members",
             approvers="verifier", threshold_num=1, threshold_den=1, threshold_min=5)  # fmt: skip
    _propose(b, "mee", "set_policy", "invalid_args", policy="membership", proposers="members",
             approvers="members", threshold_num=2, threshold_den=1, threshold_min=1)  # fmt: skip
    add: dict[str, Any] = {"org": "mee", "node_key": node_hex(4), "peer_address": "127.0.0.1:7004",
           "api_address": "127.0.0.1:8004", "proof": proof(4, "mee")}  # fmt: skip
    _propose(b, "mee", "add_validator", "unknown_org", **{**add, "org": "ghost"})
    _propose(b, "mee", "add_validator", "not_member", **{**add, "org": "ent2", "proof": proof(4, "ent2")})
    _propose(
        b,
        "mee",
        "add_validator",
        "node_key_used",
        **{**add, "node_key": node_hex(0), "proof": proof(0, "mee")},
    )
    _propose(b, "mee", "add_validator", "address_in_use", **{**add, "peer_address": "127.0.0.1:7000"})
    _propose(b, "mee", "add_validator", "bad_proof", **{**add, "proof": proof(5, "mee")})
    _propose(b, "mee", "remove_validator", "unknown_validator", node_key=node_hex(9))
    _propose(b, "mee", "remove_validator", "too_few_validators", node_key=node_hex(0))
    # 1: freezes need two regulator keys from now on (3 of the 4 members)
    first = next(proposals)
    _propose(b, "mee", "set_parameter", name="four_eyes_freezes", value="on")
    b.add("bank", "approve", proposal=first)
    b.add("ent1", "approve", proposal=first)  # the third: executed
    b.add("ver1", "approve", "proposal_closed", proposal=first)
    b.add("ver1", "reject", "proposal_closed", proposal=first)
    b.add("mee", "cancel", "proposal_closed", proposal=first)
    for function in ("approve", "reject", "cancel"):
        b.add("ver1", function, "unknown_proposal", proposal=99)
        b.add("mee", function, "not_admin", key="client-0", proposal=first)
    # 2: membership decisions need 3/4 of the members: the policies policy, membership now, membership new
    second = next(proposals)
    _propose(b, "mee", "set_policy", policy="membership", proposers="members", approvers="members",
             threshold_num=3, threshold_den=4, threshold_min=1)  # fmt: skip
    b.add("bank", "approve", proposal=second)
    b.add("ent1", "approve", proposal=second)
    # 3 and 4: ent2 admitted twice; the second one fails when it executes
    third, fourth = next(proposals), next(proposals)
    _propose(b, "mee", "admit_member", org="ent2")
    _propose(b, "bank", "admit_member", org="ent2")
    b.add("ent2", "approve", "not_eligible", proposal=third)
    b.add("ent2", "reject", "not_eligible", proposal=third)
    b.add("bank", "approve", proposal=third)
    b.add("bank", "approve", "already_voted", proposal=third)
    b.add("bank", "reject", "already_voted", proposal=third)
    b.add("bank", "approve", "already_voted", proposal=fourth)  # proposing was its approval
    # 5: open until it expires at the end of block 8; mee's second open proposal is its limit
    next(proposals)
    _propose(b, "mee", "set_parameter", expires=height + 1, **p5)
    _propose(b, "mee", "set_parameter", "limit_exceeded", name="penalty_fen_per_t", value=1)
    b.add("ent1", "approve", proposal=third)  # mee, bank, ent1: 3 of 4 = 3/4: ent2 is a member
    b.add("mee", "approve", proposal=fourth)
    b.add("ent1", "approve", proposal=fourth)
    b.add("ver1", "approve", proposal=fourth)  # 4 of 5 members: it executes, and fails already_member
    # 6: cancelled by its proposer
    sixth = next(proposals)
    _propose(b, "ent1", "set_parameter", name="penalty_fen_per_t", value=20_000)
    b.add("mee", "cancel", "not_proposer", proposal=sixth)
    b.add("ent1", "cancel", proposal=sixth)
    # 7: defeated: of 5 members 4 must approve, two rejections leave 3
    seventh = next(proposals)
    _propose(b, "ver1", "set_parameter", name="buffer_bps", value=100)
    b.add("bank", "reject", proposal=seventh)
    b.add("ent1", "reject", proposal=seventh)
    b.add("mee", "approve", "proposal_closed", proposal=seventh)
    # 8: a fifth validator for mee, approved and pending; no other change while it is open or pending
    eighth = next(proposals)
    _propose(b, "ent1", "add_validator", **add)
    _propose(b, "mee", "remove_validator", "change_pending", node_key=node_hex(1))  # one open at a time
    for org in ("mee", "bank", "ver1"):
        b.add(org, "approve", proposal=eighth)
    _propose(b, "mee", "move_validator", "change_pending", node_key=node_hex(1), peer_address="127.0.0.1:7011",
             api_address="127.0.0.1:8011")  # fmt: skip
    return b


# --- block 8: four-eyes requests ---------------------------------------------------------------------------


def _four_eyes(b: ScriptBlock, requests: count[int]) -> ScriptBlock:
    b.add("mee", "set_reference_price", price_fen=5000)
    b.add("mee", "open_period", period="2027", reporting_deadline_ms=at(2 * DAY_MS),
          surrender_deadline_ms=at(3 * DAY_MS))  # fmt: skip
    b.add("mee", "allocate", period="2027", org="ent4", amount_t=4000)  # not above 5000: one key
    for j in range(3):
        b.add("ent4", "enrol_key", public_key=key_hex("ent4", f"client-{j}"), admin=j == 2)
    # a transfer above 100 t waits; the same key, another organisation cannot approve it; another key can
    r1 = next(requests)
    b.add("ent4", "transfer_allowances", to="ent3", amount_t=101)
    b.add("ent4", "approve_request", "same_key", request=r1)
    b.add("ent3", "approve_request", "forbidden", request=r1)
    b.add("ent4", "approve_request", key="client-0", request=r1)
    b.add("ent4", "approve_request", "request_closed", key="client-0", request=r1)
    b.add("ent4", "approve_request", "unknown_request", key="client-0", request=99)
    # an order above 500 t waits with its lock; rejected, the lock comes back
    r2 = next(requests)
    b.add("ent4", "place_order", side="sell", quantity_t=501, price_fen=5000)
    b.add("ent3", "reject_request", "forbidden", request=r2)
    b.add("ent4", "reject_request", request=r2)
    b.add("ent4", "reject_request", "request_closed", request=r2)
    b.add("ent4", "reject_request", "unknown_request", request=99)
    # a request whose key is revoked since cannot be approved (it expires at the end of block 10)
    r3 = next(requests)
    b.add("ent4", "transfer_allowances", key="client-1", to="ent3", amount_t=150)
    b.add("ent4", "revoke_key", org="ent4", public_key=key_hex("ent4", "client-1"))
    b.add("ent4", "approve_request", "key_revoked", key="client-0", request=r3)
    # raising its own threshold takes two admin keys; two pending is the limit
    r4 = next(requests)
    b.add("ent4", "set_four_eyes_thresholds", allowance_t=1000)
    b.add("ent4", "set_four_eyes_thresholds", "not_admin", key="client-0", allowance_t=1000)
    b.add("ent4", "set_four_eyes_thresholds", "limit_exceeded", offset_t=10_000)
    b.add("ent4", "transfer_allowances", "limit_exceeded", to="ent3", amount_t=102)
    b.add("ent4", "place_order", "limit_exceeded", side="sell", quantity_t=501, price_fen=5000)
    b.add("ent4", "approve_request", "not_admin", key="client-0", request=r4)
    b.add("ent4", "approve_request", key="client-2", request=r4)
    # an approval that fails (the recipient was frozen meanwhile, by two regulator keys) returns the lock
    r5, r6, r7 = next(requests), next(requests), next(requests)
    b.add("ent4", "transfer_allowances", to="ent5", amount_t=2000)  # above ent4's own 1000
    b.add("mee", "freeze_account", org="ent5", reason="stolen key reported")
    b.add("mee", "approve_request", key="client-0", request=r6)
    b.add("ent4", "approve_request", key="client-0", request=r5)  # request_failed: frozen
    b.add("mee", "unfreeze_account", org="ent5", reason="key replaced")
    b.add("mee", "approve_request", key="client-0", request=r7)
    # the regulator: allocations above 5000 t, and freezes, wait for its second key
    r8, _ = next(requests), next(requests)
    b.add("mee", "allocate", period="2027", org="ent3", amount_t=6000)
    b.add("mee", "allocate", period="2027", org="ent3", amount_t=6001)  # expires at the end of block 10
    b.add("mee", "allocate", "limit_exceeded", period="2027", org="ent3", amount_t=6002)
    b.add("mee", "freeze_account", "limit_exceeded", org="ent3", reason="x")
    b.add("mee", "unfreeze_account", "limit_exceeded", org="ent3", reason="x")
    b.add("mee", "approve_request", key="client-0", request=r8)
    # the bank: withdrawals above CNY 1,000 lock the member's cash until its second key
    r10 = next(requests)
    b.add("bank", "enrol_key", public_key=key_hex("bank", "client-0"))
    b.add("bank", "withdraw_cash", org="ent4", amount_fen=200_000, bank_ref="OUT-4")
    b.add("bank", "approve_request", key="client-0", request=r10)
    next(requests), next(requests)
    b.add("bank", "withdraw_cash", org="ent4", amount_fen=200_001, bank_ref="OUT-5")
    b.add("bank", "withdraw_cash", org="ent4", amount_fen=200_002, bank_ref="OUT-6")
    b.add("bank", "withdraw_cash", "limit_exceeded", org="ent4", amount_fen=200_003, bank_ref="OUT-7")
    # serial transfers above 60 serials; dev1 lowers its own threshold to 5 with one key
    r13 = next(requests)
    b.add("dev1", "enrol_key", public_key=key_hex("dev1", "client-0"))
    b.add("dev1", "transfer_offsets", first=96, last=180, to="ent2")
    b.add("dev1", "approve_request", key="client-0", request=r13)
    b.add("dev1", "set_four_eyes_thresholds", offset_t=5)
    next(requests), next(requests)
    b.add("dev1", "transfer_offsets", first=201, last=210, to="ent3")
    b.add("dev1", "transfer_offsets", first=211, last=220, to="ent3")
    b.add("dev1", "transfer_offsets", "limit_exceeded", first=221, last=230, to="ent3")
    # held serials move no way until their request ends; a freeze may cut them, the release mends all
    r16 = next(requests)
    b.add("ent2", "transfer_offsets", first=96, last=170, to="ent3")
    b.add("ent2", "transfer_offsets", "serial_held", first=100, last=100, to="ent3")
    b.add("ent2", "split_offsets", "serial_held", first=100, last=101)
    b.add("ent2", "retire_offsets", "serial_held", first=100, last=100, beneficiary="x", reason="x")
    b.add("mee", "cancel_offsets", "serial_held", first=100, last=100, reason="x")
    b.add("ent2", "submit_report", period="2027", emissions_kg=500_000, evidence_hash=EVIDENCE)
    b.add("ver1", "verify_report", period="2027", org="ent2", verified_t=500, opinion="satisfactory",
          evidence_hash=EVIDENCE)  # fmt: skip
    b.add("ent2", "surrender_offsets", "serial_held", period="2027", first=100, last=100)
    b.add("mee", "freeze_offsets", first=120, last=120, reason="disputed")
    b.add("ent2", "reject_request", request=r16)
    return b


# --- block 9: the consortium shrinks to one member, which stays -----------------------------------------------


def _shrink(b: ScriptBlock, proposals: count[int]) -> ScriptBlock:
    # five members, membership at 3/4: four approve the first removal, three the second, ...; mee stays (it
    # operates every validator), and the last member cannot be removed
    for org, approvers in (("ent2", ("bank", "ent1", "ver1")), ("ver1", ("bank", "ent1")),
                           ("ent1", ("bank", "ent1")), ("bank", ("bank",))):  # fmt: skip
        number = next(proposals)
        _propose(b, "mee", "remove_member", org=org)
        for approver in approvers:
            b.add(approver, "approve", proposal=number)
    _propose(b, "mee", "remove_member", "last_member", org="mee")
    return b
