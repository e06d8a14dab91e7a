"""A tiny in-memory chain for chaincode tests: a devnet genesis, DictState, blocks built and executed.

`Chain.call` signs a real transaction (or, with sign=False, builds an unsigned one for speed: the executor
never checks signatures), puts it in a block of its own and executes it through `execute_block`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from chaincode import build_registry, execute_block, genesis_writes, run_query
from chaincode.carbon import check_result
from chaincode.schema import check_state_entry
from core import codec
from core.block import EMPTY_ROOT, Block, BlockHeader, TxResult
from core.devkeys import dev_admin_key, dev_client_key, dev_node_key
from core.genesis import Genesis, parse_genesis
from core.keys import SigningKey
from core.state import DictState
from core.tx import SignedTx, TxBody, compute_tx_id, sign_transaction

CHAIN_ID = "carbon-devnet"
GENESIS_TIME = "2026-01-01T00:00:00Z"
DAY_MS = 86_400_000

ORGS: tuple[tuple[str, str], ...] = (
    ("mee", "regulator"),
    ("bank", "settlement_bank"),
    ("ent1", "enterprise"),
    ("ent2", "enterprise"),
    ("ent3", "enterprise"),
    ("ver1", "verifier"),
    ("ver2", "verifier"),
    ("dev1", "offset_developer"),
    ("aud", "auditor"),
)


# The tests of single functions freeze accounts with one regulator key; test_four_eyes.py (and the
# conformance vectors) cover freezes under the default, where they wait for a second regulator key.
BASE_PARAMS: dict[str, Any] = {"four_eyes_freezes": "off"}


def make_genesis(
    params: dict[str, Any] | None = None,
    *,
    governance: dict[str, Any] | None = None,
    validator_orgs: tuple[str, ...] = ("mee",),
) -> Genesis:
    return parse_genesis(
        {
            "chain_id": CHAIN_ID,
            "genesis_time": GENESIS_TIME,
            "validators": [
                {
                    "org": org,
                    "node_key": dev_node_key("validator", index).public_key.hex(),
                    "peer_address": f"127.0.0.1:{7000 + index}",
                    "api_address": f"127.0.0.1:{8000 + index}",
                }
                for index, org in enumerate(validator_orgs)
            ],
            "governance": governance or {},
            "organisations": [
                {
                    "id": org,
                    "name": org.upper(),
                    "role": role,
                    "admin_keys": [dev_admin_key(org).public_key.hex()],
                }
                for org, role in ORGS
            ],
            "chaincode": {"carbon": {**BASE_PARAMS, **(params or {})}},
        }
    )


def make_unsigned_tx(body: TxBody) -> SignedTx:
    body_bytes = codec.encode(body.to_wire())
    tx_id = compute_tx_id(body_bytes)
    signature = bytes(64)
    return SignedTx(
        body, body_bytes, signature, tx_id, codec.encode({"body": body_bytes, "signature": signature})
    )


class Chain:
    def __init__(
        self,
        params: dict[str, Any] | None = None,
        *,
        sign: bool = True,
        governance: dict[str, Any] | None = None,
        validator_orgs: tuple[str, ...] = ("mee",),
    ) -> None:
        self.genesis = make_genesis(params, governance=governance, validator_orgs=validator_orgs)
        self.registry = build_registry()
        self.state = DictState({k: v for k, v in genesis_writes(self.genesis).items() if v is not None})
        for key, value in self.state.items().items():
            check_state_entry(key, value)
        self.height = 0
        self.time_ms = self.genesis.genesis_time_ms
        self.nonce = 0
        self.sign = sign
        self.committed: set[bytes] = set()
        self.keys: dict[str, SigningKey] = {org: dev_admin_key(org) for org, _ in ORGS}

    def make_tx(
        self,
        org: str,
        function: str,
        args: dict[str, Any],
        *,
        key: SigningKey | None = None,
        valid_for: int = 100,
    ) -> SignedTx:
        self.nonce += 1
        signer = key or self.keys.get(org) or dev_admin_key(org)
        body = TxBody(
            chain_id=CHAIN_ID,
            chaincode="carbon",
            function=function,
            args={k: v for k, v in args.items() if v is not None},
            sender_org=org,
            sender_key=signer.public_key,
            nonce=self.nonce,
            valid_until=self.height + valid_for,
        )
        return sign_transaction(body, signer) if self.sign else make_unsigned_tx(body)

    def run_block(self, txs: list[SignedTx], *, advance_ms: int = 1000) -> list[TxResult]:
        self.height += 1
        self.time_ms += advance_ms
        header = BlockHeader(
            chain_id=CHAIN_ID,
            height=self.height,
            prev_hash=hashlib.sha256(b"%d" % self.height).digest(),
            time_ms=self.time_ms,
            proposer=0,
            tx_count=len(txs),
            tx_root=EMPTY_ROOT,
            state_height=0,
            state_root=EMPTY_ROOT,
            results_root=EMPTY_ROOT,
            validators_hash=EMPTY_ROOT,
            next_validators_hash=EMPTY_ROOT,
        )
        execution = execute_block(
            self.state, Block(header, tuple(txs)), self.registry, is_committed=self.committed.__contains__
        )
        # Everything the chaincode does must be what its declarations (and so docs/CHAINCODE.md) say.
        for tx, result in zip(txs, execution.results, strict=True):
            check_result(tx.body.function, result)
        for key, value in execution.writes.items():
            if value is not None:
                check_state_entry(key, value)
        self.state.apply(execution.writes)
        self.committed.update(tx.tx_id for tx in txs)
        return list(execution.results)

    def call(self, org: str, function: str, /, *, key: SigningKey | None = None, **args: Any) -> TxResult:
        return self.run_block([self.make_tx(org, function, args, key=key)])[0]

    def ok(self, org: str, function: str, /, **args: Any) -> TxResult:
        result = self.call(org, function, **args)
        assert result.code == "ok", f"{function} by {org} failed: {result.code}: {result.message}"
        return result

    def fails(self, code: str, org: str, function: str, /, **args: Any) -> TxResult:
        before = self.state.items()
        result = self.call(org, function, **args)
        assert result.code == code, (
            f"{function} by {org}: expected {code}, got {result.code}: {result.message}"
        )
        assert self.state.items() == before, "a failed transaction changed state"
        return result

    def query(self, name: str, **params: Any) -> Any:
        return run_query(self.state, name, params)

    def advance_to(self, time_ms: int) -> None:
        """Run an empty block whose time is `time_ms`."""
        self.run_block([], advance_ms=time_ms - self.time_ms)

    # --- shortcuts ---

    def allowances(self, org: str) -> int:
        return int(self.query("holdings", org=org)["allowances_t"]["available"])

    def cash(self, org: str) -> int:
        return int(self.query("holdings", org=org)["cash_fen"]["available"])

    def open_period(
        self,
        period: str = "2025",
        *,
        report_in_ms: int = 10 * DAY_MS,
        surrender_in_ms: int = 20 * DAY_MS,
        **extra: Any,
    ) -> None:
        self.ok(
            "mee",
            "open_period",
            period=period,
            reporting_deadline_ms=self.time_ms + report_in_ms,
            surrender_deadline_ms=self.time_ms + surrender_in_ms,
            **extra,
        )

    def client_key(self, org: str, index: int = 0) -> SigningKey:
        return dev_client_key(org, index)


EVIDENCE = "ab" * 32
