"""In-browser verification: the JavaScript follows docs/protocol byte for byte (the documents' worked
examples), agrees with libsodium's rules on malleable signatures, and turns a tampered certificate, block or
receipt into "failed" with the reason, while the genuine ones verify."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core import codec
from core.block import decode_certified_block
from tests.web.browser import Page
from tests.web.webnet import WebNetwork, get_bytes, get_json

pytestmark = pytest.mark.asyncio(loop_scope="session")

L = 2**252 + 27742317777372353535851937790883648493
MODULES = (
    "const codec = await import('/static/js/codec.js'); const crypto = await import('/static/js/crypto.js');"
)
VERDICT = "document.getElementById('verification').dataset.result"


async def test_the_browser_code_reproduces_the_protocol_documents_vectors(
    page: Page, network: WebNetwork
) -> None:
    """The worked examples of docs/protocol/core.md, recomputed by the dashboard's own modules."""
    await page.goto(network.url + "/verify")
    results = await page.evaluate(
        f"""(async () => {{ {MODULES}
          const verify = await import('/static/js/verify.js');
          const hex = codec.toHex, enc = codec.encode;
          const header = codec.decode(codec.fromHex('{HEADER_HEX}'));
          const headerHash = await crypto.hashValue('block-header', header);
          return {{
            map: hex(enc({{"é": 1, "z": 2, "a": 3, "": 4}})),
            stored: hex(enc(new Map([['code', 'ok'], ['events', []], ['message', '']]))),
            result: hex(await verify.resultHash(new Map([['code', 'ok'], ['events', []], ['message', 'any words']]))),
            empty: hex(await crypto.merkleRoot([])),
            three: hex(await crypto.merkleRoot([0, 1, 2].map(i => new Uint8Array(32).fill(i)))),
            header: hex(headerHash),
            commit: hex(await verify.commitDigest('carbon-devnet', 0, 1, headerHash)),
            wide: (() => {{ try {{ codec.decode(codec.fromHex('cd0005')); return 'accepted'; }} catch (e) {{ return 'refused'; }} }})(),
            unsorted: (() => {{ try {{ codec.decode(codec.fromHex('82a17a01a16102')); return 'accepted'; }} catch (e) {{ return 'refused'; }} }})(),
            float: (() => {{ try {{ codec.decode(codec.fromHex('cb3ff0000000000000')); return 'accepted'; }} catch (e) {{ return 'refused'; }} }})(),
          }};
        }})()"""
    )
    assert results == {
        "map": "84a004a16103a17a02a2c3a901",
        "stored": "83a4636f6465a26f6ba66576656e747390a76d657373616765a0",
        "result": "a130fcd4da94bb1510ae94b343a1568892ce684244e0c7709cefcecf6f9ad3ed",
        "empty": "1cf1914eefc960f3ea108ead55761bce3f3ffe6c97f0e6ac9ceaffe9567f3a04",
        "three": "312c272080efdc4cd2626708088f8e487ccf8bb7a8a16e0d3f9c37635e7c5205",
        "header": "004fe68266b9f62e74251c3b8f6bcd745eb85aed6d712c7a2b21900800ef2032",
        "commit": "1dc63c63493bf7ef395605e7ff6a01b061ddc7f2645617c3f806b217f02235b5",
        "wide": "refused",
        "unsorted": "refused",
        "float": "refused",
    }


HEADER_HEX = (
    "8aa8636861696e5f6964ad636172626f6e2d6465766e6574a668656967687401a9707265765f68617368c420"
    + "00" * 32
    + "a870726f706f73657200ac726573756c74735f726f6f74c4201cf1914eefc960f3ea108ead55761bce3f3ffe6c97f0e6ac9ce"
    "affe9567f3a04ac73746174655f68656967687400aa73746174655f726f6f74c420"
    + "00"
    * 32
    + "a774696d655f6d73cf0000019b76daa800a874785f636f756e7401a774785f726f6f74c420fbb44374e97526a2081a78a63d"
    "94788a75cd6242fc5d8e4ab8af5390d7459f08"
)


