"""The dashboard tests' network and its hostile data, and a JSON reader of the API (tests/web/conftest.py
builds the network once per session)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

from client import CarbonClient
from core.devkeys import dev_admin_key, dev_client_key
from tests.integration.cluster import Cluster

HOSTILE_NAME = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"> "Evil" & \'Co\' </td>'
HOSTILE_BENEFICIARY = '</dd><script>window.__pwned=3</script> "Beneficiary" & <b>bold</b>'
HOSTILE_REASON = "<style>body{display:none}</style>'reason'"
HOSTILE_ORG = "evil-corp"
SCREENSHOTS_ENV = "CARBONCHAIN_SCREENSHOTS"  # a folder to keep the screenshots in (docs/screenshots)


@dataclass(frozen=True)
class WebNetwork:
    cluster: Cluster
    url: str  # the observer's API and dashboard
    period: str
    receipt: str  # the demo's retirement receipt id
    hostile_receipt: str  # a retirement with a hostile beneficiary and reason


async def add_hostile_data(url: str) -> str:
    """Register an organisation whose name is markup, and retire a serial for a markup beneficiary."""
    async with CarbonClient(url) as client:
        regulator = await client.signer(org="mee", key=dev_admin_key("mee"))
        registered = await client.submit_and_wait(
            regulator.build(
                "register_organisation",
                {
                    "org": HOSTILE_ORG,
                    "name": HOSTILE_NAME,
                    "role": "enterprise",
                    "admin_keys": [dev_admin_key(HOSTILE_ORG).public_key.hex()],
                },
            )
        )
        assert registered.is_ok, registered
        developer = await client.signer(org="dev-a", key=dev_client_key("dev-a"))
        first = int((await client.holdings("dev-a"))["offset_blocks"][0]["first"])
        retired = await client.submit_and_wait(
            developer.build(
                "retire_offsets",
                {"first": first, "last": first, "beneficiary": HOSTILE_BENEFICIARY, "reason": HOSTILE_REASON},
            )
        )
        assert retired.is_ok, retired
        await place_resting_orders(client)
        return retired.tx_id


async def place_resting_orders(client: CarbonClient) -> None:
    """Bids and asks that do not cross, so the market page has a book to draw."""
    orders = [("ent-c", "sell", 20, 5200), ("ent-c", "sell", 30, 5300), ("ent-b", "buy", 10, 4900)]
    orders.append(("ent-b", "buy", 25, 4800))
    txs = []
    for org, side, quantity_t, price_fen in orders:
        signer = await client.signer(org=org, key=dev_client_key(org))
        txs.append(
            signer.build("place_order", {"side": side, "quantity_t": quantity_t, "price_fen": price_fen})
        )
    ids = [await client.submit(tx) for tx in txs]
    statuses = await client.wait_for_commits(ids)
    assert all(status.is_ok for status in statuses.values()), statuses


async def get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200, f"{url}: HTTP {response.status}"
        return await response.json()


async def get_bytes(url: str) -> bytes:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200, f"{url}: HTTP {response.status}"
        return await response.read()
