"""The client HTTP API (aiohttp, JSON, versioned under /v1) over a node backend.

Every handler validates its input, bodies are size-limited, and no request can take the node down: errors
become JSON `{"error": code, "message": text}` with a 4xx status, and unexpected exceptions a 500 that is
logged. The routes are one table (`ROUTES`) from which node/openapi.py generates /v1/openapi.json; the
handlers parse parameters and shape answers with the models of node/schemas.py that the document
describes. Clients that misbehave at the HTTP level (malformed requests, a connection dropped
mid-body) cost one rate-limited warning line per cause, never a traceback. Request bodies are taken
as sent: a `Content-Encoding` other than identity is refused (415), so no compressed body is ever
inflated. docs/API.md says what each endpoint means.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol

import orjson
from aiohttp import HttpVersion11, WSCloseCode, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from chaincode import QUERIES
from core import codec
from core.errors import CarbonchainError, CodecError, InvalidInput, TransactionError
from core.ratelog import OneLineErrors, RateLimitedLog
from core.tx import SignedTx, decode_transaction, transaction_from_json
from node.events import EventHub
from node.eventstream import serve_event_stream
from node.metrics import NodeMetrics
from node.openapi import PathParam, Route, build_openapi, query_routes
from node.schemas import (
    EVENT_FILTER_IDS_MAX,
    HEX32,
    PAGE_LIMIT_MAX,
    BatchBody,
    BlockBody,
    BlockQuery,
    CatalogueBody,
    EventsQuery,
    HealthBody,
    HistoryBody,
    HistoryQuery,
    ProofBody,
    ReadyBody,
    StatusBody,
    SubmissionJson,
    TransactionJson,
    TxAccepted,
    TxStatusBody,
    describe_validation_error,
    parse_query,
    shape,
)

log = logging.getLogger(__name__)
client_log = RateLimitedLog(log)
# aiohttp's own server log for this API: requests it cannot even parse are the client's fault, not ours
server_log = logging.getLogger("node.api.http")
server_log.addFilter(OneLineErrors(log, (HttpProcessingError, RequestPayloadError, ConnectionError)))

MSGPACK_TYPE = "application/msgpack"
TXS_PER_REQUEST_MAX = 1000  # transactions in one batch submission
_HEX_ID = re.compile(HEX32)
_STATE_KEY_MAX = 512
__all__ = ["EVENT_FILTER_IDS_MAX", "PAGE_LIMIT_MAX", "ROUTES", "build_api"]


class QueryNotFound(InvalidInput):
    """The named query or the object it asks for does not exist (HTTP 404)."""


class ApiBackend(Protocol):
    """What the API needs from a node (validator or observer)."""

    events: EventHub
    metrics: NodeMetrics
    tx_bytes_max: int
    event_replay_blocks_max: int  # blocks a /v1/events?from_height= stream may replay ([api] config)

    def submit_transaction(self, tx: SignedTx) -> None:
        """Admit a decoded transaction: validate, add to the pending pool, gossip. Raises TransactionError."""
        ...

    def submit_transactions(self, txs: Sequence[SignedTx]) -> list[TransactionError | None]:
        """Admit a batch; per transaction None (pending) or the TransactionError that refused it."""
        ...

    def get_transaction_status(self, tx_id: bytes) -> dict[str, Any]: ...

    def get_block_json(self, height: int | None) -> dict[str, Any] | None:
        """A committed block as JSON; None for the latest when height is None and nothing is committed."""
        ...

    def get_block_bytes(self, height: int) -> bytes | None:
        """A committed block with results and certificate, canonically encoded (for auditors)."""
        ...

    def get_height(self) -> int:
        """The last committed height."""
        ...

    def get_block_events(self, height: int) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """A committed block's events as /v1/events publishes them (for a replay)."""
        ...

    def get_status(self) -> dict[str, Any]: ...

    def get_unready_reason(self) -> str | None:
        """Why the node is not ready (halted, disk nearly full, catching up, too few links), or None."""
        ...

    def run_query(self, name: str, params: dict[str, str]) -> Any:
        """Run a chaincode query; raises QueryNotFound or InvalidInput."""
        ...

    def get_catalogue(self) -> dict[str, Any]:
        """The chaincode's functions and queries with their arguments, units and roles."""
        ...

    def get_key_history(self, key: bytes, start_after: int | None, limit: int) -> dict[str, Any]: ...

    def get_key_proof(self, key: bytes) -> dict[str, Any]: ...


