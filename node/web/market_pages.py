"""The market's pages: organisations, compliance periods, the offsets registry and the allowance market.

Every value comes from a chaincode query run through the API backend (docs/CHAINCODE.md, "Queries"),
paged with the query's own `start_after` cursor and at most PAGE_SIZE_MAX rows.
"""

from __future__ import annotations

from aiohttp import web

from core.errors import InvalidInput
from node.web.charts import compute_compliance_chart, compute_depth_chart
from node.web.site import SITE, get_int, get_limit, get_text, page, parse_org_id

HISTORY_ROWS = 10  # versions of each balance shown on an organisation's page (the state page has them all)
BOOK_DEPTH = 20  # orders per side


@page
async def organisations(request: web.Request) -> web.Response:
    site = request.app[SITE]
    limit = get_limit(request, default=50)
    after = get_text(request, "after")
    listing = site.query("organisations", start_after=after, limit=limit)
    return site.render("orgs.html", page="orgs", listing=listing, limit=limit)


@page
async def organisation(request: web.Request) -> web.Response:
    site = request.app[SITE]
    org_id = parse_org_id(request.match_info["org"])
    org = site.query("organisation", org=org_id)
    blocks_after = get_int(request, "blocks_after")
    keys_after = get_text(request, "keys_after")
    holdings = site.query("holdings", org=org_id, start_after=blocks_after, limit=50)
    keys = site.query("keys", org=org_id, start_after=keys_after, limit=50)
    orders = site.query("orders", org=org_id, limit=50) if org["role"] == "enterprise" else None
    history = {
        label: site.backend.get_key_history(key.encode(), None, HISTORY_ROWS)
        for label, key in (
            ("allowances", f"bal/{org_id}/allowance"),
            ("cash", f"bal/{org_id}/cash"),
            ("record", f"org/{org_id}"),
        )
    }
    return site.render(
        "org.html",
        page="orgs",
        org=org,
        holdings=holdings,
        keys=keys,
        orders=orders,
        history=history,
        history_keys={
            "allowances": f"bal/{org_id}/allowance",
            "cash": f"bal/{org_id}/cash",
            "record": f"org/{org_id}",
        },
        genesis_org=site.genesis.organisation(org_id),
    )


@page
async def periods(request: web.Request) -> web.Response:
    site = request.app[SITE]
    limit = get_limit(request, default=50)
    listing = site.query("periods", start_after=get_text(request, "after"), limit=limit)
    return site.render("periods.html", page="compliance", listing=listing, limit=limit)


@page
async def compliance(request: web.Request) -> web.Response:
    site = request.app[SITE]
    period_id = request.match_info["period"]
    if len(period_id) > 64:
        raise InvalidInput("a period id has at most 64 characters")
    limit = get_limit(request, default=100)
    document = site.query("compliance", period=period_id, start_after=get_text(request, "after"), limit=limit)
    rows = document["rows"]
    totals = {
        name: sum(int(row[name]) for row in rows)
        for name in (
            "allocated_t",
            "verified_t",
            "surrendered_allowances_t",
            "surrendered_offsets_t",
            "shortfall_t",
            "surplus_t",
            "penalty_fen",
        )
    }
    return site.render(
        "compliance.html",
        page="compliance",
        period=document["period"],
        rows=rows,
        next=document["next"],
        totals=totals,
        compliant=sum(1 for row in rows if row["status"] in ("compliant", "surplus")),
        chart=compute_compliance_chart(rows),
        limit=limit,
    )


@page
async def offsets(request: web.Request) -> web.Response:
    site = request.app[SITE]
    limit = get_limit(request, default=50)
    blocks_after = get_int(request, "blocks_after")
    projects_after = get_text(request, "projects_after")
    supply = site.query("supply")["offset"]
    issued = int(supply["issued"])
    final = sum(int(supply[name]) for name in ("retired", "surrendered", "cancelled", "buffer"))
    return site.render(
        "offsets.html",
        page="offsets",
        supply=supply,
        active_t=issued - final,
        projects=site.query("projects", start_after=projects_after, limit=limit),
        blocks=site.query("offset_blocks", start_after=blocks_after, limit=limit),
        limit=limit,
    )


@page
async def project(request: web.Request) -> web.Response:
    site = request.app[SITE]
    project_id = request.match_info["project"]
    if len(project_id) > 64:
        raise InvalidInput("a project id has at most 64 characters")
    return site.render("project.html", page="offsets", project=site.query("project", project=project_id))


@page
async def market(request: web.Request) -> web.Response:
    site = request.app[SITE]
    limit = get_limit(request, default=50)
    book = site.query("order_book", depth=BOOK_DEPTH)
    return site.render(
        "market.html",
        page="market",
        market=site.query("market"),
        book=book,
        depth=compute_depth_chart(book),
        trades=site.query("trades", start_after=get_int(request, "trades_after"), limit=limit),
        book_depth=BOOK_DEPTH,
        limit=limit,
    )
