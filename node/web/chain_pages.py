"""The chain's pages: overview, blocks, a block, a transaction, a state key, search, and the genesis.

Each handler reads through the API backend (`get_status`, `get_block_json`, `get_transaction_status`,
`get_key_history`, `get_key_proof`, chaincode queries), so a page shows exactly what the API answers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from core.errors import InvalidInput
from node.api import QueryNotFound
from node.web.charts import compute_throughput_chart
from node.web.site import (
    PAGE_SIZE,
    SITE,
    Site,
    get_int,
    get_limit,
    get_text,
    is_hex_id,
    page,
    parse_hex_id,
    parse_int,
)

THROUGHPUT_MINUTES = 10
BLOCK_TXS_PAGE = 100  # transactions of one block shown per page
STATE_KEY_CHARS_MAX = 512


@page
async def overview(request: web.Request) -> web.Response:
    site = request.app[SITE]
    status = site.backend.get_status()
    tip = int(status["height"])
    recent = site.recent.page(tip, before=None, count=10)
    throughput = site.recent.throughput(tip, now_ms=site.now_ms(), minutes=THROUGHPUT_MINUTES)
    history = site.validator_history()
    validators = history.at(tip + 1)  # the set ordering the next height
    last_votes = site.recent.last_votes(tip, [v.number for v in validators.validators])
    latest = recent[0] if recent else None
    # An observer takes no part in views; the last commit certificate says which view committed it.
    view = status["view"] if status["view"] is not None else (latest.view if latest else None)
    primary = None
    if status["primary"] is not None:
        primary = history.by_number(int(status["primary"]))
    elif view is not None:
        primary = validators.primary(view)
    return site.render(
        "overview.html",
        page="overview",
        status=status,
        ready=site.backend.get_unready_reason() is None,
        view=view,
        view_source="this validator" if status["view"] is not None else "the last commit certificate",
        primary=primary,
        validators=validators.validators,
        validator_set=validators,
        history=history,
        last_votes=last_votes,
        quorum=validators.quorum,
        recent=recent,
        throughput=throughput,
        chart=compute_throughput_chart(throughput),
        minutes=THROUGHPUT_MINUTES,
    )


@page
async def blocks(request: web.Request) -> web.Response:
    site = request.app[SITE]
    tip = int(site.backend.get_status()["height"])
    before = get_int(request, "before", minimum=1)
    limit = get_limit(request)
    summaries = site.recent.page(tip, before=before, count=limit)
    older = summaries[-1].height if summaries and summaries[-1].height > 1 else None
    history = site.validator_history()
    return site.render(
        "blocks.html",
        page="blocks",
        tip=tip,
        summaries=summaries,
        older=older,
        newer=before is not None and before <= tip,
        limit=limit,
        orgs=history.orgs_by_number(),
        history=history,
    )


@page
async def block(request: web.Request) -> web.Response:
    site = request.app[SITE]
    height = parse_int(request.match_info["height"], "height", minimum=1)
    document = site.backend.get_block_json(height)
    if document is None:
        raise QueryNotFound(
            f"no block at height {height} (the chain is at {site.backend.get_status()['height']})"
        )
    start = get_int(request, "txs_from", default=0, maximum=10**6)
    assert start is not None
    txs = document["txs"]
    shown = txs[start : start + BLOCK_TXS_PAGE]
    certificate = document["certificate"]
    validators = site.validator_history().at(height)
    signers = (
        []
        if certificate is None
        else [(vote, validators.member(int(vote["validator"]))) for vote in certificate["votes"]]
    )
    return site.render(
        "block.html",
        page="blocks",
        block=document,
        header=document["header"],
        txs=shown,
        txs_from=start,
        txs_next=start + BLOCK_TXS_PAGE if start + BLOCK_TXS_PAGE < len(txs) else None,
        certificate=certificate,
        signers=signers,
        quorum=validators.quorum,
        proposer=validators.member(int(document["header"]["proposer"])),
        validators=validators,
        tip=int(site.backend.get_status()["height"]),
    )


@page
async def transaction(request: web.Request) -> web.Response:
    site = request.app[SITE]
    tx_id = parse_hex_id(request.match_info["tx_id"], "a transaction id")
    status = site.backend.get_transaction_status(bytes.fromhex(tx_id))
    tx: dict[str, Any] | None = None
    block_time_ms = None
    if status["status"] == "committed":
        document = site.backend.get_block_json(int(status["height"]))
        if document is not None:
            tx = document["txs"][int(status["index"])]
            block_time_ms = int(document["header"]["time_ms"])
    elif status["status"] == "unknown":
        raise QueryNotFound(f"no transaction {tx_id} is committed or pending on this node")
    return site.render(
        "transaction.html", page="blocks", status=status, tx=tx, tx_id=tx_id, block_time_ms=block_time_ms
    )


@page
async def state_key(request: web.Request) -> web.Response:
    site = request.app[SITE]
    key_text = get_text(request, "key")
    if key_text is None:
        raise InvalidInput("which state key? e.g. /state?key=org/ent-a")
    key = _parse_state_key(key_text)
    after = get_int(request, "after")
    limit = get_limit(request, default=PAGE_SIZE)
    proof = site.backend.get_key_proof(key)
    history = site.backend.get_key_history(key, after, limit)
    return site.render(
        "state.html",
        page="search",
        key=key_text,
        proof=proof,
        history=history,
        limit=limit,
        depth=site.genesis.consensus.pipeline_depth,
    )


def _parse_state_key(text: str) -> bytes:
    """As the API reads keys: UTF-8 text, or hex after `0x`."""
    if len(text) > STATE_KEY_CHARS_MAX:
        raise InvalidInput(f"state key longer than {STATE_KEY_CHARS_MAX} characters")
    if text.startswith("0x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            raise InvalidInput("a state key after 0x must be hex") from None
    return text.encode("utf-8")


@page
async def search(request: web.Request) -> web.StreamResponse:
    """A transaction id, a height, an organisation, a period, a project or a state key."""
    site = request.app[SITE]
    query = (get_text(request, "q") or "").strip()
    if not query:
        return site.render("search.html", page="search", query="", tried=[])
    target = _find(site, query)
    if target is not None:
        raise web.HTTPSeeOther(target)
    tried = ["transaction id" if is_hex_id(query) else None, "block height" if query.isdigit() else None]
    return site.render(
        "search.html",
        page="search",
        query=query,
        tried=[t for t in tried if t] + ["organisation", "compliance period", "project", "state key"],
        http_status=404,
    )


def _find(site: Site, query: str) -> str | None:
    if is_hex_id(query):
        status = site.backend.get_transaction_status(bytes.fromhex(query))
        if status["status"] != "unknown":
            return f"/txs/{query}"
        if _exists(site, "retirement", receipt=query):
            return f"/receipts/{query}"
    if query.isdigit() and len(query) <= 19:
        height = int(query)
        if 1 <= height <= int(site.backend.get_status()["height"]):
            return f"/blocks/{height}"
    if _exists(site, "organisation", org=query):
        return f"/orgs/{query}"
    if _exists(site, "period", period=query):
        return f"/compliance/{query}"
    if _exists(site, "project", project=query):
        return f"/offsets/projects/{query}"
    if "/" in query or query.startswith("0x"):
        key = _parse_state_key(query)
        proof = site.backend.get_key_proof(key)
        if proof["value"] is not None or site.backend.get_key_history(key, None, 1)["versions"]:
            return "/state?" + urlencode({"key": query})
    return None


def _exists(site: Site, query: str, **params: str) -> bool:
    try:
        site.query(query, **params)
    except (QueryNotFound, InvalidInput):
        return False
    return True


async def genesis_json(request: web.Request) -> web.Response:
    """The validated genesis document, every default spelled out: its canonical encoding hashes to the
    genesis hash, which the browser recomputes before it trusts the validator keys in it."""
    return web.json_response(request.app[SITE].genesis.model_dump(mode="json"))
