"""Every dashboard page in a real browser against a real network: the values equal the API's, hostile
strings stay text, nothing breaks the Content-Security-Policy, pages page, and they work by keyboard and at
phone width. Screenshots of the main pages are written as the tests go (tests/web/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
import pytest

from core.units import format_fen
from node.web.render import CONTENT_SECURITY_POLICY
from tests.web.browser import Page
from tests.web.webnet import HOSTILE_BENEFICIARY, HOSTILE_NAME, HOSTILE_ORG, WebNetwork, get_json

pytestmark = pytest.mark.asyncio(loop_scope="session")

MAIN_PAGES = ("/", "/blocks", "/orgs", "/compliance", "/offsets", "/market", "/governance", "/verify")


def tonnes(amount: int) -> str:
    return f"{amount:,} t"


async def open_page(page: Page, network: WebNetwork, path: str) -> None:
    await page.goto(network.url + path)
    assert await page.csp_violations() == [], f"{path} broke the Content-Security-Policy"


async def verdict(page: Page) -> str:
    """The verification panel's result once it has one other than waiting, with its reason if it failed."""
    result = await page.wait_for(
        "['verified', 'failed', 'unavailable'].includes(document.getElementById('verification').dataset.result)"
        " && document.getElementById('verification').dataset.result"
    )
    return "verified" if result == "verified" else f"{result}: {await page.text('#verdict')}"


async def test_every_page_serves_the_security_headers_and_obeys_them(page: Page, network: WebNetwork) -> None:
    async with aiohttp.ClientSession() as session:
        for path in (*MAIN_PAGES, "/blocks/1", "/static/js/dashboard.js", "/v1/status"):
            async with session.get(network.url + path) as response:
                assert response.status == 200, path
                assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
                assert response.headers["X-Content-Type-Options"] == "nosniff"
    for path in MAIN_PAGES:
        await open_page(page, network, path)
        inline = await page.evaluate(
            "[...document.scripts].filter(s => !s.src && s.type !== 'application/json').length"
            " + document.querySelectorAll('style, [style]').length"
        )
        assert inline == 0, f"{path} has inline script or style"


async def test_overview_shows_the_status_the_api_reports(
    page: Page, network: WebNetwork, screenshots: Path
) -> None:
    await open_page(page, network, "/")
    status = await get_json(network.url + "/v1/status")
    assert await page.text("#tip-height") == str(status["height"])
    assert await page.evaluate("document.getElementById('tip-hash').title") == status["last_block_hash"]
    assert await page.text("#peers") == str(status["peers"])
    assert await page.text("#readiness") == "ready"
    latest = await get_json(network.url + "/v1/blocks/latest")
    signers = {vote["validator"] for vote in latest["certificate"]["votes"]}
    last_votes = await page.texts("tr[data-validator] td:nth-child(4)")
    assert len(last_votes) == len(network.cluster.genesis.validators)
    for index in signers:  # whoever signed the tip's certificate last voted at the tip
        assert f"#{status['height']}" in last_votes[index]
    rows = await page.evaluate(
        "[...document.querySelectorAll('#recent-blocks tr[data-height]')].map(r => +r.dataset.height)"
    )
    assert rows == list(range(status["height"], status["height"] - 10, -1))
    await page.wait_for("document.getElementById('live-state').textContent === 'live'")
    await page.screenshot(screenshots / "overview.png")


async def test_block_list_pages_back_through_the_chain(
    page: Page, network: WebNetwork, screenshots: Path
) -> None:
    status = await get_json(network.url + "/v1/status")
    await open_page(page, network, "/blocks?limit=5")
    first = await page.evaluate(
        "[...document.querySelectorAll('#blocks-table tr[data-height]')].map(r => +r.dataset.height)"
    )
    assert first == list(range(status["height"], status["height"] - 5, -1))
    counts = await page.texts("#blocks-table tr[data-height] td.num")
    for height, count in zip(first, counts, strict=True):
        block = await get_json(f"{network.url}/v1/blocks/{height}")
        assert count == str(block["header"]["tx_count"])
    await page.follow("document.querySelector('a[rel=next]').click()")
    assert "before=" in await page.evaluate("location.search")
    second = await page.evaluate(
        "[...document.querySelectorAll('#blocks-table tr[data-height]')].map(r => +r.dataset.height)"
    )
    assert second == list(range(first[-1] - 1, first[-1] - 6, -1))
    await open_page(page, network, "/blocks")
    await page.screenshot(screenshots / "blocks.png")