BACKEND = web.AppKey("backend", ApiBackend)
EventSockets = set[web.WebSocketResponse]
EVENT_SOCKETS = web.AppKey("event_sockets", EventSockets)  # the open /v1/events streams


def build_api(backend: ApiBackend, *, body_bytes_max: int) -> web.Application:
    app = web.Application(
        client_max_size=body_bytes_max,
        middlewares=[_errors_middleware],
        handler_args={"auto_decompress": False, "logger": server_log},
    )
    app[BACKEND] = backend
    app[EVENT_SOCKETS] = EventSockets()
    app.on_shutdown.append(_close_event_streams)
    for route in ROUTES:
        app.router.add_route(route.method, route.aiohttp_path, route.handler, expect_handler=answer_expect)
    return app


async def _close_event_streams(app: web.Application) -> None:
    """At shutdown, end event streams at once: their handlers would otherwise wait for the next event,
    and the shutdown for them (consumers see the close and resubscribe elsewhere or later)."""
    sockets: EventSockets = app[EVENT_SOCKETS]
    for socket in list(sockets):
        await socket.close(code=WSCloseCode.GOING_AWAY, message=b"node shutting down")


def add_fallback_route(app: web.Application) -> None:
    """The last route (add it after every other, or it hides them): it takes every request no other takes,
    which aiohttp answered from a route whose Expect handler 500s on a value that is not UTF-8."""
    app.router.add_route("*", "/{path:.*}", _no_route, expect_handler=answer_expect)


async def _no_route(request: web.Request) -> web.StreamResponse:
    """404, or 405 when another route has the path for other methods (as aiohttp would answer)."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource:
            allowed |= (await resource.resolve(request))[1]  # (match, the methods it has for the path)
    raise web.HTTPMethodNotAllowed(request.method, sorted(allowed)) if allowed else web.HTTPNotFound()


def json_response(document: Any, *, status: int = 200) -> web.Response:
    """A JSON answer, by orjson: ~10x json.dumps, which was a cost of its own on a batch's answer."""
    body = orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS)
    return web.Response(body=body, status=status, content_type="application/json")


def error_response(status: int, code: str, message: str) -> web.Response:
    return json_response({"error": code, "message": message}, status=status)


async def answer_expect(request: web.Request) -> web.StreamResponse | None:
    """The `Expect` header, answered before any handler or middleware runs, on every route of the HTTP port.
    aiohttp's own handler echoes an unknown value into its 417 text and 500s when it is not UTF-8."""
    if request.headers.get("Expect", "").lower() != "100-continue":
        return error_response(417, "expectation_failed", "the only Expect supported is 100-continue")
    if request.version == HttpVersion11:
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the answer proper has not started
    return None


@web.middleware
async def _errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "too_large", f"request body exceeds {request.app._client_max_size} bytes")
    except web.HTTPNotFound:
        return error_response(404, "not_found", _not_found_hint(request.path))
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)
        raise
    except TransactionError as exc:
        status = (
            503 if exc.code in ("mempool_full", "not_ordering") else 413 if exc.code == "too_large" else 400
        )
        if exc.code == "replay":
            status = 409
        return error_response(status, exc.code, exc.message)
    except QueryNotFound as exc:
        return error_response(404, "not_found", str(exc))
    except InvalidInput as exc:
        return error_response(400, "invalid_request", str(exc))
    except ConnectionError:
        # The client went away (e.g. mid-body): aiohttp fails to send this answer and drops the connection
        # quietly (raising instead would make it log the error a second time).
        client_log.warning("client-gone", "a client went away during %s %s", request.method, request.path)
        return error_response(400, "client_gone", "the connection ended before the request was read")
    except RequestPayloadError as exc:  # the body could not be read as sent (e.g. broken chunked encoding)
        return error_response(400, "bad_body", f"the request body could not be read: {exc}".split("\n")[0])
    except CarbonchainError as exc:
        log.exception("request %s %s failed", request.method, request.path)
        return error_response(500, "internal", str(exc))
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error; see the node log")


def _not_found_hint(path: str) -> str:
    if path.startswith("/v1/carbon/"):
        return f"no query named {path.removeprefix('/v1/carbon/')!r}; GET /v1/carbon/queries lists them"
    return f"no endpoint {path}; GET /v1/openapi.json lists them"


# --- transactions ----------------------------------------------------------------------------------------


