"""The pieces of the conformance script: a call (who signs what, and the result it must get) and a block."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Call:
    org: str  # sender organisation
    function: str
    args: dict[str, Any]
    expect: str = "ok"  # the result code this call must get
    key: str = (
        "admin"  # "admin", "client-<j>" (org's keys) or "node-<i>" (validator i's node key): the signer
    )
    chaincode: str = "carbon"


@dataclass
class ScriptBlock:
    offset_ms: int  # block time minus genesis time
    calls: list[Call] = field(default_factory=list)

    def add(
        self, sender: str, function: str, expect: str = "ok", /, *, key: str = "admin", **args: Any
    ) -> None:
        self.calls.append(Call(sender, function, args, expect, key))