async def test_block_page_shows_the_block_the_api_serves(
    page: Page, network: WebNetwork, screenshots: Path
) -> None:
    receipt = await get_json(f"{network.url}/v1/carbon/retirement?receipt={network.receipt}")
    height = receipt["height"]
    block = await get_json(f"{network.url}/v1/blocks/{height}")
    await open_page(page, network, f"/blocks/{height}")
    assert await page.text("#block-hash") == block["hash"]
    shown_ids = await page.evaluate(
        "[...document.querySelectorAll('#block-txs tr[data-tx-id]')].map(r => r.dataset.txId)"
    )
    assert shown_ids == [tx["tx_id"] for tx in block["txs"]]
    functions = await page.texts("#block-txs tr td:nth-child(4)")
    assert functions == [tx["function"] for tx in block["txs"]]
    signers = await page.evaluate(
        "[...document.querySelectorAll('#signers tr[data-signer]')].map(r => +r.dataset.signer)"
    )
    assert signers == [vote["validator"] for vote in block["certificate"]["votes"]]
    assert await verdict(page) == "verified"
    await page.screenshot(screenshots / "block.png")


async def test_transaction_page_shows_its_status_and_arguments(page: Page, network: WebNetwork) -> None:
    status = await get_json(f"{network.url}/v1/txs/{network.receipt}")
    await open_page(page, network, f"/txs/{network.receipt}")
    assert await page.text("#tx-id") == network.receipt
    text = await page.text("main")
    assert f"committed in #{status['height']} at position {status['index']}" in text
    arguments = dict(
        zip(await page.texts("#tx-args tbody th"), await page.texts("#tx-args tbody td"), strict=True)
    )
    assert arguments["beneficiary"] == "Shanghai Marathon 2026"
    assert arguments["first"].isdigit()


async def test_organisation_page_shows_holdings_keys_and_history(
    page: Page, network: WebNetwork, screenshots: Path
) -> None:
    holdings = await get_json(f"{network.url}/v1/carbon/holdings?org=ent-c")
    keys = await get_json(f"{network.url}/v1/carbon/keys?org=ent-c")
    history = await get_json(f"{network.url}/v1/state/{quote('bal/ent-c/allowance', safe='')}/history")
    await open_page(page, network, "/orgs/ent-c")
    assert await page.text("#org-name") == "Enterprise C Cement"
    assert await page.text("#allowances-available") == tonnes(holdings["allowances_t"]["available"])
    assert await page.text("#cash-available") == f"CNY {format_fen(holdings['cash_fen']['available'])}"
    assert len(await page.texts("#org-keys tbody tr")) == len(keys["items"])
    shown = await page.texts("#history-allowances tbody tr td:first-child")
    assert shown == [f"#{v['height']}" for v in history["versions"]]
    await page.screenshot(screenshots / "organisation.png")


async def test_compliance_page_has_the_table_and_one_chart_entry_per_enterprise(
    page: Page, network: WebNetwork, screenshots: Path
) -> None:
    document = await get_json(f"{network.url}/v1/carbon/compliance?period={network.period}")
    rows = document["rows"]
    assert len(rows) == 3
    await open_page(page, network, f"/compliance/{network.period}")
    entries = await page.evaluate(
        "[...document.querySelectorAll('#compliance-chart .chart-entry')].map(g => ({org: g.dataset.org,"
        " bars: Object.fromEntries([...g.querySelectorAll('.bar-group')].map(b => [b.dataset.kind, +b.dataset.value]))}))"
    )
    assert [entry["org"] for entry in entries] == [row["org"] for row in rows]
    for entry, row in zip(entries, rows, strict=True):
        assert entry["bars"] == {
            "verified": row["verified_t"],
            "allocated": row["allocated_t"],
            "surrendered": row["surrendered_allowances_t"],
            "offsets": row["surrendered_offsets_t"],
        }
    table = await page.evaluate(
        "[...document.querySelectorAll('#compliance-table tbody tr')].map(r => [...r.cells].map(c => c.textContent.replace(/\\s+/g, ' ').trim()))"
    )
    assert table == [
        [
            row["org"],
            tonnes(row["allocated_t"]),
            tonnes(row["verified_t"]),
            tonnes(row["surrendered_allowances_t"]),
            tonnes(row["surrendered_offsets_t"]),
            tonnes(row["shortfall_t"]),
            tonnes(row["surplus_t"]),
            f"CNY {format_fen(row['penalty_fen'])}",
            row["status"],
        ]
        for row in rows
    ]
    await page.screenshot(screenshots / "compliance.png")


