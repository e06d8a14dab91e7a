"""What a governance proposal can decide: the actions, each under a policy, with its arguments and checks.

An action is declared once (ACTIONS): its policy, its arguments (checked statelessly when it is proposed:
`invalid_args`), its stateful checks (run when it is proposed, failing the proposal with the action's code,
and again when it executes, where a failure ends the proposal `failed`), and the change it makes. The steps
are in docs/CHAINCODE.md section 12.3; the table of actions there is generated from this one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chaincode import schema, schema_gov, validators
from chaincode.base import Arg, EventSpec, InvalidArgs
from chaincode.context import TxContext
from chaincode.events import EVENTS
from chaincode.identity import make_key_record, make_org_record
from chaincode.ledger import Code, fail, get_params
from chaincode.params import PARAMETERS, validate_parameter_value
from chaincode.policy import compute_needed, get_electorate, get_policy, policy_terms
from core.genesis import ELECTORATES, POLICY_FIELDS, POLICY_NAMES, Role

ROLE_NAMES = tuple(role.value for role in Role)
# reference_price_fen only seeds the market at genesis; set_reference_price moves the market afterwards
GOVERNED_PARAMETERS = tuple(p.name for p in PARAMETERS if p.name != "reference_price_fen")


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    policy: str  # the policy it is decided under (set_policy: also the policy it changes, old and new)
    args: tuple[Arg, ...]
    description: str
    check: Callable[[TxContext, dict[str, Any]], None] = field(repr=False)  # stateful checks
    apply: Callable[[TxContext, dict[str, Any], int], None] = field(repr=False)  # (ctx, args, proposal)
    failures: tuple[str, ...] = ()  # what `check` can fail with, in check order
    events: tuple[EventSpec, ...] = ()
    check_args: Callable[[dict[str, Any]], None] | None = field(default=None, repr=False)


# --- membership ---------------------------------------------------------------------------------------------

_REGISTRATION = ("name", "role", "admin_keys")


def _check_admit_args(args: dict[str, Any]) -> None:
    given = [name for name in _REGISTRATION if args[name] is not None]
    if given and len(given) != len(_REGISTRATION):
        raise InvalidArgs("admit_member", ",".join(_REGISTRATION), "are given together or not at all")


def check_admit_member(ctx: TxContext, args: dict[str, Any]) -> None:
    org = args["org"]
    registering = args["name"] is not None
    if ctx.get(schema.org_key(org)) is not None:
        if registering:
            fail(Code.ORG_EXISTS, f"{org!r} is registered already: admit it without name, role and keys")
    elif not registering:
        fail(Code.UNKNOWN_ORG, f"{org!r} is not registered: give its name, role and admin keys")
    elif len(set(args["admin_keys"])) != len(args["admin_keys"]):
        fail(Code.KEY_EXISTS, "admin_keys repeats a key")
    if ctx.get(schema_gov.member_key(org)) is not None:
        fail(Code.ALREADY_MEMBER, f"{org!r} is a member already")


def apply_admit_member(ctx: TxContext, args: dict[str, Any], proposal: int) -> None:
    check_admit_member(ctx, args)
    org = args["org"]
    if args["name"] is not None:
        ctx.put_record(schema.org_key(org), make_org_record(org, args["name"], args["role"], ctx.height))
        for key_hex in args["admin_keys"]:
            key = bytes.fromhex(key_hex)
            ctx.put_record(schema.key_key(org, key), make_key_record(org, key, admin=True, height=ctx.height))
        ctx.emit("organisation_registered", org=org, role=args["role"])
    ctx.put_record(
        schema_gov.member_key(org), {"org": org, "admitted_height": ctx.height, "proposal": proposal}
    )
    ctx.emit("member_admitted", org=org, proposal=proposal)


def check_remove_member(ctx: TxContext, args: dict[str, Any]) -> None:
    org = args["org"]
    if ctx.get(schema_gov.member_key(org)) is None:
        fail(Code.NOT_MEMBER, f"{org!r} is not a member")
    if len(get_electorate(ctx, "members")) <= 1:
        fail(Code.LAST_MEMBER, "the consortium keeps at least one member")
    operated = [v["org"] for v in validators.get_validator_set(ctx)["validators"]]
    pending = ctx.get_record(schema_gov.VALSET_PENDING)
    if pending is not None:
        operated += [v["org"] for v in pending["validators"]]
    if org in operated:
        fail(Code.RUNS_VALIDATOR, f"{org!r} operates a validator: remove the validator first")


def apply_remove_member(ctx: TxContext, args: dict[str, Any], proposal: int) -> None:
    check_remove_member(ctx, args)
    ctx.delete(schema_gov.member_key(args["org"]))
    ctx.emit("member_removed", org=args["org"], proposal=proposal)


# --- parameters and policies ----------------------------------------------------------------------------------


def _check_parameter_args(args: dict[str, Any]) -> None:
    problem = validate_parameter_value(args["name"], args["value"])
    if problem:
        raise InvalidArgs("set_parameter", "value", problem.split(" ", 1)[1])


def check_set_parameter(ctx: TxContext, args: dict[str, Any]) -> None:
    if get_params(ctx)[args["name"]] == args["value"]:
        fail(Code.NO_CHANGE, f"{args['name']} is {args['value']!r} already")


def apply_set_parameter(ctx: TxContext, args: dict[str, Any], proposal: int) -> None:
    check_set_parameter(ctx, args)
    params = get_params(ctx)
    params[args["name"]] = args["value"]
    ctx.put_record(schema.PARAMS, params)
    ctx.emit("parameter_changed", name=args["name"], value=args["value"], proposal=proposal)


def _check_policy_args(args: dict[str, Any]) -> None:
    if args["threshold_num"] > args["threshold_den"]:
        raise InvalidArgs("set_policy", "threshold_num", "must not exceed threshold_den")


def new_policy_terms(args: dict[str, Any]) -> dict[str, Any]:
    return {name: args[name] for name in POLICY_FIELDS}


def check_set_policy(ctx: TxContext, args: dict[str, Any]) -> None:
    terms = new_policy_terms(args)
    if policy_terms(get_policy(ctx, args["policy"])) == terms:
        fail(Code.NO_CHANGE, f"policy {args['policy']!r} has these terms already")
    size = len(get_electorate(ctx, terms["approvers"]))
    if compute_needed(size, terms) > size:
        fail(Code.POLICY_UNREACHABLE, f"the new policy needs more approvals than its {size} approvers")


def apply_set_policy(ctx: TxContext, args: dict[str, Any], proposal: int) -> None:
    check_set_policy(ctx, args)
    record = {
        "name": args["policy"],
        **new_policy_terms(args),
        "changed_height": ctx.height,
        "proposal": proposal,
    }
    ctx.put_record(schema_gov.policy_key(args["policy"]), record)
    ctx.emit("policy_changed", policy=args["policy"], proposal=proposal)


# --- the table -------------------------------------------------------------------------------------------------

_org = Arg("org", "org", "the organisation")
_node_key = Arg("node_key", "hex32", "the validator's node key (hex)")
_proof = Arg("proof", "hex64", "the new node key's signature of its proof of possession (section 12.4)")
_peer = Arg("peer_address", "address", "host:port for the peer layer")
_api = Arg("api_address", "address", "host:port of the client API")
_ELECTORATE = "members, validators or a role"


def _events(*names: str) -> tuple[EventSpec, ...]:
    return tuple(EVENTS[name] for name in names)


_VALIDATOR_CHANGE = _events("validator_change_approved")
_LIST = (
    Action(
        "admit_member",
        "membership",
        (
            _org,
            Arg("name", "str", "legal name, to register a new organisation", required=False),
            Arg("role", "enum", "its role, to register it", required=False, choices=ROLE_NAMES),
            Arg("admin_keys", "hex32_list", "its admin keys, to register it", required=False, max_len=16),
        ),
        "Admit an organisation as a member (registering it first when name, role and keys are given).",
        check_admit_member,
        apply_admit_member,
        (Code.ORG_EXISTS, Code.UNKNOWN_ORG, Code.KEY_EXISTS, Code.ALREADY_MEMBER),
        _events("organisation_registered", "member_admitted"),
        _check_admit_args,
    ),
    Action(
        "remove_member",
        "membership",
        (_org,),
        "Remove a member (the organisation stays registered).",
        check_remove_member,
        apply_remove_member,
        (Code.NOT_MEMBER, Code.LAST_MEMBER, Code.RUNS_VALIDATOR),
        _events("member_removed"),
    ),
    Action(
        "set_parameter",
        "parameters",
        (
            Arg("name", "enum", "the carbon parameter (section 5)", choices=GOVERNED_PARAMETERS),
            Arg("value", "value", "its new value, within the parameter's bounds"),
        ),
        "Change one carbon parameter.",
        check_set_parameter,
        apply_set_parameter,
        (Code.NO_CHANGE,),
        _events("parameter_changed"),
        _check_parameter_args,
    ),
    Action(
        "set_policy",
        "policies",
        (
            Arg("policy", "enum", "the policy to change", choices=POLICY_NAMES),
            Arg("proposers", "enum", "who may propose: " + _ELECTORATE, choices=ELECTORATES),
            Arg("approvers", "enum", "whose approvals count: " + _ELECTORATE, choices=ELECTORATES),
            Arg("threshold_num", "int", "share of the approvers: numerator", maximum=1000),
            Arg("threshold_den", "int", "denominator", minimum=1, maximum=1000),
            Arg("threshold_min", "int", "and at least this many organisations", minimum=1, maximum=10_000),
        ),
        "Change a policy; it needs the `policies` policy, the policy's current terms and its new ones.",
        check_set_policy,
        apply_set_policy,
        (Code.NO_CHANGE, Code.POLICY_UNREACHABLE),
        _events("policy_changed"),
        _check_policy_args,
    ),
    Action(
        "add_validator",
        "validators",
        (Arg("org", "org", "the member organisation that will operate it"), _node_key, _peer, _api, _proof),
        "Add a validator with the next unused number (in force after its activation height, section 12.4).",
        validators.check_add_validator,
        validators.apply_add_validator,
        (
            Code.CHANGE_PENDING,
            Code.UNKNOWN_ORG,
            Code.NOT_MEMBER,
            Code.NODE_KEY_USED,
            Code.TOO_MANY_VALIDATORS,
            Code.ADDRESS_IN_USE,
            Code.BAD_PROOF,
        ),
        _VALIDATOR_CHANGE,
    ),
    Action(
        "remove_validator",
        "validators",
        (_node_key,),
        "Remove a validator (in force after its activation height; its number is never used again).",
        validators.check_remove_validator,
        validators.apply_remove_validator,
        (Code.CHANGE_PENDING, Code.UNKNOWN_VALIDATOR, Code.TOO_FEW_VALIDATORS),
        _VALIDATOR_CHANGE,
    ),
    Action(
        "rotate_validator_key",
        "validators",
        (_node_key, Arg("new_node_key", "hex32", "its new node key (hex)"), _proof),
        "Replace one validator's node key (its number and addresses stay).",
        validators.check_rotate_validator_key,
        validators.apply_rotate_validator_key,
        (Code.CHANGE_PENDING, Code.UNKNOWN_VALIDATOR, Code.NODE_KEY_USED, Code.BAD_PROOF),
        _VALIDATOR_CHANGE,
    ),
    Action(
        "move_validator",
        "validators",
        (_node_key, _peer, _api),
        "Change one validator's peer and API addresses (its number and key stay).",
        validators.check_move_validator,
        validators.apply_move_validator,
        (Code.CHANGE_PENDING, Code.UNKNOWN_VALIDATOR, Code.NO_CHANGE, Code.ADDRESS_IN_USE),
        _VALIDATOR_CHANGE,
    ),
)
ACTIONS: dict[str, Action] = {action.name: action for action in _LIST}
assert tuple(ACTIONS) == schema_gov.ACTIONS, "the proposal record's action enum lists every action"
