"""The client HTTP API (aiohttp, JSON, versioned under /v1) over a node backend.

Every handler validates its input, bodies are size-limited, and no request can take the node down: errors
become JSON `{"error": code, "message": text}` with a 4xx status, and unexpected exceptions a 500 that is
logged. Clients that misbehave at the HTTP level (malformed requests, a connection dropped mid-body) cost one
rate-limited warning line per cause, never a traceback. Request bodies are taken as sent: a
`Content-Encoding` other than identity is refused (415), so no compressed body is ever inflated.
docs/API.md and /v1/openapi.json describe the endpoints.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol

from aiohttp import HttpVersion11, WSMsgType, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core import codec
from core.errors import CarbonchainError, CodecError, InvalidInput, TransactionError
from core.ratelog import OneLineErrors, RateLimitedLog
from core.tx import SignedTx, decode_transaction, transaction_from_json
from node.events import EventHub
from node.metrics import NodeMetrics
from node.openapi import OPENAPI

log = logging.getLogger(__name__)
client_log = RateLimitedLog(log)
# aiohttp's own server log for this API: requests it cannot even parse are the client's fault, not ours
server_log = logging.getLogger("node.api.http")
server_log.addFilter(OneLineErrors(log, (HttpProcessingError, RequestPayloadError, ConnectionError)))

MSGPACK_TYPE = "application/msgpack"
TXS_PER_REQUEST_MAX = 1000  # transactions in one batch submission
PAGE_LIMIT_MAX = 1000
EVENT_FILTER_IDS_MAX = 100  # ids in one /v1/events filter: keeps the request line under 8 KiB
_HEX_ID = re.compile(r"^[0-9a-f]{64}$")
_STATE_KEY_MAX = 512


class QueryNotFound(InvalidInput):
    """The named query or the object it asks for does not exist (HTTP 404)."""


class ApiBackend(Protocol):
    """What the API needs from a node (validator or observer)."""

    events: EventHub
    metrics: NodeMetrics
    tx_bytes_max: int

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


def build_api(backend: ApiBackend, *, body_bytes_max: int) -> web.Application:
    app = web.Application(
        client_max_size=body_bytes_max,
        middlewares=[_errors_middleware],
        handler_args={"auto_decompress": False, "logger": server_log},
    )
    app[BACKEND] = backend
    routes = [
        ("POST", "/v1/txs", post_transaction),
        ("GET", "/v1/txs/{tx_id}", get_transaction),
        ("GET", "/v1/blocks/latest", get_latest_block),
        ("GET", "/v1/blocks/{height}", get_block),
        ("GET", "/v1/status", get_status),
        ("GET", "/v1/carbon/queries", get_carbon_catalogue),
        ("GET", "/v1/carbon/{query}", get_carbon_query),
        # State keys contain "/" (org/ent-a): the segment takes slashes, written as such or as %2F.
        ("GET", "/v1/state/{key:.+}/history", get_state_history),
        ("GET", "/v1/state/{key:.+}/proof", get_state_proof),
        ("GET", "/v1/events", get_events),
        ("GET", "/v1/openapi.json", get_openapi),
        ("GET", "/healthz", get_healthz),
        ("GET", "/readyz", get_readyz),
        ("GET", "/metrics", get_metrics),
    ]
    for method, path, handler in routes:
        add = app.router.add_get if method == "GET" else app.router.add_post  # add_get serves HEAD too
        add(path, handler, expect_handler=_answer_expect)
    return app


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


async def _answer_expect(request: web.Request) -> web.StreamResponse | None:
    """The `Expect` header, answered before any handler or middleware runs. aiohttp's own handler echoes an
    unknown value into its 417 text and fails with a 500 when the value is not UTF-8; this one does not."""
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


# --- transactions ----------------------------------------------------------------------------------------


async def post_transaction(request: web.Request) -> web.Response:
    """One transaction (a JSON document, or its raw msgpack bytes): 202, or the error that refused it.
    A batch (a JSON array of documents, or a msgpack array of raw transactions, at most
    TXS_PER_REQUEST_MAX): 200 with one result per transaction, in order."""
    backend = request.app[BACKEND]
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        return error_response(415, "unsupported_encoding", "send the body uncompressed (no Content-Encoding)")
    body = await request.read()
    if request.content_type == MSGPACK_TYPE:
        if body[:1] and (body[0] & 0xF0 == 0x90 or body[0] in (0xDC, 0xDD)):  # a msgpack array: a batch
            return _submit_batch(backend, _decode_raw_batch(body, backend.tx_bytes_max))
        tx = decode_transaction(body, tx_bytes_max=backend.tx_bytes_max)
    else:
        document = _parse_json(body)
        if type(document) is list:
            if len(document) > TXS_PER_REQUEST_MAX:
                raise TransactionError("too_large", f"at most {TXS_PER_REQUEST_MAX} transactions per request")
            limit = backend.tx_bytes_max
            items = [
                _decode_item(partial(transaction_from_json, item, tx_bytes_max=limit)) for item in document
            ]
            return _submit_batch(backend, items)
        tx = transaction_from_json(document, tx_bytes_max=backend.tx_bytes_max)
    backend.submit_transaction(tx)
    return web.json_response({"tx_id": tx.tx_id.hex(), "status": "pending"}, status=202)


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
    return web.json_response({"results": results}, status=200)


async def get_transaction(request: web.Request) -> web.Response:
    tx_id = _parse_hex_id(request.match_info["tx_id"], "transaction id")
    return web.json_response(request.app[BACKEND].get_transaction_status(tx_id))


# --- blocks and status -----------------------------------------------------------------------------------


async def get_latest_block(request: web.Request) -> web.Response:
    block = request.app[BACKEND].get_block_json(None)
    if block is None:
        return error_response(404, "not_found", "no block committed yet")
    return web.json_response(block)


async def get_block(request: web.Request) -> web.Response:
    height = _parse_int(request.match_info["height"], "height", minimum=1)
    backend = request.app[BACKEND]
    if request.query.get("format") == "msgpack":
        raw = backend.get_block_bytes(height)
        if raw is None:
            return error_response(404, "not_found", f"no block at height {height}")
        return web.Response(body=raw, content_type=MSGPACK_TYPE)
    block = backend.get_block_json(height)
    if block is None:
        return error_response(404, "not_found", f"no block at height {height}")
    return web.json_response(block)


async def get_status(request: web.Request) -> web.Response:
    return web.json_response(request.app[BACKEND].get_status())


async def get_healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def get_readyz(request: web.Request) -> web.Response:
    reason = request.app[BACKEND].get_unready_reason()
    return web.json_response(
        {"ready": reason is None, "reason": reason}, status=200 if reason is None else 503
    )


async def get_metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[BACKEND].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


# --- chaincode queries and state --------------------------------------------------------------------------


async def get_carbon_catalogue(request: web.Request) -> web.Response:
    return web.json_response(request.app[BACKEND].get_catalogue())


async def get_carbon_query(request: web.Request) -> web.Response:
    name = request.match_info["query"]
    if len(request.query) > 32 or any(len(k) > 64 or len(v) > 1024 for k, v in request.query.items()):
        raise InvalidInput("too many or too long query parameters")
    result = request.app[BACKEND].run_query(name, dict(request.query))
    return web.json_response(result)


async def get_state_history(request: web.Request) -> web.Response:
    key = _parse_state_key(request.match_info["key"])
    start_after = request.query.get("start_after")
    limit = _parse_int(request.query.get("limit", "100"), "limit", minimum=1, maximum=PAGE_LIMIT_MAX)
    cursor = None if start_after is None else _parse_int(start_after, "start_after", minimum=0)
    return web.json_response(request.app[BACKEND].get_key_history(key, cursor, limit))


async def get_state_proof(request: web.Request) -> web.Response:
    key = _parse_state_key(request.match_info["key"])
    return web.json_response(request.app[BACKEND].get_key_proof(key))


# --- events -----------------------------------------------------------------------------------------------


async def get_events(request: web.Request) -> web.StreamResponse:
    backend = request.app[BACKEND]
    org = request.query.get("org")
    tx_ids = [t for t in request.query.get("tx", "").split(",") if t]
    if len(tx_ids) > EVENT_FILTER_IDS_MAX or any(not _HEX_ID.fullmatch(t) for t in tx_ids):
        raise InvalidInput(
            f"tx must be a comma-separated list of at most {EVENT_FILTER_IDS_MAX} hex transaction ids"
        )
    socket = web.WebSocketResponse(heartbeat=30, max_msg_size=64 * 1024)
    await socket.prepare(request)
    subscription = backend.events.subscribe(org=org, tx_ids=tx_ids, blocks=request.query.get("blocks") != "0")
    client_gone = asyncio.create_task(_read_until_closed(socket))
    try:
        await _stream_events(socket, subscription, client_gone)
    except ConnectionError:
        pass  # the client went away mid-send
    finally:
        backend.events.unsubscribe(subscription)
        client_gone.cancel()
        await socket.close()
    return socket


async def _stream_events(
    socket: web.WebSocketResponse, subscription: Any, client_gone: asyncio.Task[None]
) -> None:
    while True:
        next_event = asyncio.ensure_future(subscription.queue.get())
        await asyncio.wait({next_event, client_gone}, return_when=asyncio.FIRST_COMPLETED)
        if not next_event.done():
            next_event.cancel()
            return
        await socket.send_json(next_event.result())
        if subscription.dropped_reason is not None and subscription.queue.empty():
            await socket.send_json({"type": "dropped", "reason": subscription.dropped_reason})
            return


async def _read_until_closed(socket: web.WebSocketResponse) -> None:
    """Read (and ignore) what the client sends, so close frames and pings are handled."""
    async for message in socket:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break


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
    """State keys in URLs are UTF-8 text (percent-decoded once), or hex with a `0x` prefix."""
    if len(text) > _STATE_KEY_MAX:
        raise InvalidInput(f"state key longer than {_STATE_KEY_MAX} characters")
    if text.startswith("0x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            raise InvalidInput("state key after 0x must be hex") from None
    return text.encode("utf-8")