async def post_transaction(request: web.Request) -> web.Response:
    """One transaction (a JSON document, or its raw msgpack bytes): 202, or the error that refused it.
    A batch (a JSON array of documents, or a msgpack array of raw transactions, at most
    TXS_PER_REQUEST_MAX): 200 with one result per transaction, in order."""
    backend = request.app[BACKEND]
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        backend.metrics.rejected_txs.labels(reason="unsupported_encoding").inc()
        return error_response(415, "unsupported_encoding", "send the body uncompressed (no Content-Encoding)")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        backend.metrics.rejected_txs.labels(reason="too_large").inc()
        raise
    try:
        if request.content_type == MSGPACK_TYPE:
            if body[:1] and (body[0] & 0xF0 == 0x90 or body[0] in (0xDC, 0xDD)):  # a msgpack array: a batch
                return _submit_batch(backend, _decode_raw_batch(body, backend.tx_bytes_max))
            tx = decode_transaction(body, tx_bytes_max=backend.tx_bytes_max)
        else:
            document = _parse_json(body)
            if type(document) is list:
                if len(document) > TXS_PER_REQUEST_MAX:
                    raise TransactionError(
                        "too_large", f"at most {TXS_PER_REQUEST_MAX} transactions per request"
                    )
                limit = backend.tx_bytes_max
                items = [_decode_item(partial(_decode_json_transaction, item, limit)) for item in document]
                return _submit_batch(backend, items)
            tx = _decode_json_transaction(document, backend.tx_bytes_max)
    except TransactionError as exc:  # refused before admission, which counts its own refusals
        backend.metrics.rejected_txs.labels(reason=exc.code).inc()
        raise
    backend.submit_transaction(tx)
    return json_response(shape(TxAccepted, {"tx_id": tx.tx_id.hex(), "status": "pending"}), status=202)


def _decode_json_transaction(document: Any, tx_bytes_max: int) -> SignedTx:
    """The JSON form checked against the shape the document describes, then made canonical bytes."""
    try:
        TransactionJson.model_validate(document)
    except ValidationError as exc:
        raise TransactionError("malformed", describe_validation_error(exc)) from None
    return transaction_from_json(document, tx_bytes_max=tx_bytes_max)


def _decode_raw_batch(body: bytes, tx_bytes_max: int) -> list[SignedTx | TransactionError]:
    try:
        items = codec.decode(body, max_container_len=TXS_PER_REQUEST_MAX)
    except CodecError as exc:
        raise TransactionError(
            "malformed", f"a batch is a msgpack array of raw transactions: {exc}"
        ) from None
    if type(items) is not list or any(type(item) is not bytes for item in items):
        raise TransactionError("malformed", "a batch is a msgpack array of raw transactions (bin)")
    return [_decode_item(partial(decode_transaction, item, tx_bytes_max=tx_bytes_max)) for item in items]


def _decode_item(decode: Callable[[], SignedTx]) -> SignedTx | TransactionError:
    """One transaction of a batch, or the error that makes it unusable (the others still count)."""
    try:
        return decode()
    except TransactionError as exc:
        return exc
    except InvalidInput as exc:
        return TransactionError("malformed", str(exc))


def _submit_batch(backend: ApiBackend, items: list[SignedTx | TransactionError]) -> web.Response:
    for item in items:
        if isinstance(item, TransactionError):  # not decodable: admission never sees it
            backend.metrics.rejected_txs.labels(reason=item.code).inc()
    txs = [item for item in items if isinstance(item, SignedTx)]
    outcomes = iter(backend.submit_transactions(txs))
    results = []
    for item in items:
        outcome = item if isinstance(item, TransactionError) else next(outcomes)
        if outcome is None:
            assert isinstance(item, SignedTx)
            results.append({"tx_id": item.tx_id.hex(), "status": "pending"})
        else:
            entry = {"status": "rejected", "error": outcome.code, "message": outcome.message}
            if isinstance(item, SignedTx):
                entry["tx_id"] = item.tx_id.hex()
            results.append(entry)
    # Not put through `shape`: pydantic per entry cost more than the rest of answering. The entries above
    # are BatchBody's, and tests/integration/test_api_schema.py checks live answers against the schema.
    return json_response({"results": results})


async def get_transaction(request: web.Request) -> web.Response:
    tx_id = _parse_hex_id(request.match_info["tx_id"], "transaction id")
    return json_response(shape(TxStatusBody, request.app[BACKEND].get_transaction_status(tx_id)))


# --- blocks and status -----------------------------------------------------------------------------------


async def get_latest_block(request: web.Request) -> web.Response:
    block = request.app[BACKEND].get_block_json(None)
    if block is None:
        return error_response(404, "not_found", "no block committed yet")
    return json_response(shape(BlockBody, block))


