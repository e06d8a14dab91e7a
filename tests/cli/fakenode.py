"""A fake node for audit tests: serves /v1/status and /v1/blocks/{h}?format=msgpack from given bytes.

Built from real blocks of a real network, then doctored by the test (tampered block, forged certificate,
removed or reordered transactions, wrong certified roots), so `audit verify` meets exactly the lie under test.
Runs an aiohttp server on 127.0.0.1 in a thread of its own, because the CLI under test runs its own event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from types import TracebackType
from typing import Any

from aiohttp import web

from core import codec
from core.block import (
    Block,
    CertifiedBlock,
    CommitCertificate,
    compute_commit_digest,
    decode_certified_block,
    encode_certified_block,
)
from core.devkeys import dev_node_key
from core.tx import SignedTx, compute_tx_id


class FakeNode:
    def __init__(self, blocks: dict[int, bytes], status: dict[str, Any]) -> None:
        self.blocks = blocks
        self.status = status
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FakeNode:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake node did not start")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_get("/v1/status", self._status)
        app.router.add_get("/v1/blocks/{height}", self._block)
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.status)

    async def _block(self, request: web.Request) -> web.Response:
        raw = self.blocks.get(int(request.match_info["height"]))
        if raw is None:
            return web.json_response({"error": "not_found", "message": "no such block"}, status=404)
        return web.Response(body=raw, content_type="application/msgpack")


# --- doctoring ------------------------------------------------------------------------------------------------


def decode_chain(blocks: dict[int, bytes]) -> dict[int, CertifiedBlock]:
    return {height: decode_certified_block(raw) for height, raw in blocks.items()}


def encode_chain(chain: dict[int, CertifiedBlock]) -> dict[int, bytes]:
    return {height: encode_certified_block(block) for height, block in chain.items()}


def with_txs(certified: CertifiedBlock, txs: tuple[SignedTx, ...], results: Any = None) -> CertifiedBlock:
    """The same header and certificate with other transactions (what a lying node serves)."""
    block = Block(certified.block.header, txs)
    return CertifiedBlock(
        block, certified.certificate, certified.results if results is None else tuple(results)
    )


def alter_args(tx: SignedTx, **changes: Any) -> SignedTx:
    """A transaction with changed arguments and the original signature (which no longer matches)."""
    body = dataclasses.replace(tx.body, args={**dict(tx.body.args), **changes})
    body_bytes = codec.encode(body.to_wire())
    raw = codec.encode({"body": body_bytes, "signature": tx.signature})
    return SignedTx(body, body_bytes, tx.signature, compute_tx_id(body_bytes), raw)


def certify(block: Block, view: int, validators: int) -> CommitCertificate:
    """A commit certificate signed by a quorum of the devnet's well-known validator keys (colluding validators)."""
    quorum = validators - (validators - 1) // 3
    digest = compute_commit_digest(block.header.chain_id, view, block.header.height, block.block_hash)
    votes = tuple((i, dev_node_key("validator", i).sign(digest)) for i in range(quorum))
    return CommitCertificate(view, block.header.height, block.block_hash, votes)


def recertify_from(
    chain: dict[int, CertifiedBlock], height: int, validators: int
) -> dict[int, CertifiedBlock]:
    """Re-link and re-sign every block from `height` on, as a colluding quorum would after rewriting history."""
    result = dict(chain)
    for h in sorted(k for k in result if k >= height):
        certified = result[h]
        header = certified.block.header
        if h > height:
            header = dataclasses.replace(header, prev_hash=result[h - 1].block.block_hash)
        block = Block(header, certified.block.txs)
        result[h] = CertifiedBlock(
            block, certify(block, certified.certificate.view, validators), certified.results
        )
    return result
