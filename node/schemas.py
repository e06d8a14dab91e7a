"""The API's request and response models (pydantic): the handlers validate query parameters and shape every
JSON answer through them, and node/openapi.py generates /v1/openapi.json from the very same classes.

Request models forbid unknown parameters (a misspelt `limt` is a 400, not silently ignored). Response
models describe exactly what the node sends; `shape()` validates an answer before it leaves, so a field the
document does not describe is a bug that tests catch (a 500), never a silent drift.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError

from core.errors import InvalidInput

HEX32 = r"^[0-9a-f]{64}$"
Hex32 = Annotated[str, Field(pattern=HEX32, description="32 bytes, lowercase hex")]
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{128}$", description="64 bytes, lowercase hex")]
Height = Annotated[int, Field(ge=0, le=2**63 - 1)]
EVENT_FILTER_IDS_MAX = 100  # ids in one /v1/events filter: keeps the request line under 8 KiB
PAGE_LIMIT_MAX = 1000
_QueryT = TypeVar("_QueryT", bound="_Query")


class _Query(BaseModel):
    """Query-string parameters: strings converted to the declared types, unknown names refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def parse_query(model: type[_QueryT], request: web.Request) -> _QueryT:
    """The request's query string as `model`; InvalidInput (400) naming the parameter and the problem."""
    query = request.query
    repeated = sorted({name for name in query if len(query.getall(name)) > 1})
    if repeated:
        raise InvalidInput(f"parameter {repeated[0]!r} is given more than once")
    try:
        return model.model_validate(dict(query))
    except ValidationError as exc:
        raise InvalidInput(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError, *, unknown: str = "unknown parameter") -> str:
    """One line: `where: what` for each problem pydantic found (also used for member files)."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"]) or "(document)"
        message = unknown if error["type"] == "extra_forbidden" else error["msg"]
        problems.append(f"{where}: {message}")
    return "; ".join(problems)


def shape(model: type[BaseModel], document: Any) -> dict[str, Any]:
    """A response document checked against its model, as JSON (fields the backend left out stay out)."""
    shaped: dict[str, Any] = model.model_validate(document).model_dump(mode="json", exclude_unset=True)
    return shaped


# --- requests --------------------------------------------------------------------------------------------


class BlockQuery(_Query):
    format: Literal["json", "msgpack"] = Field(
        "json", description="msgpack: the canonical certified-block bytes auditors verify"
    )


class HistoryQuery(_Query):
    limit: int = Field(100, ge=1, le=PAGE_LIMIT_MAX, description="versions per page")
    start_after: int | None = Field(
        None, ge=0, le=2**63 - 1, description="the next_start_after of the previous page (a height)"
    )


class EventsQuery(_Query):
    org: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$",
        description="only transactions sent by or concerning this organisation (block events still come)",
    )
    tx: str | None = Field(
        None,
        pattern=rf"^[0-9a-f]{{64}}(,[0-9a-f]{{64}}){{0,{EVENT_FILTER_IDS_MAX - 1}}}$",
        description=f"only these transactions: comma-separated ids, at most {EVENT_FILTER_IDS_MAX}",
    )
    blocks: bool = Field(True, description="false (or 0): no block events")
    from_height: int | None = Field(
        None,
        ge=1,
        le=2**63 - 1,
        description=(
            "first replay the committed blocks from this height (at most [api] event_replay_blocks_max, "
            "1000 by default, behind the tip), then go live with no gap and no repeat"
        ),
    )

    @property
    def tx_ids(self) -> list[str]:
        return [] if self.tx is None else self.tx.split(",")


class TxBodyJson(_Body):
    chain_id: str
    chaincode: str
    function: str
    args: dict[str, Any]
    sender_org: str
    sender_key: Hex32
    nonce: int = Field(ge=0, le=2**64 - 1)
    valid_until: int = Field(ge=0, le=2**63 - 1)


class TransactionJson(_Body):
    """A signed transaction in its JSON form (the node rebuilds the canonical bytes; same id)."""

    body: TxBodyJson
    signature: Hex64


class SubmissionJson(RootModel[TransactionJson | Annotated[list[TransactionJson], Field(max_length=1000)]]):
    """POST /v1/txs as JSON: one transaction, or a batch (an array of at most 1000)."""


# --- responses -------------------------------------------------------------------------------------------


class ErrorBody(_Body):
    error: str = Field(
        description="a stable code: malformed, unknown_sender, not_found, invalid_request, ..."
    )
    message: str = Field(description="what is wrong, for people")


class TxAccepted(_Body):
    tx_id: Hex32
    status: Literal["pending"]


class BatchResult(_Body):
    status: Literal["pending", "rejected"]
    tx_id: Hex32 | None = Field(None, description="absent when the item could not be decoded at all")
    error: str | None = Field(None, description="rejected: the code, as for a single submission")
    message: str | None = Field(None, description="rejected: what is wrong")


class BatchBody(_Body):
    """The answer to a batch submission: one result per transaction, in the order sent."""

    results: list[BatchResult]


class TxStatusBody(_Body):
    tx_id: Hex32
    status: Literal["pending", "committed", "unknown"]
    height: int | None = Field(None, description="committed: the block")
    index: int | None = Field(None, description="committed: the position in the block")
    code: str | None = Field(None, description="committed: ok or the chaincode's failure code")
    message: str | None = Field(None, description="committed: the chaincode's message")


class HeaderBody(_Body):
    chain_id: str
    height: int
    next_validators_hash: Hex32 = Field(description="set hash of the validator set in force at height + 1")
    prev_hash: Hex32
    proposer: int = Field(description="validator number of the proposing validator")
    results_root: Hex32
    state_height: int = Field(description="the height whose roots this header certifies")
    state_root: Hex32
    time_ms: int = Field(description="the agreed block time, ms since the Unix epoch")
    tx_count: int
    tx_root: Hex32
    validators_hash: Hex32 = Field(description="set hash of the validator set that certifies this block")


class ResultBody(_Body):
    code: str
    message: str
    events: list[dict[str, Any]]


class BlockTxBody(_Body):
    tx_id: Hex32
    chaincode: str
    function: str
    args: dict[str, Any]
    sender_org: str
    sender_key: Hex32
    nonce: int
    valid_until: int
    signature: Hex64
    result: ResultBody


class VoteBody(_Body):
    validator: int
    signature: Hex64


class CertificateBody(_Body):
    view: int
    height: int
    block_hash: Hex32
    votes: list[VoteBody]


class BlockBody(_Body):
    height: int
    hash: Hex32
    header: HeaderBody
    state_root_after: Hex32
    txs: list[BlockTxBody]
    certificate: CertificateBody | None


class CheckpointBody(_Body):
    stable_height: Height
    stable_state_root: Hex32 | None
    interval: int
    log_records: int
    pruned_records: int


class StatusBody(_Body):
    chain_id: str
    genesis_hash: Hex32
    node_id: str
    role: Literal["validator", "observer"]
    height: Height
    last_block_hash: str = Field(description="hex; empty before the first block")
    state_root: Hex32
    peers: int
    catching_up: bool
    mempool_txs: int
    halted: str | None
    paused: str | None = Field(
        description="why the node stopped ordering for now (e.g. its disk is nearly full)"
    )
    view: int | None
    primary: int | None
    checkpoint: CheckpointBody | None
    unlinked_peers: dict[str, str] = Field(
        description="peers this node dials and is not linked to, with why the last attempt failed"
    )


class ReadyBody(_Body):
    ready: bool
    reason: str | None = Field(description="the first condition that fails, or null when ready")


class HealthBody(_Body):
    status: Literal["alive"]


class ArgBody(_Body):
    name: str
    type: str
    required: bool
    description: str
    unit: str | None = None
    minimum: int | None = None
    maximum: int | None = None
    choices: list[str] | None = None
    default: Any = None


class EventSpecBody(_Body):
    type: str
    attributes: dict[str, str] = Field(description="attribute name -> its type")


class FunctionBody(_Body):
    name: str
    roles: list[str]
    admin_only: bool
    frozen_ok: bool
    node_key_ok: bool = Field(description="a validator's node key may sign it (only evidence)")
    four_eyes: str | None = Field(
        description="when a call needs a second key of the organisation (null: never)"
    )
    description: str
    args: list[ArgBody]
    failures: list[str]
    events: list[EventSpecBody] = Field(description="the events the function emits when it succeeds")


class QueryBody(_Body):
    name: str
    description: str
    params: list[ArgBody]


class CatalogueBody(_Body):
    functions: dict[str, FunctionBody]
    queries: dict[str, QueryBody]


class SignerBody(_Body):
    org: str
    key: Hex32
    function: str


class VersionBody(_Body):
    height: int
    time_ms: int = Field(description="the block time of that height (the genesis time for height 0)")
    tx_index: int | None = Field(description="null for the genesis write and the end-of-block step")
    tx_id: Hex32 | None
    deleted: bool
    value: Any = Field(description="decoded canonical msgpack, or {'hex': ...}; null when deleted")
    signer: SignerBody | None


class HistoryBody(_Body):
    key: str
    versions: list[VersionBody]
    next_start_after: int | None


class ProofBody(_Body):
    key: str
    height: int
    state_root: Hex32
    value: Any
    value_hex: str | None
    proof: str = Field(description="hex of the proof bytes (docs/protocol/storage.md)")
    certified_by_height: int


class BlockEvent(_Body):
    type: Literal["block"]
    height: int
    hash: Hex32
    time_ms: int
    tx_count: int
    state_root: Hex32


class TxEvent(_Body):
    type: Literal["tx"]
    tx_id: Hex32
    height: int
    index: int
    sender_org: str
    function: str
    code: str
    message: str
    events: list[dict[str, Any]]


class DroppedEvent(_Body):
    type: Literal["dropped"]
    reason: str


EVENT_MESSAGES: tuple[type[BaseModel], ...] = (BlockEvent, TxEvent, DroppedEvent)