async def get_block(request: web.Request) -> web.Response:
    height = _parse_int(request.match_info["height"], "height", minimum=1)
    query = parse_query(BlockQuery, request)
    backend = request.app[BACKEND]
    if query.format == "msgpack":
        raw = backend.get_block_bytes(height)
        if raw is None:
            return error_response(404, "not_found", f"no block at height {height}")
        return web.Response(body=raw, content_type=MSGPACK_TYPE)
    block = backend.get_block_json(height)
    if block is None:
        return error_response(404, "not_found", f"no block at height {height}")
    return json_response(shape(BlockBody, block))


async def get_status(request: web.Request) -> web.Response:
    return json_response(shape(StatusBody, request.app[BACKEND].get_status()))


async def get_healthz(request: web.Request) -> web.Response:
    return json_response(shape(HealthBody, {"status": "alive"}))


async def get_readyz(request: web.Request) -> web.Response:
    reason = request.app[BACKEND].get_unready_reason()
    body = shape(ReadyBody, {"ready": reason is None, "reason": reason})
    return json_response(body, status=200 if reason is None else 503)


async def get_metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[BACKEND].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def get_openapi(request: web.Request) -> web.Response:
    return json_response(OPENAPI)


# --- chaincode queries and state --------------------------------------------------------------------------


async def get_carbon_catalogue(request: web.Request) -> web.Response:
    return json_response(shape(CatalogueBody, request.app[BACKEND].get_catalogue()))


async def get_carbon_query(request: web.Request) -> web.Response:
    name = request.path.removeprefix("/v1/carbon/")
    query = request.query
    if len(query) > 32 or any(len(k) > 64 or len(v) > 1024 for k, v in query.items()):
        raise InvalidInput("too many or too long query parameters")
    repeated = sorted({key for key in query if len(query.getall(key)) > 1})
    if repeated:
        raise InvalidInput(f"parameter {repeated[0]!r} is given more than once")
    result = request.app[BACKEND].run_query(name, dict(query))
    return json_response(result)


async def get_state_history(request: web.Request) -> web.Response:
    key = _parse_state_key(request.match_info["key"])
    query = parse_query(HistoryQuery, request)
    history = request.app[BACKEND].get_key_history(key, query.start_after, query.limit)
    return json_response(shape(HistoryBody, history))


async def get_state_proof(request: web.Request) -> web.Response:
    key = _parse_state_key(request.match_info["key"])
    return json_response(shape(ProofBody, request.app[BACKEND].get_key_proof(key)))


# --- events -----------------------------------------------------------------------------------------------


async def get_events(request: web.Request) -> web.StreamResponse:
    backend = request.app[BACKEND]
    query = parse_query(EventsQuery, request)
    if query.from_height is not None:
        tip, replay_max = backend.get_height(), backend.event_replay_blocks_max
        behind = tip - query.from_height + 1
        if behind > replay_max:
            return error_response(
                400,
                "replay_too_long",
                f"from_height {query.from_height} is {behind} blocks behind the tip {tip}; a stream replays at "
                f"most {replay_max}: read older blocks with GET /v1/blocks/{{height}} (carbonchain block), "
                f"then subscribe with from_height >= {tip - replay_max + 1}",
            )
    socket = web.WebSocketResponse(heartbeat=30, max_msg_size=64 * 1024)
    await socket.prepare(request)
    request.app[EVENT_SOCKETS].add(socket)
    try:
        await serve_event_stream(socket, backend, query)
    finally:
        request.app[EVENT_SOCKETS].discard(socket)
        await socket.close()
    return socket


# --- parsing ---------------------------------------------------------------------------------------------