async def test_offsets_registry_shows_supply_projects_and_serial_blocks(
    page: Page, network: WebNetwork, screenshots: Path
) -> None:
    supply = (await get_json(f"{network.url}/v1/carbon/supply"))["offset"]
    blocks = (await get_json(f"{network.url}/v1/carbon/offset_blocks?limit=50"))["items"]
    await open_page(page, network, "/offsets")
    assert await page.text("#offsets-issued") == tonnes(supply["issued"])
    statuses = await page.evaluate(
        "[...document.querySelectorAll('#serial-blocks tr[data-status]')].map(r => r.dataset.status)"
    )
    assert statuses == [block["status"] for block in blocks]
    receipts = await page.evaluate(
        "[...document.querySelectorAll('#serial-blocks a.receipt')].map(a => a.pathname)"
    )
    assert f"/receipts/{network.receipt}" in receipts
    await page.screenshot(screenshots / "offsets.png")


async def test_market_page_shows_prices_book_depth_and_trades(
    page: Page, network: WebNetwork, screenshots: Path
) -> None:
    market = await get_json(f"{network.url}/v1/carbon/market")
    book = await get_json(f"{network.url}/v1/carbon/order_book?depth=20")
    trades = (await get_json(f"{network.url}/v1/carbon/trades"))["items"]
    assert book["buy"] and book["sell"]
    await open_page(page, network, "/market")
    assert await page.text("#reference-price") == f"CNY {format_fen(market['reference_price_fen'])}/t"
    assert await page.text("#last-price") == f"CNY {format_fen(market['last_price_fen'])}/t"
    for side in ("buy", "sell"):
        rows = await page.evaluate(
            f"[...document.querySelectorAll('#book-{side} tbody tr')].map(r => [...r.cells].slice(0, 3).map(c => c.textContent.replace(/\\s+/g, ' ').trim()))"
        )
        assert rows == [
            [f"CNY {format_fen(o['price_fen'])}/t", tonnes(o["remaining_t"]), o["org"]] for o in book[side]
        ]
    depth = await page.evaluate(
        "[...document.querySelectorAll('#depth-chart polygon')].map(p => [p.getAttribute('class'), p.querySelector('title').textContent])"
    )
    assert depth == [
        ["depth-bid", f"bids: {sum(o['remaining_t'] for o in book['buy'])} t"],
        ["depth-ask", f"asks: {sum(o['remaining_t'] for o in book['sell'])} t"],
    ]
    shown = await page.evaluate(
        "[...document.querySelectorAll('#trades tbody tr')].map(r => r.cells[0].textContent.trim())"
    )
    assert shown == [str(trade["id"]) for trade in trades]
    await page.screenshot(screenshots / "market.png")


async def search(page: Page, network: WebNetwork, query: str) -> str:
    await open_page(page, network, "/")
    await page.evaluate(f"document.getElementById('search-q').value = {json.dumps(query)}")
    await page.follow("document.querySelector('form.search').submit()")
    return str(await page.evaluate("location.pathname + location.search"))


async def test_search_finds_transactions_heights_organisations_and_state_keys(
    page: Page, network: WebNetwork
) -> None:
    assert await search(page, network, network.receipt) == f"/txs/{network.receipt}"
    assert await search(page, network, "3") == "/blocks/3"
    assert await search(page, network, "ent-b") == "/orgs/ent-b"
    assert await search(page, network, network.period) == f"/compliance/{network.period}"
    assert unquote(await search(page, network, "bal/ent-a/cash")) == "/state?key=bal/ent-a/cash"
    hostile = '<img src=x onerror="window.__pwned=9">'
    assert (await search(page, network, hostile)).startswith("/search?q=")
    assert await page.text("#search-query") == hostile
    assert await page.evaluate("window.__pwned === undefined && !document.querySelector('main img')")


