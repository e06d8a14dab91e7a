"""How the function tables declare a function (chaincode.carbon, chaincode.gov_table): roles, common checks.

`declare` builds a FunctionSpec whose failure codes are the checks every call makes (docs/CHAINCODE.md
section 2.1: role, admin key, freeze) that this function can fail, then the handler's own codes in check
order, then those of its four-eyes step when it has one.
"""

from __future__ import annotations

from typing import Any

from chaincode.base import Arg, EventSpec, FourEyesRule, FunctionSpec
from chaincode.context import TxContext
from chaincode.events import EVENTS
from chaincode.ledger import Code, fail, get_org, require_unrestricted
from core.genesis import Role

REG = (Role.REGULATOR.value,)
ENT = (Role.ENTERPRISE.value,)
VER = (Role.VERIFIER.value,)
BANK = (Role.SETTLEMENT_BANK.value,)
HOLDERS = (Role.ENTERPRISE.value, Role.OFFSET_DEVELOPER.value)
ROLE_NAMES = tuple(role.value for role in Role)
FOUR_EYES_CODES = (Code.LIMIT_EXCEEDED, Code.OVERFLOW)  # recording a request: the per-org limit, the counter


def events(*types: str) -> tuple[EventSpec, ...]:
    return tuple(EVENTS[event_type] for event_type in types)


def declare(
    name: str,
    roles: tuple[str, ...],
    args: tuple[Arg, ...],
    description: str,
    handler: Any,
    failures: tuple[str, ...],
    emits: tuple[EventSpec, ...],
    *,
    admin_only: bool = False,
    frozen_ok: bool = False,
    node_key_ok: bool = False,
    check_args: Any = None,
    four_eyes: FourEyesRule | None = None,
) -> FunctionSpec:
    """A function whose failures are the common checks it can fail, then the handler's codes in check order.

    `frozen` is reachable only for roles that can be frozen or blocked: never a regulator.
    """
    common = []
    if set(roles) != set(ROLE_NAMES):
        common.append(Code.FORBIDDEN)
    if admin_only:
        common.append(Code.NOT_ADMIN)
    if not frozen_ok and set(roles) != set(REG):
        common.append(Code.FROZEN)
    own = (*failures, *(FOUR_EYES_CODES if four_eyes is not None else ()))
    codes = tuple(dict.fromkeys((*common, *own)))
    if four_eyes is not None:
        emits = (*emits, EVENTS["request_created"])  # instead of its own, when it waits for a second key
    return FunctionSpec(
        name,
        roles,
        args,
        description,
        handler,
        codes,
        emits,
        admin_only,
        frozen_ok,
        node_key_ok,
        check_args,
        four_eyes,
    )


def check_caller(ctx: TxContext, spec: FunctionSpec) -> None:
    """The checks every call makes before the function's steps (docs/CHAINCODE.md 2.1, checks 9-11)."""
    if ctx.sender_role not in spec.roles:
        fail(Code.FORBIDDEN, f"role {ctx.sender_role!r} may not call {spec.name}")
    if spec.admin_only and not ctx.sender_is_admin:
        fail(Code.NOT_ADMIN, f"{spec.name} needs an admin key of {ctx.sender_org!r}")
    if not spec.frozen_ok:
        require_unrestricted(get_org(ctx, ctx.sender_org))