async def test_signatures_follow_libsodiums_rules_not_only_webcryptos(
    page: Page, network: WebNetwork
) -> None:
    """A valid COMMIT signature verifies; the same with S + L (malleable), with a small-order R, or under
    another validator's key does not."""
    raw = await get_bytes(f"{network.url}/v1/blocks/1?format=msgpack")
    certified = decode_certified_block(raw)
    header = certified.block.header
    index, signature = certified.certificate.votes[0]
    key = network.cluster.genesis.validator_keys[index]
    other = network.cluster.genesis.validator_keys[(index + 1) % 4]
    s = int.from_bytes(signature[32:], "little")
    malleable = signature[:32] + (s + L).to_bytes(32, "little")
    small_r = bytes([1]) + bytes(31) + signature[32:]  # R = the identity point
    await page.goto(network.url + "/verify")
    verdicts = await page.evaluate(
        f"""(async () => {{ {MODULES}
          const verify = await import('/static/js/verify.js');
          const h = codec.fromHex, digest = await verify.commitDigest('{header.chain_id}', {certified.certificate.view}, {header.height}, h('{header.block_hash.hex()}'));
          const check = (key, sig) => crypto.verifyEd25519(h(key), digest, h(sig));
          return [await check('{key.hex()}', '{signature.hex()}'), await check('{key.hex()}', '{malleable.hex()}'),
                  await check('{key.hex()}', '{small_r.hex()}'), await check('{other.hex()}', '{signature.hex()}')];
        }})()"""
    )
    assert verdicts == [True, False, False, False]


async def test_block_and_state_verify_in_the_browser(
    page: Page, network: WebNetwork, screenshots: Path
) -> None:
    await page.goto(f"{network.url}/blocks/2")
    assert await page.wait_for(VERDICT) == "verified"
    checks = await page.texts("#checks li")
    assert [check.split(":")[0] for check in checks] == [
        "block encoding",
        "block hash",
        "transactions",
        "commit certificate",
        "results",
    ]
    assert await page.texts("#signers .signature-check") == ["verified"] * len(
        await page.texts("#signers tbody tr")
    )
    await page.goto(f"{network.url}/state?key=org/ent-a")
    assert await page.wait_for(VERDICT) == "verified"
    await page.screenshot(screenshots / "state.png")


def tamper_signature(raw: bytes) -> bytes:
    """The certified block with one bit of the second COMMIT signature flipped, canonically re-encoded."""
    wire = codec.decode(raw)
    votes = wire["certificate"]["votes"]
    signature = bytearray(votes[1][1])
    signature[5] ^= 0x01
    votes[1][1] = bytes(signature)
    return codec.encode(wire)


async def test_a_tampered_certificate_shows_which_signature_failed(page: Page, network: WebNetwork) -> None:
    height = 2
    genuine = await get_bytes(f"{network.url}/v1/blocks/{height}?format=msgpack")
    tampered = tamper_signature(genuine)
    signer = codec.decode(genuine)["certificate"]["votes"][1][0]

    async def serve(url: str) -> bytes | None:
        return tampered if f"/v1/blocks/{height}?" in url else None

    await page.serve("*format=msgpack*", serve)
    await page.goto(f"{network.url}/blocks/{height}")
    assert await page.wait_for(VERDICT) == "failed"
    verdict = await page.text("#verdict")
    assert f"commit certificate: the signature of validator {signer}" in verdict
    assert "does not verify" in verdict
    marks = await page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#signers tr[data-signer]')].map(r => [r.dataset.signer, r.querySelector('.signature-check').textContent]))"
    )
    assert marks[str(signer)] == "failed"


async def test_a_block_whose_bytes_differ_from_the_page_fails(page: Page, network: WebNetwork) -> None:
    """A node that shows one block and serves another's certified bytes is caught."""
    other = await get_bytes(f"{network.url}/v1/blocks/3?format=msgpack")

    async def serve(url: str) -> bytes | None:
        return other if "/v1/blocks/2?" in url else None

    await page.serve("*format=msgpack*", serve)
    await page.goto(f"{network.url}/blocks/2")
    assert await page.wait_for(VERDICT) == "failed"
    assert "height: the bytes are block 3, the page shows 2" in await page.text("#verdict")


async def receipt_document(network: WebNetwork) -> dict[str, Any]:
    document: dict[str, Any] = await get_json(f"{network.url}/receipts/{network.receipt}.json")
    return document


async def verify_pasted(page: Page, network: WebNetwork, document: dict[str, Any]) -> tuple[str, str]:
    await page.goto(network.url + "/verify")
    await page.evaluate(
        f"document.getElementById('receipt-text').value = {json.dumps(json.dumps(document))};"
        " document.getElementById('verify-button').click()"
    )
    result = await page.wait_for(f"['verified', 'failed'].includes({VERDICT}) && {VERDICT}")
    return str(result), await page.text("#verdict")


