"""Retirement receipts in the browser: the receipt page, its verifiable document, and the page that checks a
pasted or loaded document.

`/receipts/{id}.json` is the same self-contained document `carbonchain report retirement --out` writes
(audit.build_receipt_document; docs/protocol/audit.md): the record, its state proof, the header that
certifies the proof's root and that header's commit certificate. The node only assembles it; the browser
checks it (static/js/verify.js) against the genesis validator keys, so the page need not trust the node.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from audit import ProvenValue, build_receipt_document
from audit.handovers import Handover, handover_heights
from core.block import decode_certified_block
from core.errors import CodecError, InvalidInput
from core.validators import ValidatorSet
from node.web.site import SITE, Site, page, parse_hex_id, parse_int


@page
async def receipt(request: web.Request) -> web.Response:
    site = request.app[SITE]
    receipt_id = parse_hex_id(request.match_info["receipt"], "a receipt id")
    record = site.query("retirement", receipt=receipt_id)
    return site.render("receipt.html", page="offsets", record=record, receipt_id=receipt_id)


async def receipt_document(request: web.Request) -> web.Response:
    """The verifiable document; 409 with the height to wait for while the certifying block is not committed."""
    site = request.app[SITE]
    try:
        receipt_id = parse_hex_id(request.match_info["receipt"], "a receipt id")
        record = site.query("retirement", receipt=receipt_id)
    except InvalidInput as exc:  # QueryNotFound included
        return web.json_response({"error": "not_found", "message": str(exc)}, status=404)
    document, waiting_for = build_document(site, record)
    if document is None:
        return web.json_response(
            {
                "error": "not_certified_yet",
                "message": f"the proof's state is certified by block {waiting_for}, not committed yet",
                "certified_by_height": waiting_for,
            },
            status=409,
        )
    return web.json_response(document)


def build_document(site: Site, record: dict[str, Any]) -> tuple[dict[str, Any] | None, int]:
    """The receipt document, or None and the height of the block that will certify the proof."""
    key = str(record["state_key"]).encode("utf-8")
    proof = site.backend.get_key_proof(key)
    certified_by = int(proof["certified_by_height"])
    raw = site.backend.get_block_bytes(certified_by)
    if raw is None or proof["value_hex"] is None:
        return None, certified_by
    try:
        certified = decode_certified_block(raw, tx_bytes_max=site.genesis.consensus.tx_bytes_max)
    except (CodecError, InvalidInput) as exc:
        raise AssertionError(f"our own block {certified_by} does not decode: {exc}") from None
    proven = ProvenValue(
        key,
        bytes.fromhex(proof["value_hex"]),
        int(proof["height"]),
        bytes.fromhex(proof["state_root"]),
        certified.block.header,
    )
    handovers = compute_handovers(site, certified.block.header.height)
    document = build_receipt_document(site.genesis, record, proven, str(proof["proof"]), certified, handovers)
    return document, certified_by


def compute_handovers(site: Site, below: int) -> list[Handover]:
    """The validator-set handovers of every set that ended below height `below` (audit/handovers.py), from
    our own chain: what a verifier holding the genesis file needs to check a certificate of that height."""
    handovers = []
    for last, members in handover_heights(site.query("validators")["history"], below):
        raw = site.backend.get_block_bytes(last)
        assert raw is not None  # below a committed height
        block = decode_certified_block(raw, tx_bytes_max=site.genesis.consensus.tx_bytes_max)
        next_set = ValidatorSet(tuple((number, bytes.fromhex(key)) for number, key in members))
        handovers.append(Handover(block.block.header, block.certificate, next_set))
    return handovers


async def validator_sets(request: web.Request) -> web.Response:
    """`/validator-sets.json?below=H`: the handovers a browser follows from the genesis set to check the
    certificates of heights up to H (docs/protocol/audit.md, "Validator-set handovers")."""
    site = request.app[SITE]
    try:
        below = parse_int(request.query.get("below", ""), "below", minimum=1)
    except InvalidInput as exc:
        return web.json_response({"error": "invalid_request", "message": str(exc)}, status=400)
    return web.json_response({"validator_sets": [h.to_json() for h in compute_handovers(site, below)]})


@page
async def verify_page(request: web.Request) -> web.Response:
    """Check a receipt document pasted or loaded from a file; nothing is sent to the node."""
    return request.app[SITE].render("verify.html", page="verify")
