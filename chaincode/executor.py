"""Execute a block's transactions against state: the platform checks, then the chaincode, per transaction.

`execute_block` is pure: it reads the committed state through a StateReader, never writes it, and returns
each transaction's result and write set plus the block's net writes, which the node commits atomically.
Signatures are NOT checked here: the caller (the node's applier, after consensus or certificate checks)
verifies every transaction's signature before execution, because verification dominates the cost and the
node caches it from mempool admission.

Per transaction, in order (the first failing check is the result code; the transaction changes nothing):
1. `wrong_chain`: body.chain_id differs from the block header's chain id.
2. `expired`: valid_until < block height.
3. `replay`: the id already appeared earlier in this block or is committed (`is_committed`).
4. `unknown_sender` / `revoked_key`: the key is not enrolled for sender_org, or was revoked (state as of
   the previous transaction of this block).
5. `unknown_function`: no chaincode or function of that name.
6. `restricted_key`: the key is a validator's node key (enrolled for its organisation at genesis or when
   the validator was added) and the function does not take node keys: a node key signs only evidence.
7. `invalid_args`: the chaincode's stateless argument checks failed.
8. The chaincode's own failure code (ChaincodeFailure), or "ok" with the emitted events.
An exception of any other kind from a chaincode is a bug: it is re-raised as InvariantBroken, loudly.

After the last transaction every chaincode's `end_block` runs once against the block's state (also in a
block without transactions): what it writes (the expiry of proposals and four-eyes requests whose last
height this is) belongs to the block, not to a transaction, and is returned as `end_writes`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from chaincode.base import Chaincode, ChaincodeFailure, InvalidArgs, UnknownFunction
from chaincode.context import OverlayState, ReadCache, TxContext, decode_record
from chaincode.schema import key_key, org_key
from core.block import RESULT_OK, Block, TxResult
from core.errors import CarbonchainError, GenesisError, InvariantBroken
from core.genesis import Genesis
from core.state import StateReader

CODE_WRONG_CHAIN = "wrong_chain"
CODE_EXPIRED = "expired"
CODE_REPLAY = "replay"
CODE_UNKNOWN_SENDER = "unknown_sender"
CODE_REVOKED_KEY = "revoked_key"
CODE_UNKNOWN_FUNCTION = "unknown_function"
CODE_RESTRICTED_KEY = "restricted_key"
CODE_INVALID_ARGS = "invalid_args"
EXECUTOR_CODES = (
    CODE_WRONG_CHAIN,
    CODE_EXPIRED,
    CODE_REPLAY,
    CODE_UNKNOWN_SENDER,
    CODE_REVOKED_KEY,
    CODE_UNKNOWN_FUNCTION,
    CODE_RESTRICTED_KEY,
    CODE_INVALID_ARGS,
)  # the results of the checks made before a function runs (docs/CHAINCODE.md 2.1)
MESSAGE_MAX = 300  # result messages are truncated to this many characters (stored, not hashed)


class ChaincodeRegistry:
    """The chaincodes a node hosts, by name. Identity state is shared platform state (chaincode.identity)."""

    def __init__(self, chaincodes: Iterable[Chaincode]) -> None:
        self._chaincodes: dict[str, Chaincode] = {}
        for chaincode in chaincodes:
            if chaincode.name in self._chaincodes:
                raise InvariantBroken(f"chaincode {chaincode.name!r} registered twice")
            self._chaincodes[chaincode.name] = chaincode

    def get(self, name: str) -> Chaincode | None:
        return self._chaincodes.get(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._chaincodes))

    def end_block(self, state: OverlayState, height: int, time_ms: int) -> None:
        """Every hosted chaincode's end-of-block step, in name order, writing into `state`."""
        for name in self.names:
            self._chaincodes[name].end_block(state, height, time_ms)

    def genesis_writes(self, genesis: Genesis) -> dict[bytes, bytes | None]:
        """Initial state of every hosted chaincode; two chaincodes writing one key is a bug.

        Parameters for a chaincode this node does not host are refused (GenesisError): a misspelt name
        would otherwise silently run the chain on defaults.
        """
        unknown = sorted(set(genesis.chaincode) - set(self._chaincodes))
        if unknown:
            raise GenesisError(f"genesis chaincode section names unknown chaincodes {unknown}")
        writes: dict[bytes, bytes | None] = {}
        for name in self.names:
            for key, value in self._chaincodes[name].genesis_writes(genesis).items():
                if key in writes and writes[key] != value:
                    raise InvariantBroken(f"chaincodes disagree on genesis key {key!r}")
                writes[key] = value
        return writes


@dataclass(frozen=True, slots=True)
class BlockExecution:
    results: tuple[TxResult, ...]  # one per transaction, in block order
    tx_writes: tuple[dict[bytes, bytes | None], ...]  # what each transaction changed ({} when it failed)
    end_writes: dict[bytes, bytes | None]  # what the end-of-block step changed, after every transaction
    writes: dict[bytes, bytes | None]  # the block's net changes (later transactions win, then end_writes)


