"""A generated fuzzer of the HTTP API: valid requests built from the node's own catalogue, then mutated.

Input `i` of seed `s` is a pure function of (s, i, the chain's height at the time, the catalogue), so any
failure is replayed by its number. Each input starts from a valid request (every endpoint, every chaincode
query with arguments of the right types, transactions for every chaincode function signed by enrolled and
unknown keys, in JSON and msgpack, one at a time and in batches) and gets zero to three mutations, from the structure (methods, path
segments, query parameters, headers such as Content-Type, Content-Encoding and Transfer-Encoding, JSON values
of the wrong type, huge numbers, deep nesting, non-canonical msgpack) down to the bytes (bit flips, splices,
truncation, a Content-Length that lies). Requests travel as raw bytes over their own TCP connection, so
requests no HTTP library would send are part of the mix.

The oracle: no answer may be a 5xx, except 503 from /readyz (not ready) and 503 `mempool_full` or
`not_ordering` from POST /v1/txs; an input known to be complete must be answered within ANSWER_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from core import codec
from core.devkeys import dev_admin_key, dev_client_key
from core.keys import SigningKey
from core.tx import TxBody, sign_transaction, transaction_to_json
from tools.netinit import DEFAULT_ORGANISATIONS

ANSWER_TIMEOUT_S = 10.0  # a complete request must be answered within this
INCOMPLETE_WAIT_S = 0.1  # how long to wait on a request that may be cut short before hanging up
ORGS = [org for org, _, _ in DEFAULT_ORGANISATIONS]
NASTY_TEXT = [
    "",
    " ",
    "0",
    "-1",
    "1e309",
    "99999999999999999999999999999",
    "-9223372036854775809",
    "18446744073709551616",
    "0x",
    "0xzz",
    "0x" + "00" * 40,
    "null",
    "true",
    "[]",
    "{}",
    "NaN",
    "..",
    "../../etc/passwd",
    "%00",
    "%ff%fe",
    "%",
    "%%",
    "\x00",
    "\r\n",
    "é",
    "\u202e",
    "🙂",
    "\ud800",
    "<script>",
    "a" * 600,
    "b" * 5000,
    ",,,",
    "ent-a,bank",
]
NASTY_JSON = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    2**63,
    2**64,
    -(2**63) - 1,
    "",
    "x" * 70_000,
    [],
    {},
    [[[]]],
    {"a": {}},
]
METHODS = [
    "GET",
    "POST",
    "PUT",
    "DELETE",
    "PATCH",
    "HEAD",
    "OPTIONS",
    "TRACE",
    "CONNECT",
    "G\x00T",
    "get",
    "BREW",
]
CONTENT_TYPES = [
    "application/json",
    "application/msgpack",
    "application/json; charset=utf-16",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "text/plain",
    "",
    "application/msgpack; q=0",
    "\x00",
]


@dataclass
class HttpInput:
    """One request as bytes, and what the generator knows about it."""

    index: int
    raw: bytes
    complete: bool  # False: the bytes may end before the request does (the server may wait for more)
    method: str
    path: str
    steps: list[str] = field(default_factory=list)  # what was done to the valid request, for the report

    def describe(self) -> str:
        head = self.raw[:300]
        return (
            f"input {self.index}: {self.method} {self.path[:80]!r} after {self.steps}; first bytes {head!r}"
        )


@dataclass
class _Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    body: bytes
    document: Any = None  # the JSON body before encoding, when it is JSON
    chunked: bool = False


class ApiInputs:
    """The generator. `catalogue` is GET /v1/carbon/queries of the target."""

    def __init__(self, seed: int, chain_id: str, catalogue: dict[str, Any]) -> None:
        self.seed = seed
        self.chain_id = chain_id
        self.functions: list[dict[str, Any]] = list(catalogue["functions"].values())
        self.queries: list[dict[str, Any]] = list(catalogue["queries"].values())
        self._keys: dict[tuple[str, str], SigningKey] = {}

    def make(self, index: int, height: int) -> HttpInput:
        rng = random.Random(f"{self.seed}:{index}")
        build = rng.choice(self._templates())
        request = build(rng, height)
        steps = [build.__name__.removeprefix("_make_")]
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            mutate = rng.choice(_REQUEST_MUTATIONS)
            mutate(rng, request)
            steps.append(mutate.__name__.removeprefix("_mutate_"))
        raw = _serialise(request)
        if rng.random() < 0.08:
            raw, name = _mutate_bytes(rng, raw)
            steps.append(name)
        return HttpInput(index, raw, _is_complete(raw), request.method, request.path, steps)

    # --- valid requests ------------------------------------------------------------------------------------

    def _templates(self) -> list[Callable[[random.Random, int], _Request]]:
        return [
            self._make_simple_get,
            self._make_block,
            self._make_tx_status,
            self._make_query,
            self._make_query,
            self._make_state,
            self._make_tx_json,
            self._make_tx_json,
            self._make_tx_msgpack,
            self._make_tx_msgpack,
            self._make_batch_json,
            self._make_batch_msgpack,
            self._make_events,
        ]

    def _make_simple_get(self, rng: random.Random, height: int) -> _Request:
        path = rng.choice(
            [
                "/v1/status",
                "/healthz",
                "/readyz",
                "/metrics",
                "/v1/openapi.json",
                "/v1/carbon/queries",
                "/v1/blocks/latest",
                "/",
                "/v1",
                "/v1/",
                "/v2/status",
                "/p2p",
            ]
        )
        return _Request("GET", path, [], [], b"")

    def _make_block(self, rng: random.Random, height: int) -> _Request:
        query = [("format", "msgpack")] if rng.random() < 0.4 else []
        return _Request("GET", f"/v1/blocks/{rng.randint(1, max(1, height + 2))}", query, [], b"")

    def _make_tx_status(self, rng: random.Random, height: int) -> _Request:
        return _Request("GET", f"/v1/txs/{rng.randbytes(32).hex()}", [], [], b"")

    def _make_query(self, rng: random.Random, height: int) -> _Request:
        spec = rng.choice(self.queries)
        query = [
            (param["name"], str(self._value(rng, param)))
            for param in spec["params"]
            if param.get("required") or rng.random() < 0.5
        ]
        return _Request("GET", f"/v1/carbon/{spec['name']}", query, [], b"")

    def _make_state(self, rng: random.Random, height: int) -> _Request:
        key = rng.choice([f"org/{rng.choice(ORGS)}", "params", "0x" + rng.randbytes(8).hex(), "k"])
        if rng.random() < 0.5:
            query = [("limit", str(rng.randint(1, 1000)))]
            if rng.random() < 0.5:
                query.append(("start_after", str(rng.randint(0, height + 5))))
            return _Request("GET", f"/v1/state/{key}/history", query, [], b"")
        return _Request("GET", f"/v1/state/{key}/proof", [], [], b"")

    def _make_events(self, rng: random.Random, height: int) -> _Request:
        ids = ",".join(rng.randbytes(32).hex() for _ in range(rng.randint(0, 3)))
        return _Request("GET", "/v1/events", [("tx", ids)] if ids else [], [], b"")

    def _make_tx_json(self, rng: random.Random, height: int) -> _Request:
        document = transaction_to_json(self._transaction(rng, height))
        body = json.dumps(document).encode()
        return _Request("POST", "/v1/txs", [], [("Content-Type", "application/json")], body, document)

    def _make_tx_msgpack(self, rng: random.Random, height: int) -> _Request:
        raw = self._transaction(rng, height).raw
        return _Request("POST", "/v1/txs", [], [("Content-Type", "application/msgpack")], raw)

    def _make_batch_json(self, rng: random.Random, height: int) -> _Request:
        document = [transaction_to_json(self._transaction(rng, height)) for _ in range(self._batch_size(rng))]
        body = json.dumps(document).encode()
        return _Request("POST", "/v1/txs", [], [("Content-Type", "application/json")], body, document)

    def _make_batch_msgpack(self, rng: random.Random, height: int) -> _Request:
        raws = [self._transaction(rng, height).raw for _ in range(self._batch_size(rng))]
        return _Request("POST", "/v1/txs", [], [("Content-Type", "application/msgpack")], codec.encode(raws))

    def _batch_size(self, rng: random.Random) -> int:
        return rng.choice((0, 1, 2, 5, 20))

    def _transaction(self, rng: random.Random, height: int) -> Any:
        spec = rng.choice(self.functions)
        org = rng.choice(ORGS)
        key = self._key(org, "admin" if rng.random() < 0.85 else "client")
        args = {
            arg["name"]: self._value(rng, arg)
            for arg in spec["args"]
            if arg.get("required") or rng.random() < 0.5
        }
        body = TxBody(
            chain_id=self.chain_id if rng.random() < 0.95 else "other-devnet",
            chaincode="carbon",
            function=spec["name"],
            args=args,
            sender_org=org,
            sender_key=key.public_key,
            nonce=rng.getrandbits(64),
            valid_until=height + rng.choice((1, 10, 500, 999)),
        )
        return sign_transaction(body, key)

    def _key(self, org: str, kind: str) -> SigningKey:
        if (org, kind) not in self._keys:
            self._keys[org, kind] = dev_admin_key(org) if kind == "admin" else dev_client_key(org)
        return self._keys[org, kind]

    def _value(self, rng: random.Random, arg: dict[str, Any]) -> Any:
        kind = arg["type"]
        if kind == "org":
            return rng.choice(ORGS)
        if kind == "int":
            low, high = arg.get("minimum", 0), arg.get("maximum", 10**9)
            return rng.choice([low, high, rng.randint(low, min(high, low + 1000))])
        if kind == "bool":
            return rng.random() < 0.5
        if kind == "enum":
            return rng.choice(arg["choices"])
        if kind == "hex32":
            return rng.randbytes(32).hex()
        if kind == "hex32_list":
            return [rng.randbytes(32).hex() for _ in range(rng.randint(1, 3))]
        if kind == "id":
            return "".join(rng.choice(string.ascii_lowercase + string.digits + "-") for _ in range(8))
        return "".join(rng.choice(string.ascii_letters + " ") for _ in range(rng.randint(1, 40)))


# --- mutations of the request's structure -------------------------------------------------------------------


def _mutate_method(rng: random.Random, request: _Request) -> None:
    request.method = rng.choice(METHODS)


def _mutate_path(rng: random.Random, request: _Request) -> None:
    segments = request.path.split("/")
    position = rng.randrange(1, len(segments)) if len(segments) > 1 else 0
    segments[position] = _quote(rng, rng.choice(NASTY_TEXT))
    if rng.random() < 0.2:
        segments.append(_quote(rng, rng.choice(NASTY_TEXT)))
    request.path = "/".join(segments)


def _mutate_query(rng: random.Random, request: _Request) -> None:
    choice = rng.random()
    if request.query and choice < 0.4:
        position = rng.randrange(len(request.query))
        request.query[position] = (request.query[position][0], rng.choice(NASTY_TEXT))
    elif request.query and choice < 0.55:
        request.query.pop(rng.randrange(len(request.query)))
    elif choice < 0.7:
        request.query += [(f"p{i}", "v") for i in range(rng.choice((1, 40, 200)))]
    elif request.query and choice < 0.85:
        request.query.append(rng.choice(request.query))
    else:
        request.query.append((rng.choice(NASTY_TEXT), rng.choice(NASTY_TEXT)))


def _mutate_headers(rng: random.Random, request: _Request) -> None:
    choice = rng.random()
    if choice < 0.35:
        request.headers = [h for h in request.headers if h[0] != "Content-Type"]
        request.headers.append(("Content-Type", rng.choice(CONTENT_TYPES)))
    elif choice < 0.55:
        request.headers.append(("Content-Encoding", rng.choice(["gzip", "deflate", "br", "zstd", "x", ""])))
    elif choice < 0.7:
        request.chunked = True
    elif choice < 0.8:
        request.headers.append(("X-" + "h" * rng.randint(1, 100), "v" * rng.choice((1, 1000, 9000))))
    elif choice < 0.9:
        request.headers.append(("Expect", "100-continue"))
    else:
        request.headers.append(("Connection", rng.choice(["keep-alive", "upgrade", "close, upgrade"])))
        request.headers.append(("Upgrade", rng.choice(["websocket", "h2c", "x"])))


def _mutate_json(rng: random.Random, request: _Request) -> None:
    """Change one value of the JSON document (or, without one, give the request a JSON body)."""
    if request.document is None:
        request.document = {"body": {}, "signature": ""}
        request.headers.append(("Content-Type", "application/json"))
    document = request.document
    parent, key = _random_slot(rng, document)
    choice = rng.random()
    if parent is None:
        request.document = _nasty_json(rng)
    elif choice < 0.6:
        parent[key] = _nasty_json(rng) if rng.random() < 0.9 else rng.choice(NASTY_TEXT)
    elif choice < 0.75 and isinstance(parent, dict):
        del parent[key]
    elif choice < 0.9 and isinstance(parent, dict):
        parent[rng.choice(NASTY_TEXT)] = _nasty_json(rng)
    else:
        depth = rng.choice((40, 200, 2000))
        parent[key] = "DEEP"
        text = json.dumps(request.document).replace('"DEEP"', "[" * depth + "]" * depth)
        request.body = text.encode()
        request.document = None
        return
    try:
        request.body = json.dumps(request.document).encode("utf-8", "surrogatepass")
    except ValueError:  # an integer too long for str(): write the digits by hand
        request.body = json.dumps(request.document, default=str).encode()


def _nasty_json(rng: random.Random) -> Any:
    """A fresh copy (the containers are mutated later, and must not be shared between inputs)."""
    return copy.deepcopy(rng.choice(NASTY_JSON))


def _mutate_msgpack(rng: random.Random, request: _Request) -> None:
    """Re-encode the msgpack transaction non-canonically, or with a changed field."""
    try:
        outer = msgpack.unpackb(request.body, raw=False)
    except Exception:
        outer = {"body": b"", "signature": b""}
    if not isinstance(outer, dict):
        outer = {"value": outer}
    choice = rng.random()
    if choice < 0.3 and isinstance(outer.get("body"), bytes):
        try:
            body = msgpack.unpackb(outer["body"], raw=False)
            if isinstance(body, dict) and body:
                body[rng.choice(list(body))] = rng.choice(
                    [None, -1, 2**64 - 1, "x", b"\x00" * 40, [1], {"a": 1}]
                )
            outer["body"] = msgpack.packb(body, use_bin_type=rng.random() < 0.5)
        except Exception:
            outer["body"] = rng.randbytes(20)
    elif choice < 0.5:
        outer["signature"] = rng.choice([b"", bytes(64), bytes(63), "00" * 64, None, rng.randbytes(64)])
    elif choice < 0.6:
        outer["extra"] = 1
    elif choice < 0.7:
        outer = [outer.get("body"), outer.get("signature")]  # type: ignore[assignment]
    request.body = msgpack.packb(outer, use_bin_type=rng.random() < 0.7)
    if not any(h == ("Content-Type", "application/msgpack") for h in request.headers):
        request.headers.append(("Content-Type", "application/msgpack"))


def _mutate_length(rng: random.Random, request: _Request) -> None:
    """A Content-Length that lies: shorter (the rest reads as the next request) or longer (it never ends)."""
    true_length = len(request.body)
    if rng.random() < 0.5 and true_length:
        request.headers.append(("Content-Length", str(rng.randrange(true_length))))
    else:
        request.headers.append(("Content-Length", str(true_length + rng.choice((1, 100, 10**6)))))


_REQUEST_MUTATIONS = [
    _mutate_method,
    _mutate_path,
    _mutate_path,
    _mutate_query,
    _mutate_query,
    _mutate_headers,
    _mutate_headers,
    _mutate_json,
    _mutate_json,
    _mutate_json,
    _mutate_msgpack,
    _mutate_msgpack,
    _mutate_length,
]


def _mutate_bytes(rng: random.Random, raw: bytes) -> tuple[bytes, str]:
    data = bytearray(raw)
    choice = rng.random()
    if choice < 0.3:
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(data))
            data[position] ^= 1 << rng.randrange(8)
        return bytes(data), "bit_flips"
    if choice < 0.5:
        cut = rng.randrange(len(data))
        return bytes(data[:cut]), "truncated"
    if choice < 0.7:
        position = rng.randrange(len(data))
        return bytes(data[:position] + rng.randbytes(rng.randint(1, 64)) + data[position:]), "inserted"
    if choice < 0.85:
        start = rng.randrange(len(data))
        return bytes(data[:start] + data[start + rng.randint(1, 64) :]), "deleted"
    return bytes(data + data[: rng.randrange(1, len(data))]), "duplicated_tail"


def _random_slot(rng: random.Random, document: Any) -> tuple[Any, Any]:
    """A (container, key) inside the JSON document, or (None, None) for the document itself."""
    slots: list[tuple[Any, Any]] = [(None, None)]
    stack = [document]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            slots.append((node, key))
            if isinstance(value, dict | list):
                stack.append(value)
    return rng.choice(slots)


def _quote(rng: random.Random, text: str) -> str:
    """A path or query piece: percent-encoded (often), or raw bytes the server must reject cleanly."""
    if rng.random() < 0.7:
        return "".join(
            c if c.isalnum() else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
            for c in text
        )
    return text


def _serialise(request: _Request) -> bytes:
    target = request.path
    if request.query:
        target += "?" + "&".join(f"{_piece(k)}={_piece(v)}" for k, v in request.query)
    lines = [f"{request.method} {target} HTTP/1.1", "Host: fuzz", "Connection: close"]
    headers = list(request.headers)
    body = request.body
    if request.chunked:
        headers.append(("Transfer-Encoding", "chunked"))
        body = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in _split(body)) + b"0\r\n\r\n"
    elif body and not any(name.lower() == "content-length" for name, _ in headers):
        headers.append(("Content-Length", str(len(body))))
    lines += [f"{name}: {value}" for name, value in headers]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogatepass")
    return head + body


def _is_complete(raw: bytes) -> bool:
    """Whether the server has the whole first request and closes after answering it (so an answer is due)."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = raw[:end].lower().split(b"\r\n")
    if b"connection: close" not in head:
        return False
    lengths = [line.split(b":", 1)[1].strip() for line in head if line.startswith(b"content-length:")]
    body = raw[end + 4 :]
    if any(line.startswith(b"transfer-encoding:") for line in head):
        return _is_chunked_complete(body)
    if not lengths:
        return True
    if len(lengths) > 1 or not lengths[0].isdigit():
        return False  # the server refuses these, but whether before reading is its choice
    return len(body) >= int(lengths[0])


