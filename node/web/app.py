"""Mounting the dashboard on a node's API application: its routes, its static files, its headers."""

from __future__ import annotations

from aiohttp import web

from core.genesis import Genesis
from node.api import ApiBackend, answer_expect
from node.web import chain_pages, gov_pages, market_pages, receipts
from node.web.render import STATIC_DIR, add_security_headers
from node.web.site import SITE, Site


def add_dashboard(app: web.Application, backend: ApiBackend, genesis: Genesis) -> None:
    """Serve the read-only dashboard at `/` beside the API (docs/DASHBOARD.md lists the pages)."""
    app[SITE] = Site(backend, genesis)
    routes = (
        ("/", chain_pages.overview),
        ("/blocks", chain_pages.blocks),
        ("/blocks/{height}", chain_pages.block),
        ("/txs/{tx_id}", chain_pages.transaction),
        ("/state", chain_pages.state_key),
        ("/search", chain_pages.search),
        ("/genesis.json", chain_pages.genesis_json),
        ("/orgs", market_pages.organisations),
        ("/orgs/{org}", market_pages.organisation),
        ("/compliance", market_pages.periods),
        ("/compliance/{period}", market_pages.compliance),
        ("/offsets", market_pages.offsets),
        ("/offsets/projects/{project}", market_pages.project),
        ("/market", market_pages.market),
        ("/governance", gov_pages.governance),
        ("/receipts/{receipt}.json", receipts.receipt_document),
        ("/validator-sets.json", receipts.validator_sets),
        ("/receipts/{receipt}", receipts.receipt),
        ("/verify", receipts.verify_page),
    )
    for path, handler in routes:
        app.router.add_get(path, handler, expect_handler=answer_expect)
    app.router.add_static("/static", STATIC_DIR, append_version=False, expect_handler=answer_expect)
    app.on_response_prepare.append(add_security_headers)
