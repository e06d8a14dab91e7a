"""A Python client of the node API: build, sign and submit transactions, wait for commits, run queries.

Used by the CLI and usable by enterprises' own systems:

    async with CarbonClient("http://127.0.0.1:7200") as client:
        signer = await client.signer(org="ent-a", key=load_key(Path("ent-a.json")))
        result = await client.submit_and_wait(signer.build("transfer_allowances", {...}))

Every API error becomes an ApiError (or TxRejected for a rejected transaction) with the server's code.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from core import codec
from core.errors import CarbonchainError
from core.keys import SigningKey
from core.tx import SignedTx, TxBody, sign_transaction

DEFAULT_VALIDITY_BLOCKS = 500
CONNECTIONS_MAX = 256  # each event stream holds one; prefer wait_for_commits for many transactions
EVENT_FILTER_IDS_MAX = 100  # transaction ids one event stream filters on (the API limit; URLs stay < 8 KiB)
MSGPACK_TYPE = "application/msgpack"
BATCH_MAX = 500  # transactions per request of submit_many (the node takes up to 1000)


class ApiError(CarbonchainError):
    """The node answered with an error, or could not be reached."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if status == 0 else f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class TxRejected(ApiError):
    """The node refused a transaction at admission (bad signature, replay, mempool full, ...)."""


@dataclass(frozen=True)
class Submission:
    """What the node answered for one transaction of a batch."""

    tx_id: str
    error: str | None  # None: accepted (pending); else the rejection code, as a single submission's
    message: str = ""

    @property
    def accepted(self) -> bool:
        return self.error is None


class CommitTimeout(CarbonchainError):
    """A transaction was accepted but not seen committed within the time allowed."""


@dataclass(frozen=True, slots=True)
class TxStatus:
    tx_id: str
    status: str  # "pending", "committed" or "unknown"
    height: int | None = None
    index: int | None = None
    code: str | None = None  # "ok" or the chaincode failure code, once committed
    message: str = ""

    @property
    def is_committed(self) -> bool:
        return self.status == "committed"

    @property
    def is_ok(self) -> bool:
        return self.is_committed and self.code == "ok"

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> TxStatus:
        return cls(
            tx_id=document["tx_id"],
            status=document["status"],
            height=document.get("height"),
            index=document.get("index"),
            code=document.get("code"),
            message=document.get("message", ""),
        )


@dataclass(frozen=True)
class Signer:
    """Builds transactions for one organisation's key on one chain."""

    chain_id: str
    org: str
    key: SigningKey
    height: int  # the chain height when the signer was made; valid_until counts from it
    validity_blocks: int = DEFAULT_VALIDITY_BLOCKS

    def build(self, function: str, args: dict[str, Any], *, chaincode: str = "carbon") -> SignedTx:
        body = TxBody(
            chain_id=self.chain_id,
            chaincode=chaincode,
            function=function,
            args=args,
            sender_org=self.org,
            sender_key=self.key.public_key,
            nonce=secrets.randbits(64),
            valid_until=self.height + self.validity_blocks,
        )
        return sign_transaction(body, self.key)


