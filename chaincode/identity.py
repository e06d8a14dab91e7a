"""Identity and access: organisations, their client keys, verifier accreditation, account freezes.

This is platform state that the executor reads to authenticate senders (`key/<org>/<hex>`) and that every
chaincode may consult (`org/<id>`). The functions are hosted by the carbon chaincode (the first and only
chaincode today); another chaincode would reuse this module.

Rules: the regulator registers organisations; an organisation's admin keys enrol and revoke its own keys;
a regulator admin may revoke anyone's key; revocation is final (a revoked key is never re-enrolled) and the
last active admin key of an organisation cannot be revoked (that would orphan it). Verifier organisations
named in genesis start accredited; the regulator accredits and revokes verifiers.
"""

from __future__ import annotations

from typing import Any

from chaincode import schema
from chaincode.context import TxContext
from chaincode.ledger import Code, fail, get_org, get_params, require_org_role
from core.genesis import Genesis, Role


def make_org_record(org_id: str, name: str, role: str, height: int) -> dict[str, Any]:
    return {
        "id": org_id,
        "name": name,
        "role": role,
        "frozen": False,  # set by the regulator (freeze_account)
        "blocked": False,  # set by a settlement with no verified emissions
        "accredited": role == Role.VERIFIER.value,
        "open_orders": 0,
        "registered_height": height,
    }


def make_key_record(
    org_id: str, public_key: bytes, *, admin: bool, height: int, node: bool = False
) -> dict[str, Any]:
    return {
        "org": org_id,
        "public_key": public_key.hex(),
        "admin": admin,
        "node": node,  # a validator's node key: it signs only evidence (chaincode.executor)
        "status": "active",
        "enrolled_height": height,
        "revoked_height": None,
    }


def compute_identity_genesis(genesis: Genesis) -> dict[str, dict[str, Any]]:
    """Records (key -> map) for every genesis organisation, its admin keys, and its validators' node keys
    (enrolled as node keys: a validator signs its evidence transactions with the key it votes with)."""
    records: dict[str, dict[str, Any]] = {}
    for org in genesis.organisations:
        records[schema.org_key(org.id).decode()] = make_org_record(org.id, org.name, org.role.value, 0)
        for key_hex in org.admin_keys:
            public_key = bytes.fromhex(key_hex)
            record = make_key_record(org.id, public_key, admin=True, height=0)
            records[schema.key_key(org.id, public_key).decode()] = record
    for validator in genesis.validators:
        record = make_key_record(validator.org, validator.node_key_bytes, admin=False, height=0, node=True)
        records[schema.key_key(validator.org, validator.node_key_bytes).decode()] = record
    return records


def _count_keys(ctx: TxContext, org: str) -> tuple[int, int]:
    """(keys of any status it enrolled itself, active admin keys) of an organisation; its validators' node
    keys are not counted: governance enrols them, and the validator set bounds them."""
    total = admins = 0
    for _, record in ctx.iterate_records(schema.key_prefix(org)):
        total += 0 if record["node"] else 1
        if record["admin"] and record["status"] == "active":
            admins += 1
    return total, admins


def apply_register_organisation(ctx: TxContext, args: dict[str, Any]) -> None:
    org_id = args["org"]
    if ctx.get(schema.org_key(org_id)) is not None:
        fail(Code.ORG_EXISTS, f"organisation {org_id!r} is already registered")
    keys = args["admin_keys"]
    if len(set(keys)) != len(keys):
        fail(Code.KEY_EXISTS, "admin_keys repeats a key")
    ctx.put_record(schema.org_key(org_id), make_org_record(org_id, args["name"], args["role"], ctx.height))
    for key_hex in keys:
        public_key = bytes.fromhex(key_hex)
        record = make_key_record(org_id, public_key, admin=True, height=ctx.height)
        ctx.put_record(schema.key_key(org_id, public_key), record)
    ctx.emit("organisation_registered", org=org_id, role=args["role"])


def apply_enrol_key(ctx: TxContext, args: dict[str, Any]) -> None:
    org_id = ctx.sender_org
    public_key = bytes.fromhex(args["public_key"])
    existing = ctx.get_record(schema.key_key(org_id, public_key))
    if existing is not None:
        if existing["status"] != "active":
            fail(Code.KEY_REVOKED, "this key was revoked; revocation is final, enrol a new key")
        fail(Code.KEY_EXISTS, "this key is already enrolled")
    total, _ = _count_keys(ctx, org_id)
    keys_max = get_params(ctx)["keys_per_org_max"]
    if total >= keys_max:
        fail(Code.LIMIT_EXCEEDED, f"an organisation holds at most {keys_max} keys (including revoked)")
    record = make_key_record(org_id, public_key, admin=args["admin"], height=ctx.height)
    ctx.put_record(schema.key_key(org_id, public_key), record)
    ctx.emit("key_enrolled", org=org_id, public_key=args["public_key"], admin=args["admin"])


def apply_revoke_key(ctx: TxContext, args: dict[str, Any]) -> None:
    org_id = args["org"]
    if org_id != ctx.sender_org and ctx.sender_role != Role.REGULATOR.value:
        fail(Code.FORBIDDEN, "only the organisation's admins or the regulator may revoke its keys")
    get_org(ctx, org_id)
    public_key = bytes.fromhex(args["public_key"])
    key = schema.key_key(org_id, public_key)
    record = ctx.get_record(key)
    if record is None:
        fail(Code.UNKNOWN_KEY, f"key is not enrolled for {org_id!r}")
    if record["status"] != "active":
        fail(Code.KEY_REVOKED, "key is already revoked")
    if record["admin"]:
        _, admins = _count_keys(ctx, org_id)
        if admins <= 1:
            fail(Code.LAST_ADMIN, f"cannot revoke the last active admin key of {org_id!r}")
    record["status"] = "revoked"
    record["revoked_height"] = ctx.height
    ctx.put_record(key, record)
    ctx.emit("key_revoked", org=org_id, public_key=args["public_key"], by=ctx.sender_org)


def apply_accredit_verifier(ctx: TxContext, args: dict[str, Any]) -> None:
    _set_accreditation(ctx, args["org"], True)


def apply_revoke_verifier(ctx: TxContext, args: dict[str, Any]) -> None:
    _set_accreditation(ctx, args["org"], False)


def _set_accreditation(ctx: TxContext, org_id: str, accredited: bool) -> None:
    record = require_org_role(ctx, org_id, (Role.VERIFIER.value,))
    record["accredited"] = accredited
    ctx.put_record(schema.org_key(org_id), record)
    ctx.emit("verifier_accredited" if accredited else "verifier_revoked", org=org_id)


def apply_freeze_account(ctx: TxContext, args: dict[str, Any]) -> None:
    org_id = args["org"]
    record = get_org(ctx, org_id)
    if record["role"] == Role.REGULATOR.value:
        fail(Code.WRONG_ROLE, "a regulator account cannot be frozen")
    record["frozen"] = True
    ctx.put_record(schema.org_key(org_id), record)
    ctx.emit("account_frozen", org=org_id, reason=args["reason"])


def apply_unfreeze_account(ctx: TxContext, args: dict[str, Any]) -> None:
    """Clears both a freeze and a settlement block (the regulator has resolved the case)."""
    org_id = args["org"]
    record = get_org(ctx, org_id)
    record["frozen"] = False
    record["blocked"] = False
    ctx.put_record(schema.org_key(org_id), record)
    ctx.emit("account_unfrozen", org=org_id, reason=args["reason"])
