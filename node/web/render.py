"""Templates, display filters and the security headers of the dashboard.

Every page is a Jinja2 template rendered with autoescaping on for every template and every value, so an
organisation name such as `<script>` reaches the browser as text. Undefined names fail loudly
(StrictUndefined) rather than rendering as empty strings. Numbers carry their units: tonnes of CO2e as
`t`, money as CNY from integer fen, times in UTC beside the block height that agreed them.

The Content-Security-Policy allows scripts, styles and connections only from the node itself: no inline
script or style anywhere, no third-party origin, no framing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from core.units import format_fen, format_time_ms

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


NBSP = "\u00a0"  # an amount and its unit never part at a line break


def format_tonnes(amount_t: int | None) -> str:
    """Whole tonnes of CO2e with thousands separators: `1,050 t`."""
    if amount_t is None:
        return "-"
    return f"{amount_t:,}{NBSP}t"


def format_cny(amount_fen: int | None) -> str:
    if amount_fen is None:
        return "-"
    return f"CNY{NBSP}{format_fen(amount_fen)}"


def format_price(price_fen: int | None) -> str:
    """A price per tonne from fen: `CNY 50.50/t`."""
    if price_fen is None:
        return "-"
    return f"CNY{NBSP}{format_fen(price_fen)}/t"


def format_bps(bps: int | None) -> str:
    """Basis points as a percentage by integer arithmetic: 500 -> `5%`, 1250 -> `12.5%`."""
    if bps is None:
        return "-"
    whole, rest = divmod(bps, 100)
    return f"{whole}%" if rest == 0 else f"{whole}.{rest:02d}".rstrip("0") + "%"


def format_utc(time_ms: int | None) -> str:
    return format_time_ms(time_ms) or "-"


def format_iso(time_ms: int | None) -> str:
    """The machine-readable form for a `<time datetime>` attribute."""
    if time_ms is None:
        return ""
    moment = datetime.fromtimestamp(time_ms // 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{time_ms % 1000:03d}Z"


def shorten(text: str | None, keep: int = 12) -> str:
    """A long hex id cut for a table cell (the full value goes in the link and the title)."""
    if text is None:
        return "-"
    return text if len(text) <= keep + 1 else text[:keep] + "…"


def build_environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        tonnes=format_tonnes,
        cny=format_cny,
        price=format_price,
        bps=format_bps,
        utc=format_utc,
        iso=format_iso,
        short=shorten,
    )
    return environment


class Renderer:
    """Renders a template into a response with the security headers set."""

    def __init__(self, site_context: dict[str, Any]) -> None:
        self.environment = build_environment()
        self.site_context = site_context  # chain id, node name: shown in every page's header

    def render(self, template: str, *, http_status: int = 200, **context: Any) -> web.Response:
        html = self.environment.get_template(template).render(site=self.site_context, **context)
        return web.Response(text=html, status=http_status, content_type="text/html", charset="utf-8")

    def error(self, status: int, title: str, message: str) -> web.Response:
        return self.render("error.html", http_status=status, title=title, message=message, page="error")


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer of the node (pages, static files, API) gets the same policy."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
