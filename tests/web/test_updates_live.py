"""Live updates: a block committed while a page is open appears on it within 2 s, without a reload.

This module makes blocks while pages are open; the page tests before it (test_pages.py) read an idle chain,
so each transaction here waits until the chain is idle again (the blocks that certify it committed)."""

from __future__ import annotations

import time

import pytest

from client import CarbonClient
from core.devkeys import dev_client_key
from tests.web.browser import Page
from tests.web.webnet import WebNetwork

pytestmark = pytest.mark.asyncio(loop_scope="session")

APPEAR_WITHIN_S = 2.0


async def commit_a_transaction(network: WebNetwork) -> tuple[str, int, float]:
    """Submit a deposit and return its id, its height and the moment the node reported it committed."""
    async with CarbonClient(network.url) as client:
        bank = await client.signer(org="bank", key=dev_client_key("bank"))
        tx = bank.build(
            "deposit_cash", {"org": "ent-a", "amount_fen": 100, "bank_ref": f"live-{time.time_ns()}"}
        )
        status = await client.submit_and_wait(tx)
        committed_at = time.monotonic()
        assert status.is_ok and status.height is not None, status
        await client.wait_for_height(status.height + network.cluster.genesis.consensus.pipeline_depth)
        return status.tx_id, status.height, committed_at


async def test_a_new_block_and_its_transaction_appear_on_the_overview(
    page: Page, network: WebNetwork
) -> None:
    await page.goto(network.url + "/")
    await page.wait_for("document.getElementById('live-state').textContent === 'live'")
    await page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    tx_id, height, committed_at = await commit_a_transaction(network)
    remaining = APPEAR_WITHIN_S - (time.monotonic() - committed_at)
    await page.wait_for(
        f"document.querySelector('#recent-blocks tr[data-height=\"{height}\"]')", timeout_s=remaining
    )
    await page.wait_for(
        f"document.querySelector('#live-txs tr[data-tx-id=\"{tx_id}\"]')", timeout_s=max(remaining, 0.1)
    )
    assert time.monotonic() - committed_at <= APPEAR_WITHIN_S
    assert await page.evaluate("window.__sameDocument === true")
    assert int(await page.text("#tip-height")) >= height
    row = await page.texts(f"#live-txs tr[data-tx-id='{tx_id}'] td")
    assert row[2:] == ["bank", "deposit_cash", "ok"]


async def test_the_block_list_follows_the_chain(page: Page, network: WebNetwork) -> None:
    await page.goto(network.url + "/blocks")
    await page.wait_for("document.getElementById('live-state').textContent === 'live'")
    await page.evaluate("window.__sameDocument = true")
    _, height, committed_at = await commit_a_transaction(network)
    remaining = APPEAR_WITHIN_S - (time.monotonic() - committed_at)
    await page.wait_for(
        f"document.querySelector('#blocks-table tr[data-height=\"{height}\"]')", timeout_s=remaining
    )
    assert await page.evaluate("window.__sameDocument === true")
    proposer = await page.wait_for(
        f"document.querySelector('#blocks-table tr[data-height=\"{height}\"] td:nth-child(4) a')?.textContent"
    )
    assert proposer in {v.org for v in network.cluster.genesis.validators}