def _parse_json(body: bytes) -> Any:
    """A JSON request body; TransactionError("malformed") for anything json.loads cannot take."""
    try:
        return json.loads(body)
    except RecursionError:  # "[" * 1000: nested deeper than Python's stack, far deeper than any transaction
        raise TransactionError("malformed", "body is not JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of more than 4300 digits
        raise TransactionError("malformed", f"body is not JSON: {str(exc)[:200]}") from None


def _parse_hex_id(text: str, what: str) -> bytes:
    if not _HEX_ID.fullmatch(text):
        raise InvalidInput(f"{what} must be 64 lowercase hex digits")
    return bytes.fromhex(text)


def _parse_int(text: str, what: str, *, minimum: int = 0, maximum: int = 2**63 - 1) -> int:
    if not text.isdigit() or len(text) > 19:
        raise InvalidInput(f"{what} must be a non-negative integer")
    value = int(text)
    if not minimum <= value <= maximum:
        raise InvalidInput(f"{what} must be between {minimum} and {maximum}")
    return value


def _parse_state_key(text: str) -> bytes:
    """State keys in URLs are UTF-8 text (percent-decoded once; a "/" as written or as %2F), or hex with a
    `0x` prefix."""
    if len(text) > _STATE_KEY_MAX:
        raise InvalidInput(f"state key longer than {_STATE_KEY_MAX} characters")
    if text.startswith("0x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            raise InvalidInput("state key after 0x must be hex") from None
    return text.encode("utf-8")


# --- the route table -------------------------------------------------------------------------------------

_JSON_ANY = {"application/json": {"type": "object", "description": "see docs/CHAINCODE.md"}}
_TX_ID = PathParam("tx_id", "transaction id, 64 hex digits", {"type": "string", "pattern": HEX32})
_KEY = PathParam(
    "key",
    "state key as UTF-8 text (a '/' as written or as %2F; percent-decoded once), or hex with a 0x prefix",
    {"type": "string", "minLength": 1, "maxLength": _STATE_KEY_MAX},
)
_HEIGHT = PathParam("height", "block height", {"type": "integer", "minimum": 1, "maximum": 2**63 - 1})

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/txs",
        post_transaction,
        "Submit a signed transaction, or a batch of them (JSON, or msgpack with Content-Type "
        "application/msgpack: one transaction's bytes, or an array of them)",
        TxAccepted,
        ok_status=202,
        also_ok=((200, BatchBody),),
        errors=(400, 409, 413, 415, 503),
        body={"application/json": SubmissionJson, MSGPACK_TYPE: {"type": "string", "format": "binary"}},
    ),
    Route(
        "GET",
        "/v1/txs/{tx_id}",
        get_transaction,
        "Status of a transaction: pending, committed (height, index, code, message) or unknown",
        TxStatusBody,
        errors=(400,),
        path_params=(_TX_ID,),
    ),
    Route(
        "GET", "/v1/blocks/latest", get_latest_block, "The latest committed block", BlockBody, errors=(404,)
    ),
    Route(
        "GET",
        "/v1/blocks/{height}",
        get_block,
        "A committed block: header, transactions with results, commit certificate",
        {
            "application/json": BlockBody,
            MSGPACK_TYPE: {"type": "string", "format": "binary"},
        },
        errors=(400, 404),
        path_params=(_HEIGHT,),
        query=BlockQuery,
    ),
    Route("GET", "/v1/status", get_status, "Node status, checkpoints and unlinked peers", StatusBody),
    Route("GET", "/healthz", get_healthz, "Liveness: the process serves requests", HealthBody),
    Route(
        "GET",
        "/readyz",
        get_readyz,
        "Readiness: not halted or paused, caught up, linked to enough validators; 503 names the failing condition",
        ReadyBody,
        errors=(503,),
    ),
    Route(
        "GET",
        "/metrics",
        get_metrics,
        "Prometheus metrics (docs/API.md lists them)",
        {"text/plain": {"type": "string"}},
    ),
    Route(
        "GET",
        "/v1/openapi.json",
        get_openapi,
        "This document",
        {"application/json": {"type": "object"}},
    ),
    Route(
        "GET",
        "/v1/carbon/queries",
        get_carbon_catalogue,
        "The chaincode's functions (roles, arguments with units) and queries",
        CatalogueBody,
    ),
    *query_routes(QUERIES, get_carbon_query, _JSON_ANY),
    Route(
        "GET",
        "/v1/state/{key}/history",
        get_state_history,
        "Every version of a state key with height, block time, transaction and signer",
        HistoryBody,
        errors=(400,),
        path_params=(_KEY,),
        query=HistoryQuery,
        router_path=r"/v1/state/{key:[\s\S]+}/history",
    ),
    Route(
        "GET",
        "/v1/state/{key}/proof",
        get_state_proof,
        "An inclusion or non-inclusion proof of a state key against the latest state root",
        ProofBody,
        errors=(400,),
        path_params=(_KEY,),
        router_path=r"/v1/state/{key:[\s\S]+}/proof",
    ),
    Route(
        "GET",
        "/v1/events",
        get_events,
        "WebSocket stream of committed blocks and transaction results, optionally replayed from a height",
        {},
        ok_status=101,
        errors=(400,),
        query=EventsQuery,
    ),
)
OPENAPI = build_openapi(ROUTES)