async def test_hostile_names_and_references_render_as_text(
    page: Page, network: WebNetwork, screenshots: Path
) -> None:
    await open_page(page, network, "/orgs")
    assert await page.text(f"tr[data-org='{HOSTILE_ORG}'] .org-name") == " ".join(HOSTILE_NAME.split())
    await open_page(page, network, f"/orgs/{HOSTILE_ORG}")
    assert await page.evaluate("document.getElementById('org-name').textContent") == HOSTILE_NAME
    assert (await page.evaluate("document.title")).startswith(HOSTILE_ORG)
    await open_page(page, network, f"/receipts/{network.hostile_receipt}")
    shown = await page.evaluate("document.querySelector('[data-field=beneficiary]').textContent")
    assert shown == HOSTILE_BENEFICIARY
    assert await verdict(page) == "verified"
    for path in ("/orgs", f"/orgs/{HOSTILE_ORG}", f"/receipts/{network.hostile_receipt}"):
        await open_page(page, network, path)
        injected = await page.evaluate(
            "({pwned: window.__pwned ?? null, images: document.querySelectorAll('main img').length,"
            " bold: document.querySelectorAll('main b').length, scripts: document.scripts.length,"
            " hidden: getComputedStyle(document.body).display})"
        )
        assert injected == {"pwned": None, "images": 0, "bold": 0, "scripts": 1, "hidden": "block"}, path
    await page.screenshot(screenshots / "receipt-hostile.png")


async def test_bad_parameters_get_an_html_error_page_not_a_crash(page: Page, network: WebNetwork) -> None:
    async with aiohttp.ClientSession() as session:
        for path, status in (
            ("/blocks/999999", 404),
            ("/blocks/x", 400),
            ("/orgs/NOT_AN_ID", 400),
            ("/orgs/nobody", 404),
            ("/txs/abc", 400),
            ("/blocks?limit=100000", 400),
            ("/compliance/no-such-period", 404),
            ("/receipts/" + "0" * 64, 404),
            ("/state?key=" + "k" * 600, 400),
        ):
            async with session.get(network.url + path) as response:
                assert response.status == status, path
                assert response.content_type == "text/html", path
    await open_page(page, network, "/orgs/nobody")
    assert "not found" in (await page.text(".error-message")).lower()


async def test_keyboard_reaches_the_content_and_every_section(page: Page, network: WebNetwork) -> None:
    await open_page(page, network, "/")
    await page.press("Tab", "Tab", 9)
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    focused = []
    for _ in range(10):
        await page.press("Tab", "Tab", 9)
        focused.append(await page.evaluate("document.activeElement.textContent.trim()"))
    assert focused[:9] == [
        "carbonchain",
        "Overview",
        "Blocks",
        "Organisations",
        "Compliance",
        "Offsets",
        "Market",
        "Governance",
        "Verify",
    ]
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    await page.press("Tab", "Tab", 9, shift=True)
    await page.press_to_follow("Enter", "Enter", 13)
    assert await page.evaluate("location.pathname") == "/verify"


@pytest.mark.parametrize("path", ["/", "/compliance/{period}", "/blocks/1", "/market", "/orgs/ent-a"])
async def test_pages_fit_a_phone_screen(
    page: Page, network: WebNetwork, screenshots: Path, path: str
) -> None:
    await page.set_viewport(390, 844, mobile=True)
    await open_page(page, network, path.format(period=network.period))
    overflow: dict[str, Any] = await page.evaluate(
        "({page: document.documentElement.scrollWidth, viewport: window.innerWidth})"
    )
    assert overflow["page"] <= overflow["viewport"], f"{path} scrolls sideways at phone width: {overflow}"
    if path == "/":
        await page.screenshot(screenshots / "overview-phone.png")
    if path.startswith("/compliance"):
        await page.screenshot(screenshots / "compliance-phone.png")