def _is_chunked_complete(body: bytes) -> bool:
    """Whether a chunked body reaches its last (empty) chunk, by the sizes it states."""
    position = 0
    while True:
        line_end = body.find(b"\r\n", position)
        if line_end < 0:
            return False
        try:
            size = int(body[position:line_end].split(b";")[0], 16)
        except ValueError:
            return True  # malformed: the server rejects it at once
        if size == 0:  # the last chunk, then trailers (usually none) and an empty line
            return body.find(b"\r\n\r\n", line_end) >= 0
        position = line_end + 2 + size + 2
        if position > len(body):
            return False


def _piece(text: str) -> str:
    return "".join(
        c if c.isalnum() or c in "-_.~%," else f"%{ord(c):02X}" if ord(c) < 128 else c for c in text
    )


def _split(body: bytes) -> list[bytes]:
    return [body[i : i + 1000] for i in range(0, len(body), 1000)] if body else []


# --- sending and judging ------------------------------------------------------------------------------------


@dataclass
class Answer:
    statuses: list[int]  # every response the server sent on the connection
    error_codes: list[str | None]  # the JSON `error` of each, when there is one
    hung: bool = False  # a complete request got no answer within ANSWER_TIMEOUT_S


async def send(host: str, port: int, item: HttpInput) -> Answer:
    """Send one input on a fresh connection and read every response until the server closes."""
    reader, writer = await asyncio.open_connection(host, port)
    data = b""
    try:
        writer.write(item.raw)
        await writer.drain()
        timeout_s = ANSWER_TIMEOUT_S if item.complete else INCOMPLETE_WAIT_S
        try:
            async with asyncio.timeout(timeout_s):
                while chunk := await reader.read(65536):
                    data += chunk
                    if data.startswith(b"HTTP/1.1 101") and b"\r\n\r\n" in data:
                        break  # upgraded to a WebSocket, which stays open: the answer is in
        except TimeoutError:
            if item.complete and not data:
                return Answer([], [], hung=True)
    except ConnectionError:
        pass
    finally:
        writer.transport.abort()
    return _parse_responses(data, head_request=item.method == "HEAD")


