"""Every event the carbon chaincode emits, declared once with its attributes (EVENTS).

A function's declaration (chaincode.carbon.FUNCTIONS) names the events it emits; docs/CHAINCODE.md's
function headers list them with their attributes (chaincode.docgen), and tests check every emitted event
against its declaration (chaincode.carbon.check_result). An event is the map {"type": type, <attribute>:
value, ...} with exactly these attributes.
"""

from __future__ import annotations

from chaincode.base import EventSpec
from chaincode.layout import Field
from chaincode.schema_gov import ACTIONS, EVIDENCE_KINDS, VALIDATOR_ACTIONS

_ROLE = "enum(regulator,enterprise,verifier,offset_developer,settlement_bank,auditor)"
_OPINION = "enum(satisfactory,satisfactory_with_comments,not_satisfactory)"
_ACTION = f"enum({','.join(ACTIONS)})"
_VALIDATOR_ACTION = f"enum({','.join(VALIDATOR_ACTIONS)})"
_EVIDENCE_KIND = f"enum({','.join(EVIDENCE_KINDS)})"


def _event(event_type: str, *attributes: tuple[str, str, str]) -> EventSpec:
    return EventSpec(event_type, tuple(Field(*attribute) for attribute in attributes))


_SPECS = (
    _event("organisation_registered", ("org", "org", "the new organisation"), ("role", _ROLE, "its role")),
    _event(
        "key_enrolled",
        ("org", "org", "the sender's organisation"),
        ("public_key", "hex32", "the key"),
        ("admin", "bool", "the admin argument"),
    ),
    _event(
        "key_revoked",
        ("org", "org", "the key's organisation"),
        ("public_key", "hex32", "the key"),
        ("by", "org", "the sender's organisation"),
    ),
    _event("verifier_accredited", ("org", "org", "the organisation concerned")),
    _event("verifier_revoked", ("org", "org", "the organisation concerned")),
    _event(
        "account_frozen",
        ("org", "org", "the organisation concerned"),
        ("reason", "str", "the reason argument"),
    ),
    _event(
        "account_unfrozen",
        ("org", "org", "the organisation concerned"),
        ("reason", "str", "the reason argument"),
    ),
    _event("period_opened", ("period", "id", "the period")),
    _event("period_closed", ("period", "id", "the period")),
    _event(
        "period_extended",
        ("period", "id", "the period"),
        ("reporting_deadline_ms", "int", "the reporting deadline now in force"),
        ("surrender_deadline_ms", "int", "the surrender deadline now in force"),
    ),
    _event(
        "allowances_allocated",
        ("period", "id", "the period"),
        ("org", "org", "the enterprise"),
        ("amount_t", "int", "granted_t: what was credited"),
        ("deducted_t", "int", "taken from a carried China-rule deduction"),
    ),
    _event(
        "report_submitted",
        ("period", "id", "the period"),
        ("org", "org", "the sender's organisation"),
        ("emissions_t", "int", "the report's emissions_t"),
    ),
    _event(
        "report_verified",
        ("period", "id", "the period"),
        ("org", "org", "the reporting enterprise"),
        ("verifier", "org", "the sender's organisation"),
        ("opinion", _OPINION, "the opinion argument"),
    ),
    _event(
        "allowances_surrendered",
        ("period", "id", "the period"),
        ("org", "org", "the sender's organisation"),
        ("amount_t", "int", "the amount argument"),
    ),
    _event(
        "offsets_surrendered",
        ("period", "id", "the period"),
        ("org", "org", "the sender's organisation"),
        ("first", "int", "first serial of the range"),
        ("last", "int", "last serial of the range"),
        ("quantity_t", "int", "last - first + 1"),
    ),
    _event(
        "period_settled",
        ("period", "id", "the period"),
        ("org", "org", "the enterprise"),
        ("status", "enum(compliant,surplus,shortfall,blocked)", "the compliance row's new status"),
        ("shortfall_t", "int", "the row's shortfall_t"),
        ("penalty_fen", "int", "the row's penalty_fen"),
    ),
    _event("project_registered", ("project", "id", "the project"), ("org", "org", "its developer")),
    _event(
        "offsets_issued",
        ("project", "id", "the project"),
        ("org", "org", "its developer"),
        ("issuance", "int", "the issuance number"),
        ("first", "int", "first serial issued"),
        ("last", "int", "last serial issued (buffer included)"),
        ("buffer_t", "int", "serials withheld in the buffer"),
    ),
    _event(
        "offsets_transferred",
        ("first", "int", "first serial of the range"),
        ("last", "int", "last serial of the range"),
        ("to", "org", "the recipient"),
        ("quantity_t", "int", "last - first + 1"),
    ),
    _event(
        "offsets_split",
        ("first", "int", "first serial of the range"),
        ("last", "int", "last serial of the range"),
    ),
    _event(
        "offsets_retired",
        ("org", "org", "the sender's organisation"),
        ("receipt", "hex32", "the receipt id (the transaction id)"),
        ("first", "int", "first serial of the range"),
        ("last", "int", "last serial of the range"),
        ("quantity_t", "int", "last - first + 1"),
    ),
    _event(
        "offsets_frozen",
        ("first", "int", "first serial of the range"),
        ("last", "int", "last serial of the range"),
        ("reason", "str", "the reason argument"),
    ),
    _event(
        "offsets_unfrozen",
        ("first", "int", "first serial of the range"),
        ("last", "int", "last serial of the range"),
        ("reason", "str", "the reason argument"),
    ),
    _event(
        "offsets_cancelled",
        ("first", "int", "first serial of the range"),
        ("last", "int", "last serial of the range"),
        ("quantity_t", "int", "last - first + 1"),
        ("reason", "str", "the reason argument"),
    ),
    _event(
        "allowances_transferred", ("to", "org", "the recipient"), ("amount_t", "int", "the amount argument")
    ),
    _event(
        "cash_deposited",
        ("org", "org", "the credited member"),
        ("amount_fen", "int", "the amount argument"),
        ("bank_ref", "id", "the reference argument"),
    ),
    _event(
        "cash_withdrawn",
        ("org", "org", "the debited member"),
        ("amount_fen", "int", "the amount argument"),
        ("bank_ref", "id", "the reference argument"),
    ),
    _event(
        "order_placed",
        ("order", "int", "the new order's id"),
        ("side", "enum(buy,sell)", "the side argument"),
        ("quantity_t", "int", "the quantity argument"),
        ("price_fen", "int", "the limit price argument"),
    ),
    _event(
        "trade",
        ("trade", "int", "the trade id"),
        ("buyer", "org", "buying enterprise"),
        ("seller", "org", "selling enterprise"),
        ("quantity_t", "int", "quantity traded"),
        ("price_fen", "int", "the resting order's price"),
    ),
    _event(
        "order_cancelled",
        ("order", "int", "the order argument"),
        ("remaining_t", "int", "the quantity that was still resting"),
    ),
    _event("reference_price_set", ("price_fen", "int", "the price argument")),
    # --- governance (section 12) ---
    _event(
        "proposal_created",
        ("proposal", "int", "the new proposal's id"),
        ("action", _ACTION, "the action argument"),
        ("proposer", "org", "the sender's organisation"),
        ("expires_height", "int", "the last height at which it can pass"),
    ),
    _event(
        "proposal_approved", ("proposal", "int", "the proposal"), ("org", "org", "the approving organisation")
    ),
    _event(
        "proposal_rejected", ("proposal", "int", "the proposal"), ("org", "org", "the rejecting organisation")
    ),
    _event("proposal_defeated", ("proposal", "int", "the proposal, which can no longer pass: rejected")),
    _event("proposal_cancelled", ("proposal", "int", "the proposal argument")),
    _event(
        "proposal_executed",
        ("proposal", "int", "the proposal whose thresholds were met"),
        ("action", _ACTION, "its action (its own events follow)"),
    ),
    _event(
        "proposal_failed",
        ("proposal", "int", "the proposal whose thresholds were met"),
        ("action", _ACTION, "its action"),
        ("code", "id", "the code the action failed with"),
    ),
    _event("member_admitted", ("org", "org", "the new member"), ("proposal", "int", "the deciding proposal")),
    _event(
        "member_removed", ("org", "org", "the former member"), ("proposal", "int", "the deciding proposal")
    ),
    _event(
        "parameter_changed",
        ("name", "id", "the parameter"),
        ("value", "int|str", "its new value"),
        ("proposal", "int", "the deciding proposal"),
    ),
    _event("policy_changed", ("policy", "id", "the policy"), ("proposal", "int", "the deciding proposal")),
    _event(
        "validator_change_approved",
        ("proposal", "int", "the deciding proposal"),
        ("action", _VALIDATOR_ACTION, "the change"),
        ("number", "int", "the number of the validator concerned"),
        ("node_key", "hex32", "its node key (a rotation: its old key)"),
        ("activation_height", "int", "L: the end of this block puts the change in force"),
    ),
    # --- four-eyes (section 13) ---
    _event(
        "request_created",
        ("request", "int", "the new request's id"),
        ("function", "id", "the function that waits for a second key"),
        ("expires_height", "int", "the last height at which it can be approved"),
    ),
    _event(
        "request_approved",
        ("request", "int", "the request argument"),
        ("function", "id", "the function, which ran (its own events follow)"),
    ),
    _event(
        "request_failed",
        ("request", "int", "the request argument"),
        ("function", "id", "the function, which ran and failed"),
        ("code", "id", "its failure code"),
    ),
    _event(
        "request_rejected", ("request", "int", "the request argument"), ("function", "id", "its function")
    ),
    _event("four_eyes_thresholds_set", ("org", "org", "the sender's organisation")),
    # --- evidence (section 14) ---
    _event(
        "evidence_recorded",
        ("validator", "hex32", "the equivocating validator's node key"),
        ("org", "org", "its organisation"),
        ("kind", _EVIDENCE_KIND, "the kind of the two messages"),
        ("view", "int", "their view (0 for checkpoints)"),
        ("height", "int", "their height"),
    ),
)
EVENTS: dict[str, EventSpec] = {spec.type: spec for spec in _SPECS}