def get_key_status(state: StateReader, org_id: str, public_key: bytes) -> str:
    """'active', 'revoked' or 'unknown' for a key of an organisation (the mempool's admission check)."""
    raw = state.get(key_key(org_id, public_key))
    if raw is None:
        return "unknown"
    status = decode_record(raw).get("status")
    return "active" if status == "active" else "revoked"


def execute_block(
    base: StateReader,
    block: Block,
    registry: ChaincodeRegistry,
    *,
    is_committed: Callable[[bytes], bool],
) -> BlockExecution:
    """Apply every transaction of a block (signatures already verified by the caller); see module doc."""
    header = block.header
    block_state = OverlayState(ReadCache(base), parent_fixed=True)  # `base` is unchanged until the commit
    results: list[TxResult] = []
    tx_writes: list[dict[bytes, bytes | None]] = []
    seen: set[bytes] = set()  # membership only: never iterated, so hash order cannot matter
    for tx in block.txs:
        result, writes = _execute_tx(
            block_state, tx, header.chain_id, header.height, header.time_ms, registry, seen, is_committed
        )
        results.append(result)
        tx_writes.append(writes)
        if writes:
            block_state.update(writes)
    end_state = OverlayState(block_state)
    try:
        registry.end_block(end_state, header.height, header.time_ms)
    except InvariantBroken:
        raise
    except (Exception, CarbonchainError) as exc:
        raise InvariantBroken(f"end of block {header.height} raised {type(exc).__name__}: {exc}") from exc
    block_state.update(end_state.writes)
    return BlockExecution(tuple(results), tuple(tx_writes), end_state.writes, dict(block_state.writes))


def _execute_tx(
    block_state: OverlayState,
    tx: Any,
    chain_id: str,
    height: int,
    time_ms: int,
    registry: ChaincodeRegistry,
    seen: set[bytes],
    is_committed: Callable[[bytes], bool],
) -> tuple[TxResult, dict[bytes, bytes | None]]:
    body = tx.body
    if body.chain_id != chain_id:
        return _failed(CODE_WRONG_CHAIN, f"signed for chain {body.chain_id!r}")
    if body.valid_until < height:
        return _failed(CODE_EXPIRED, f"valid_until {body.valid_until} is below height {height}")
    if tx.tx_id in seen or is_committed(tx.tx_id):
        return _failed(CODE_REPLAY, f"transaction {tx.tx_id.hex()} is already included")
    seen.add(tx.tx_id)
    key_raw = block_state.get(key_key(body.sender_org, body.sender_key))
    org_raw = block_state.get(org_key(body.sender_org))
    if key_raw is None or org_raw is None:
        return _failed(CODE_UNKNOWN_SENDER, f"key is not enrolled for organisation {body.sender_org!r}")
    key_record = decode_record(key_raw)
    if key_record.get("status") != "active":
        return _failed(CODE_REVOKED_KEY, f"key was revoked for organisation {body.sender_org!r}")
    chaincode = registry.get(body.chaincode)
    if chaincode is None:
        return _failed(CODE_UNKNOWN_FUNCTION, f"no chaincode named {body.chaincode!r}")
    if not chaincode.has_function(body.function):
        return _failed(
            CODE_UNKNOWN_FUNCTION, f"chaincode {body.chaincode!r} has no function {body.function!r}"
        )
    is_node_key = bool(key_record.get("node"))
    if is_node_key and not chaincode.accepts_node_key(body.function):
        return _failed(CODE_RESTRICTED_KEY, f"a validator's node key may not call {body.function}")
    try:
        args = chaincode.validate_args(body.function, body.args)
    except UnknownFunction as exc:
        return _failed(CODE_UNKNOWN_FUNCTION, str(exc))
    except InvalidArgs as exc:
        return _failed(CODE_INVALID_ARGS, str(exc))
    org_record = decode_record(org_raw)
    tx_state = OverlayState(block_state)
    ctx = TxContext(
        tx_state,
        sender_org=body.sender_org,
        sender_role=org_record["role"],
        sender_key=body.sender_key,
        sender_is_admin=bool(key_record.get("admin")),
        height=height,
        block_time_ms=time_ms,
        tx_id=tx.tx_id,
        chain_id=chain_id,
    )
    try:
        chaincode.apply(ctx, body.function, args)
    except ChaincodeFailure as failure:
        return _failed(failure.code, failure.message)
    except InvariantBroken:
        raise
    except (Exception, CarbonchainError) as exc:
        raise InvariantBroken(
            f"chaincode {body.chaincode}.{body.function} raised {type(exc).__name__}: {exc} "
            f"(tx {tx.tx_id.hex()})"
        ) from exc
    return TxResult(RESULT_OK, "", tuple(ctx.events)), tx_state.writes


def _failed(code: str, message: str) -> tuple[TxResult, dict[bytes, bytes | None]]:
    return TxResult(code, message[:MESSAGE_MAX]), {}
