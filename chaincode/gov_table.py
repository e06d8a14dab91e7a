"""The function table's governance part: proposals, evidence, and the four-eyes functions but the approval.

chaincode.carbon adds these to FUNCTIONS (and declares approve_request itself: it runs other functions of
the table). Governance functions need an admin key and are allowed while frozen: a freeze stops units
moving, it does not take a member's vote away.
"""

from __future__ import annotations

from chaincode import evidence, foureyes, governance
from chaincode.actions import ACTIONS
from chaincode.base import Arg, EventSpec, FunctionSpec
from chaincode.declare import ROLE_NAMES, declare, events
from chaincode.ledger import Code
from chaincode.params import AMOUNT_LIMIT
from chaincode.schema import SEQ_MAX
from chaincode.schema_gov import EVIDENCE_KINDS

_proposal = Arg("proposal", "int", "proposal id", minimum=1, maximum=SEQ_MAX)
_request = Arg("request", "int", "four-eyes request id", minimum=1, maximum=SEQ_MAX)
_ACTION_CODES = tuple(code for action in ACTIONS.values() for code in action.failures)
_ACTION_EVENTS: tuple[EventSpec, ...] = tuple(
    dict.fromkeys(event for action in ACTIONS.values() for event in action.events)
)
_OUTCOME = (*events("proposal_executed", "proposal_failed"), *_ACTION_EVENTS)


def _hash(name: str, description: str, *, required: bool = True) -> Arg:
    return Arg(name, "hex32", description, required=required)


GOVERNANCE: tuple[FunctionSpec, ...] = (
    declare(
        "propose",
        ROLE_NAMES,
        (
            Arg("action", "enum", "what to decide (section 12.3)", choices=tuple(ACTIONS)),
            Arg("args", "map", "the action's arguments", max_len=16),
            Arg("expires_height", "int", "the last height at which it can pass", minimum=1, maximum=2**62),
        ),
        "Propose a governance action; the proposer's organisation approves it by proposing.",
        governance.apply_propose,
        (
            Code.BAD_EXPIRY,
            Code.CHANGE_PENDING,
            Code.NOT_ELIGIBLE,
            Code.LIMIT_EXCEEDED,
            *_ACTION_CODES,
            Code.POLICY_UNREACHABLE,
            Code.OVERFLOW,
        ),
        (*events("proposal_created"), *_OUTCOME),
        admin_only=True,
        frozen_ok=True,
        check_args=governance.check_propose_args,
    ),
    declare(
        "approve",
        ROLE_NAMES,
        (_proposal,),
        "Approve a proposal for the sender's organisation; the approval that meets its thresholds executes it.",
        governance.apply_approve,
        (Code.UNKNOWN_PROPOSAL, Code.PROPOSAL_CLOSED, Code.NOT_ELIGIBLE, Code.ALREADY_VOTED),
        (*events("proposal_approved"), *_OUTCOME),
        admin_only=True,
        frozen_ok=True,
    ),
    declare(
        "reject",
        ROLE_NAMES,
        (_proposal,),
        "Reject a proposal for the sender's organisation; enough rejections defeat it.",
        governance.apply_reject,
        (Code.UNKNOWN_PROPOSAL, Code.PROPOSAL_CLOSED, Code.NOT_ELIGIBLE, Code.ALREADY_VOTED),
        events("proposal_rejected", "proposal_defeated"),
        admin_only=True,
        frozen_ok=True,
    ),
    declare(
        "cancel",
        ROLE_NAMES,
        (_proposal,),
        "Withdraw an open proposal of the sender's organisation.",
        governance.apply_cancel,
        (Code.UNKNOWN_PROPOSAL, Code.PROPOSAL_CLOSED, Code.NOT_PROPOSER),
        events("proposal_cancelled"),
        admin_only=True,
        frozen_ok=True,
    ),
    declare(
        "report_evidence",
        ROLE_NAMES,
        (
            Arg("kind", "enum", "the kind of both messages", choices=EVIDENCE_KINDS),
            _hash("validator", "the node key that signed both (hex)"),
            Arg("height", "int", "their height", minimum=1, maximum=2**62),
            Arg("view", "int", "their view (not for a checkpoint)", required=False, maximum=2**62),
            _hash("block_hash_1", "the first message's block hash"),
            Arg("signature_1", "hex64", "the first message's signature"),
            _hash("state_root_1", "a checkpoint's state root (only for a checkpoint)", required=False),
            _hash("block_hash_2", "the second message's block hash"),
            Arg("signature_2", "hex64", "the second message's signature"),
            _hash("state_root_2", "a checkpoint's state root (only for a checkpoint)", required=False),
        ),
        "Submit two conflicting consensus messages signed by one validator; recorded once if both verify.",
        evidence.apply_report_evidence,
        (Code.UNKNOWN_VALIDATOR, Code.SAME_MESSAGE, Code.INVALID_SIGNATURE, Code.DUPLICATE_EVIDENCE),
        events("evidence_recorded"),
        frozen_ok=True,
        node_key_ok=True,
        check_args=evidence.check_evidence_args,
    ),
)


def _threshold(name: str, description: str) -> Arg:
    return Arg(name, "int", description, required=False, maximum=AMOUNT_LIMIT)


FOUR_EYES: tuple[FunctionSpec, ...] = (
    declare(
        "reject_request",
        ROLE_NAMES,
        (_request,),
        "Reject (or, by its own key, withdraw) a four-eyes request of the sender's organisation.",
        foureyes.apply_reject_request,
        (Code.UNKNOWN_REQUEST, Code.REQUEST_CLOSED, Code.FORBIDDEN),
        events("request_rejected"),
        frozen_ok=True,
    ),
    declare(
        "set_four_eyes_thresholds",
        ROLE_NAMES,
        (
            _threshold(
                "allowance_t", "transfer_allowances above this needs a second key (absent: parameter)"
            ),
            _threshold("offset_t", "transfer_offsets above this many serials"),
            _threshold("cash_fen", "withdraw_cash above this"),
            _threshold("order_t", "place_order above this quantity"),
            _threshold("allocation_t", "allocate above this"),
        ),
        "Set the sender organisation's own four-eyes thresholds (absent ones: the consortium's parameters).",
        foureyes.apply_set_four_eyes_thresholds,
        (),
        events("four_eyes_thresholds_set"),
        admin_only=True,
        frozen_ok=True,
        four_eyes=foureyes.RULES["set_four_eyes_thresholds"],
    ),
)
