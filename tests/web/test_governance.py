"""The governance page in a real browser against the real network: a proposal made and approved by the
test's members shows open with its tally, the demo's executed proposal and four-eyes request show with
their status, the policies and validator sets equal the API's, and evidence of an equivocation (two
conflicting PREPAREs signed with validator 3's dev key, submitted as report_evidence) shows as recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from client import CarbonClient
from core.devkeys import dev_admin_key, dev_node_key
from core.votes import compute_prepare_digest
from tests.web.browser import Page
from tests.web.webnet import WebNetwork, get_json

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def submit(client: CarbonClient, org: str, function: str, args: dict[str, Any]) -> dict[str, Any]:
    signer = await client.signer(org=org, key=dev_admin_key(org))
    status = await client.submit_and_wait(signer.build(function, args))
    assert status.is_ok, f"{org} {function}: {status.code}: {status.message}"
    return {**await client.tx_result(status), "tx_id": status.tx_id}


async def record_equivocation(client: CarbonClient, network: WebNetwork) -> str:
    """Validator 3 signs two PREPAREs for one slot (a height far above the tip: no block is harmed)."""
    key = dev_node_key("validator", 3)
    height, view = 10**9, 7
    hashes = [bytes([n]) * 32 for n in (1, 2)]
    chain_id = network.cluster.genesis.chain_id
    signatures = [key.sign(compute_prepare_digest(chain_id, view, height, h)) for h in hashes]
    args: dict[str, Any] = {
        "kind": "prepare",
        "validator": key.public_key.hex(),
        "height": height,
        "view": view,
    }
    for n, (block_hash, signature) in enumerate(zip(hashes, signatures, strict=True), start=1):
        args |= {f"block_hash_{n}": block_hash.hex(), f"signature_{n}": signature.hex()}
    result = await submit(client, "mee", "report_evidence", args)
    assert [e["type"] for e in result["events"]] == ["evidence_recorded"]
    return str(result["tx_id"])


async def test_governance_page_shows_proposals_policies_validator_sets_requests_and_evidence(
    page: Page, network: WebNetwork, screenshots: Path
) -> None:
    async with CarbonClient(network.url) as client:
        members = sorted(m["org"] for m in (await client.query("members"))["items"])
        assert members == ["bank", "ent-a", "mee", "verifier-a"]  # 4 members: 3 approvals pass a change
        cap = (await client.query("params"))["offset_cap_bps"]
        expires = (await client.status())["height"] + 500
        created = await submit(client, "mee", "propose", {
            "action": "set_parameter", "args": {"name": "offset_cap_bps", "value": cap + 100},
            "expires_height": expires})  # fmt: skip
        proposal = int(next(e for e in created["events"] if e["type"] == "proposal_created")["proposal"])
        await submit(client, "bank", "approve", {"proposal": proposal})  # 2 of the 3 needed: still open
        evidence_tx = await record_equivocation(client, network)

    await page.goto(network.url + "/governance")
    assert await page.csp_violations() == []
    row = f"#open-proposals tr[data-proposal='{proposal}']"
    assert await page.text(f"{row} td:nth-child(2)") == "set_parameter"
    assert "offset_cap_bps" in await page.text(f"{row} td:nth-child(3)")
    assert str(cap + 100) in await page.text(f"{row} td:nth-child(3)")
    tally = await page.text(f"{row} .condition[data-policy='parameters']")
    assert tally.startswith("2 of 3 needed (4 members)"), tally
    assert await page.texts(f"{row} td:nth-child(5) a.org") == ["mee", "bank"]
    assert f"#{expires}" in await page.text(f"{row} td:nth-child(7)")

    api_proposals = (await get_json(network.url + "/v1/carbon/proposals"))["items"]
    shown = await page.evaluate(
        "[...document.querySelectorAll('#proposals tr[data-proposal]')].map(r => +r.dataset.proposal)"
    )
    assert shown == [p["id"] for p in reversed(api_proposals)][: len(shown)] and proposal in shown
    statuses = await page.texts("#proposals tr[data-proposal] td:nth-child(5) .badge")
    assert statuses == [p["status"] for p in reversed(api_proposals)][: len(shown)]
    assert "executed" in statuses  # the demo's parameter change

    policies = (await get_json(network.url + "/v1/carbon/policies"))["items"]
    assert await page.texts("#policies tr[data-policy] td:first-child") == [p["name"] for p in policies]

    sets = await get_json(network.url + "/v1/carbon/validators")
    epochs = await page.evaluate(
        "[...document.querySelectorAll('#validator-history tr[data-epoch]')].map(r =>"
        " [+r.dataset.epoch, [...r.querySelectorAll('.member')].map(m => +m.dataset.number)])"
    )
    assert epochs == [[e["epoch"], [v["number"] for v in e["validators"]]] for e in sets["history"]]
    assert sets["pending"] is None and await page.evaluate("!document.getElementById('pending-change')")

    requests = list(reversed((await get_json(network.url + "/v1/carbon/requests"))["items"]))
    assert requests, "the demo makes a four-eyes request"
    shown_requests = await page.evaluate(
        "[...document.querySelectorAll('#requests tr[data-request]')].map(r =>"
        " [+r.dataset.request, r.querySelector('td:nth-child(6) .badge').textContent])"
    )
    assert shown_requests == [[r["id"], r["status"]] for r in requests][: len(shown_requests)]

    equivocator = dev_node_key("validator", 3).public_key.hex()
    evidence = f"#evidence tr[data-evidence='{equivocator}/1000000000/7/prepare']"
    assert (await page.text(f"{evidence} td:nth-child(1)")).startswith(f"3 {equivocator[:16]}")
    assert await page.text(f"{evidence} td:nth-child(2)") == network.cluster.genesis.validators[3].org
    await page.screenshot(screenshots / "governance.png")
    await page.follow(f'document.querySelector("{evidence} td:last-child a").click()')
    assert await page.evaluate("location.pathname") == f"/txs/{evidence_tx}"