async def test_a_pasted_receipt_verifies_and_a_tampered_one_fails(
    page: Page, network: WebNetwork, screenshots: Path
) -> None:
    document = await receipt_document(network)
    assert document["kind"] == "carbonchain-retirement-receipt"
    result, _ = await verify_pasted(page, network, document)
    assert result == "verified"
    fields = dict(
        zip(await page.texts("#receipt-fields dt"), await page.texts("#receipt-fields dd"), strict=True)
    )
    assert fields["beneficiary"] == document["receipt"]["beneficiary"]
    await page.screenshot(screenshots / "verify-receipt.png")

    more = copy.deepcopy(document)
    more["receipt"]["quantity_t"] += 1000
    assert await verify_pasted(page, network, more) == (
        "failed",
        "failed receipt: the receipt shown differs from the receipt the state proves",
    )

    forged = copy.deepcopy(document)
    certificate = codec.decode(bytes.fromhex(forged["certificate"]))
    signature = bytearray(certificate["votes"][0][1])
    signature[0] ^= 0x80
    certificate["votes"][0][1] = bytes(signature)
    forged["certificate"] = codec.encode(certificate).hex()
    result, verdict = await verify_pasted(page, network, forged)
    assert result == "failed"
    assert verdict.startswith(
        f"failed commit certificate: the signature of validator {certificate['votes'][0][0]}"
    )

    wrong_root = copy.deepcopy(document)
    wrong_root["state_root"] = "00" * 32
    result, verdict = await verify_pasted(page, network, wrong_root)
    assert (result, verdict) == ("failed", "failed state proof: the proof does not lead to the state root")

    other_chain = {**document, "genesis_hash": "11" * 32}
    result, verdict = await verify_pasted(page, network, other_chain)
    assert result == "failed" and "belongs to genesis 1111" in verdict


async def test_the_receipt_page_verifies_what_it_shows(
    page: Page, network: WebNetwork, screenshots: Path
) -> None:
    await page.goto(f"{network.url}/receipts/{network.receipt}")
    assert await page.wait_for(VERDICT) == "verified"
    checks = [check.split(":")[0] for check in await page.texts("#checks li")]
    assert checks == ["receipt", "state proof", "commit certificate", "certified root", "record", "page"]
    await page.screenshot(screenshots / "receipt.png")


async def test_handovers_prove_a_later_set_in_the_browser(page: Page, network: WebNetwork) -> None:
    """The conformance chain's fifth validator: the browser follows block 13's handover from the genesis set
    (audit/handovers.py, docs/protocol/audit.md) and refuses a handover to another set."""
    from conformance.vectors import VECTORS_DIR, build_chain
    from tests.audit.test_handovers import handover

    chain = build_chain()
    step = handover(chain).to_json()
    forged = {**step, "validators": step["validators"][:4]}
    genesis_text = (VECTORS_DIR / "genesis.json").read_text(encoding="utf-8")
    await page.goto(network.url + "/verify")
    results = await page.evaluate(
        f"""(async () => {{
          const verify = await import('/static/js/verify.js');
          const genesis = await verify.readGenesis({json.dumps(genesis_text)}, "vectors");
          const run = async (handovers) => {{
            try {{ return (await verify.verifyHandovers(new verify.Report(), handovers, genesis, 14)).n; }}
            catch (e) {{ return e.message; }}
          }};
          return [await run([{json.dumps(step)}]), await run([{json.dumps(forged)}]), await run([])];
        }})()"""
    )
    assert results[0] == 5
    assert "does not hand over to the set the receipt lists" in results[1]
    assert results[2] == 4  # before its handover, only the genesis set is proven


async def test_the_node_serves_the_handovers_its_pages_verify(network: WebNetwork) -> None:
    """`/validator-sets.json?below=H`: none on a chain whose set never changed; a bad height is a 400."""
    assert await get_json(f"{network.url}/validator-sets.json?below=5") == {"validator_sets": []}
    async with aiohttp.ClientSession() as session:
        for query in ("", "?below=0", "?below=x"):
            async with session.get(f"{network.url}/validator-sets.json{query}") as response:
                assert response.status == 400, query