class CarbonClient:
    def __init__(self, base_url: str, *, timeout_s: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> CarbonClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=CONNECTIONS_MAX)
            self._session = aiohttp.ClientSession(timeout=self._timeout, connector=connector)
        return self._session

    # --- reads ------------------------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._get_json("/v1/status")
        return result

    async def is_ready(self) -> bool:
        """True when the node answers /readyz with 200 (connected to a quorum, not catching up)."""
        try:
            async with self.session.get(self.base_url + "/readyz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    async def readiness(self) -> dict[str, Any]:
        """GET /readyz: {"ready": bool, "reason": str | None} (a 503 is an answer here, not an error)."""
        try:
            async with self.session.get(self.base_url + "/readyz") as response:
                document: dict[str, Any] = await _json_body(response)
                if response.status not in (200, 503):
                    raise ApiError(
                        response.status, document.get("error", "error"), document.get("message", "")
                    )
                return document
        except aiohttp.ClientError as exc:
            raise ApiError(0, "unreachable", f"{self.base_url}: {exc}") from None

    async def get_transaction(self, tx_id: str) -> TxStatus:
        return TxStatus.from_json(await self._get_json(f"/v1/txs/{tx_id}"))

    async def block(self, height: int | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self._get_json(f"/v1/blocks/{'latest' if height is None else height}")
        return result

    async def block_bytes(self, height: int) -> bytes:
        return await self._get_bytes(f"/v1/blocks/{height}", params={"format": "msgpack"})

    async def query(self, name: str, **params: Any) -> Any:
        clean = {
            k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items() if v is not None
        }
        return await self._get_json(f"/v1/carbon/{name}", params=clean)

    async def key_history(
        self, key: str, *, start_after: int | None = None, limit: int = 100
    ) -> dict[str, Any]:
        params = {"limit": str(limit)} | ({} if start_after is None else {"start_after": str(start_after)})
        result: dict[str, Any] = await self._get_json(f"/v1/state/{_quote(key)}/history", params=params)
        return result

    async def key_proof(self, key: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._get_json(f"/v1/state/{_quote(key)}/proof")
        return result

    async def key_history_all(self, key: str, *, versions_max: int = 100_000) -> list[dict[str, Any]]:
        """Every version of a state key, oldest first (follows the pages; at most versions_max)."""
        versions: list[dict[str, Any]] = []
        cursor: int | None = None
        while len(versions) < versions_max:
            page = await self.key_history(key, start_after=cursor, limit=1000)
            versions += page["versions"]
            cursor = page.get("next_start_after")
            if cursor is None or not page["versions"]:
                break
        return versions[:versions_max]

    async def query_all(self, name: str, field: str, *, items_max: int = 100_000, **params: Any) -> Any:
        """A paged query with every page's `field` list joined (pages follow `next`); other fields from page 1."""
        first: dict[str, Any] = await self.query(name, **params, limit=1000)
        items = list(first[field])
        cursor = first.get("next")
        while cursor is not None and len(items) < items_max:
            page = await self.query(name, **params, limit=1000, start_after=cursor)
            items += page[field]
            cursor = page.get("next")
        return {**first, field: items[:items_max], "next": None}

    async def tx_result(self, status: TxStatus) -> dict[str, Any]:
        """The committed result of a transaction with its events: {"code", "message", "events"}."""
        if not status.is_committed or status.height is None or status.index is None:
            return {"code": status.code, "message": status.message, "events": []}
        block = await self.block(status.height)
        result: dict[str, Any] = block["txs"][status.index]["result"]
        return result

    async def wait_for_height(self, height: int, *, timeout_s: float = 30.0) -> dict[str, Any]:
        """Wait until the node has committed `height`; returns its status then (CommitTimeout if not)."""
        try:
            async with asyncio.timeout(timeout_s):
                delay = 0.05
                while True:
                    status = await self.status()
                    if int(status["height"]) >= height:
                        return status
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.5)
        except TimeoutError:
            raise CommitTimeout(f"the node did not reach height {height} within {timeout_s:.0f} s") from None

    # --- typed query helpers ----------------------------------------------------------------------------

    async def compliance(self, period: str) -> dict[str, Any]:
        """A period's whole compliance table: {"period": {...}, "rows": [...]}."""
        result: dict[str, Any] = await self.query_all("compliance", "rows", period=period)
        return result

    async def holdings(self, org: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.query("holdings", org=org)
        return result

    async def retirement(self, receipt: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.query("retirement", receipt=receipt)
        return result

    # --- writes -----------------------------------------------------------------------------------------

    async def signer(
        self, *, org: str, key: SigningKey, validity_blocks: int = DEFAULT_VALIDITY_BLOCKS
    ) -> Signer:
        status = await self.status()
        return Signer(status["chain_id"], org, key, int(status["height"]), validity_blocks)

    async def submit(self, tx: SignedTx) -> str:
        """Submit a signed transaction; returns its id once the node accepted it (HTTP 202)."""
        try:
            async with self.session.post(
                self.base_url + "/v1/txs", data=tx.raw, headers={"Content-Type": MSGPACK_TYPE}
            ) as response:
                document = await _json_body(response)
                if response.status != 202:
                    raise TxRejected(
                        response.status, document.get("error", "error"), document.get("message", "")
                    )
                return str(document["tx_id"])
        except aiohttp.ClientError as exc:
            raise ApiError(0, "unreachable", f"{self.base_url}: {exc}") from None

    async def submit_many(self, txs: Sequence[SignedTx], *, batch_max: int = BATCH_MAX) -> list[Submission]:
        """Submit signed transactions in batches (one request per `batch_max`); one Submission per
        transaction, in order: accepted (pending) or the code and message of its rejection."""
        results: list[Submission] = []
        for start in range(0, len(txs), batch_max):
            chunk = txs[start : start + batch_max]
            body = codec.encode([tx.raw for tx in chunk])
            try:
                async with self.session.post(
                    self.base_url + "/v1/txs", data=body, headers={"Content-Type": MSGPACK_TYPE}
                ) as response:
                    document = await _json_body(response)
                    if response.status != 200:
                        raise ApiError(
                            response.status, document.get("error", "error"), document.get("message", "")
                        )
            except aiohttp.ClientError as exc:
                raise ApiError(0, "unreachable", f"{self.base_url}: {exc}") from None
            for tx, entry in zip(chunk, document["results"], strict=True):
                results.append(Submission(tx.tx_id.hex(), entry.get("error"), entry.get("message", "")))
        return results

    async def wait_for_commit(self, tx_id: str, *, timeout_s: float = 30.0) -> TxStatus:
        """Wait for a transaction's commit through the event stream (checking its status first)."""
        url = self.base_url.replace("http", "ws", 1) + f"/v1/events?tx={tx_id}&blocks=0"
        try:
            async with asyncio.timeout(timeout_s), self.session.ws_connect(url, heartbeat=20) as socket:
                current = await self.get_transaction(tx_id)  # after subscribing, so no commit is missed
                if current.is_committed:
                    return current
                async for message in socket:
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        break
                    event = json.loads(message.data)
                    if event.get("type") == "tx" and event.get("tx_id") == tx_id:
                        return await self.get_transaction(tx_id)
                    if event.get("type") == "dropped":
                        break
            # The stream ended early (node restarting, or we were too slow): fall back to the status call.
            return await self._poll_commit(tx_id, timeout_s)
        except TimeoutError:
            raise CommitTimeout(f"transaction {tx_id} not committed within {timeout_s:.0f} s") from None
        except aiohttp.ClientError as exc:
            raise ApiError(0, "unreachable", f"{self.base_url}: {exc}") from None

    async def wait_for_commits(self, tx_ids: list[str], *, timeout_s: float = 60.0) -> dict[str, TxStatus]:
        """Wait for many transactions over one event stream per 100 ids; returns their final statuses."""
        chunks = [tx_ids[i : i + EVENT_FILTER_IDS_MAX] for i in range(0, len(tx_ids), EVENT_FILTER_IDS_MAX)]
        try:
            async with asyncio.timeout(timeout_s):
                results = await asyncio.gather(*(self._wait_chunk(chunk) for chunk in chunks))
        except TimeoutError:
            raise CommitTimeout(
                f"not all of {len(tx_ids)} transactions committed within {timeout_s:.0f} s"
            ) from None
        return {tx_id: status for chunk in results for tx_id, status in chunk.items()}

    async def _wait_chunk(self, tx_ids: list[str]) -> dict[str, TxStatus]:
        url = self.base_url.replace("http", "ws", 1) + "/v1/events?blocks=0&tx=" + ",".join(tx_ids)
        waiting = set(tx_ids)
        done: dict[str, TxStatus] = {}
        async with self.session.ws_connect(url, heartbeat=20, max_msg_size=0) as socket:
            for tx_id in tx_ids:  # after subscribing, so no commit is missed
                current = await self.get_transaction(tx_id)
                if current.is_committed:
                    done[tx_id] = current
                    waiting.discard(tx_id)
            while waiting:  # nothing to read when all committed before the stream started
                message = await socket.receive()
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                event = json.loads(message.data)
                if event.get("type") == "tx" and event.get("tx_id") in waiting:
                    waiting.discard(event["tx_id"])
                    done[event["tx_id"]] = TxStatus(
                        event["tx_id"],
                        "committed",
                        event["height"],
                        event["index"],
                        event["code"],
                        event["message"],
                    )
        for tx_id in list(waiting):  # the stream ended early: ask directly
            done[tx_id] = await self._poll_commit(tx_id, timeout_s=3600)
        return done

    async def events(
        self, *, from_height: int | None = None, org: str | None = None, blocks: bool = True
    ) -> AsyncIterator[dict[str, Any]]:
        """One /v1/events stream: with from_height, the committed blocks from there first, then live ones.
        Ends when the node closes it (after a {"type": "dropped"} message if we fell behind)."""
        params = {"blocks": "1" if blocks else "0"}
        if from_height is not None:
            params["from_height"] = str(from_height)
        if org is not None:
            params["org"] = org
        url = self.base_url.replace("http", "ws", 1) + "/v1/events?" + urlencode(params)
        try:
            async with self.session.ws_connect(url, heartbeat=20, max_msg_size=0) as socket:
                async for message in socket:
                    if message.type is not aiohttp.WSMsgType.TEXT:
                        break
                    yield json.loads(message.data)
        except aiohttp.WSServerHandshakeError:
            # The node refused the stream (e.g. replay_too_long) with a JSON error the upgrade hides: the
            # same request without the upgrade gets the answer, which _get_json raises as an ApiError.
            await self._get_json("/v1/events", params=params)
            raise ApiError(0, "unreachable", f"{url}: the event stream was refused") from None
        except aiohttp.ClientError as exc:
            raise ApiError(0, "unreachable", f"{self.base_url}: {exc}") from None

    async def follow_events(
        self, *, from_height: int = 1, org: str | None = None, blocks: bool = True, reconnects_max: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """Every committed event from `from_height` on, in order, each once, across lost connections and
        drops: it subscribes again from the height of the last event it yielded (the node replays that
        height again) and skips what it already yielded."""
        height = from_height
        seen: set[tuple[object, ...]] = set()  # events yielded at `height`: ("block",) or ("tx", index)
        for attempt in range(reconnects_max + 1):
            try:
                async for event in self.events(from_height=height, org=org, blocks=blocks):
                    if event.get("type") == "dropped":
                        break
                    key = ("block",) if event["type"] == "block" else ("tx", event["index"])
                    if event["height"] < height or (event["height"] == height and key in seen):
                        continue
                    if event["height"] > height:
                        height = event["height"]
                        seen = set()
                    seen.add(key)
                    yield event
            except ApiError as exc:
                if exc.status != 0:  # refused (e.g. replay_too_long): reconnecting would not help
                    raise
                await asyncio.sleep(min(0.1 * 2**attempt, 5.0))  # the node restarts, or a link broke
        raise ApiError(
            0, "unreachable", f"{self.base_url}: the event stream ended {reconnects_max + 1} times"
        )

    async def submit_and_wait(self, tx: SignedTx, *, timeout_s: float = 30.0) -> TxStatus:
        tx_id = await self.submit(tx)
        return await self.wait_for_commit(tx_id, timeout_s=timeout_s)

    # --- plumbing ---------------------------------------------------------------------------------------

    async def _poll_commit(self, tx_id: str, timeout_s: float) -> TxStatus:
        async with asyncio.timeout(timeout_s):
            delay = 0.05
            while True:
                current = await self.get_transaction(tx_id)
                if current.is_committed:
                    return current
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            async with self.session.get(self.base_url + path, params=params) as response:
                document = await _json_body(response)
                if response.status != 200:
                    raise ApiError(
                        response.status, document.get("error", "error"), document.get("message", "")
                    )
                return document
        except aiohttp.ClientError as exc:
            raise ApiError(0, "unreachable", f"{self.base_url}: {exc}") from None

    async def _get_bytes(self, path: str, params: dict[str, str] | None = None) -> bytes:
        try:
            async with self.session.get(self.base_url + path, params=params) as response:
                if response.status != 200:
                    document = await _json_body(response)
                    raise ApiError(
                        response.status, document.get("error", "error"), document.get("message", "")
                    )
                return await response.read()
        except aiohttp.ClientError as exc:
            raise ApiError(0, "unreachable", f"{self.base_url}: {exc}") from None


async def _json_body(response: aiohttp.ClientResponse) -> Any:
    try:
        return await response.json(content_type=None)
    except (json.JSONDecodeError, UnicodeDecodeError, aiohttp.ContentTypeError):
        text = (await response.text(errors="replace"))[:200]
        raise ApiError(response.status, "bad_response", f"not JSON: {text!r}") from None


def _quote(key: str) -> str:
    return quote(key, safe="")
