"""What every dashboard page shares: the API backend it reads through, the genesis, the renderer, the
recent-block summaries; parsing of page parameters; and the page decorator that turns a bad request or a
missing object into an HTML error page (never a traceback, never a 5xx for bad input).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from core.errors import InvalidInput
from core.genesis import Genesis
from core.tx import ORG_ID_PATTERN
from node.api import ApiBackend, QueryNotFound
from node.web.recent import RecentBlocks
from node.web.render import Renderer
from node.web.valsets import ValidatorHistory, read_validator_history

PAGE_SIZE = 20  # rows per page unless a page says otherwise
PAGE_SIZE_MAX = 100  # the most rows any dashboard page shows at once
PARAM_CHARS_MAX = 512
ORG_NAMES_MAX = 4096  # organisation names kept for validator tables
_HEX_ID = re.compile(r"^[0-9a-f]{64}$")
_DIGITS = re.compile(r"^[0-9]{1,19}$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Site:
    def __init__(self, backend: ApiBackend, genesis: Genesis) -> None:
        self.backend = backend
        self.genesis = genesis
        self.recent = RecentBlocks(backend.get_block_json)
        # names never change once registered; organisations admitted later are asked for once
        self._org_names = {org.id: org.name for org in genesis.organisations}
        status = backend.get_status()
        self.renderer = Renderer(
            {"chain_id": genesis.chain_id, "node_id": status["node_id"], "role": status["role"]}
        )

    def render(self, template: str, **context: Any) -> web.Response:
        return self.renderer.render(template, **context)

    def query(self, name: str, **params: Any) -> Any:
        """A chaincode query through the API backend, exactly as /v1/carbon/{name} runs it."""
        return self.backend.run_query(name, {k: str(v) for k, v in params.items() if v is not None})

    def validator_history(self) -> ValidatorHistory:
        """Every validator set of the chain, from the `validators` query (governance changes the set)."""
        return read_validator_history(self.query("validators"), self.org_name)

    def org_name(self, org: str) -> str:
        name = self._org_names.get(org)
        if name is None:
            try:
                name = str(self.query("organisation", org=org)["name"])
            except (QueryNotFound, InvalidInput):
                return org
            if len(self._org_names) < ORG_NAMES_MAX:
                self._org_names[org] = name
        return name

    @staticmethod
    def now_ms() -> int:
        return time.time_ns() // 1_000_000


SITE = web.AppKey("dashboard_site", Site)


def page(handler: Handler) -> Handler:
    """Bad parameters become a 400 page, a missing object a 404 page, both with the reason as text."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        renderer = request.app[SITE].renderer
        try:
            return await handler(request)
        except QueryNotFound as exc:
            return renderer.error(404, "Not found", str(exc))
        except InvalidInput as exc:
            return renderer.error(400, "Bad request", str(exc))

    return wrapped


# --- parameters -------------------------------------------------------------------------------------------


def get_text(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    if len(value) > PARAM_CHARS_MAX:
        raise InvalidInput(f"{name} is longer than {PARAM_CHARS_MAX} characters")
    return value


def get_int(
    request: web.Request, name: str, *, default: int | None = None, minimum: int = 0, maximum: int = 2**62
) -> int | None:
    text = get_text(request, name)
    if text is None:
        return default
    return parse_int(text, name, minimum=minimum, maximum=maximum)


def parse_int(text: str, what: str, *, minimum: int = 0, maximum: int = 2**62) -> int:
    if not _DIGITS.fullmatch(text):
        raise InvalidInput(f"{what} must be a non-negative integer")
    value = int(text)
    if not minimum <= value <= maximum:
        raise InvalidInput(f"{what} must be between {minimum} and {maximum}")
    return value


def get_limit(request: web.Request, default: int = PAGE_SIZE) -> int:
    limit = get_int(request, "limit", default=default, minimum=1, maximum=PAGE_SIZE_MAX)
    assert limit is not None
    return limit


def parse_org_id(text: str) -> str:
    if not ORG_ID_PATTERN.fullmatch(text):
        raise InvalidInput("an organisation id is 1-64 of a-z, 0-9, '_', '.', '-'")
    return text


def is_hex_id(text: str) -> bool:
    return _HEX_ID.fullmatch(text) is not None


def parse_hex_id(text: str, what: str) -> str:
    if not is_hex_id(text):
        raise InvalidInput(f"{what} must be 64 lowercase hex digits")
    return text