def _parse_responses(data: bytes, *, head_request: bool) -> Answer:
    statuses: list[int] = []
    codes: list[str | None] = []
    while data.startswith(b"HTTP/1."):
        end = data.find(b"\r\n\r\n")
        if end < 0:
            break
        head = data[:end].decode("latin-1").split("\r\n")
        status = int(head[0].split(" ")[1])
        headers = {
            line.split(":", 1)[0].strip().lower(): line.split(":", 1)[1].strip()
            for line in head[1:]
            if ":" in line
        }
        length = 0 if head_request or status in (101, 204, 304) else int(headers.get("content-length", "0"))
        body = data[end + 4 : end + 4 + length]
        statuses.append(status)
        codes.append(_error_code(body))
        data = data[end + 4 + length :]
        if status == 101:
            break
    return Answer(statuses, codes)


def _error_code(body: bytes) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document.get("error") if isinstance(document, dict) else None


def is_acceptable(item: HttpInput, answer: Answer) -> bool:
    """The oracle: no hang on a complete request, and no 5xx but the documented 503s."""
    if answer.hung:
        return False
    for status, code in zip(answer.statuses, answer.error_codes, strict=True):
        if status < 500:
            continue
        if status == 503 and (code in ("mempool_full", "not_ordering") or "/readyz" in item.path):
            continue
        return False
    return True
