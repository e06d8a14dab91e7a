"""JSON views of chain objects for the API: blocks, transactions, results, certificates.

Bytes become lowercase hex; everything else is already JSON-compatible (the codec allows no floats).
"""

from __future__ import annotations

from typing import Any

from core import codec
from core.block import BlockHeader, CommitCertificate, TxResult
from core.errors import CodecError
from core.tx import SignedTx


def to_json_safe(value: Any) -> Any:
    """Replace bytes by hex, recursively."""
    if type(value) is bytes:
        return value.hex()
    if type(value) is dict:
        return {key: to_json_safe(item) for key, item in value.items()}
    if type(value) is list or type(value) is tuple:
        return [to_json_safe(item) for item in value]
    return value


def state_value_json(value: bytes | None) -> Any:
    """A state value for display: decoded canonical msgpack, or {"hex": ...} if it is not one."""
    if value is None:
        return None
    try:
        return to_json_safe(codec.decode(value))
    except CodecError:
        return {"hex": value.hex()}


def header_json(header: BlockHeader) -> dict[str, Any]:
    result: dict[str, Any] = to_json_safe(header.to_wire())
    return result


def certificate_json(certificate: CommitCertificate | None) -> dict[str, Any] | None:
    if certificate is None:
        return None
    return {
        "view": certificate.view,
        "height": certificate.height,
        "block_hash": certificate.block_hash.hex(),
        "votes": [
            {"validator": index, "signature": signature.hex()} for index, signature in certificate.votes
        ],
    }


def result_json(result: TxResult) -> dict[str, Any]:
    return {"code": result.code, "message": result.message, "events": to_json_safe(list(result.events))}


def transaction_json(tx: SignedTx, result: TxResult | None = None) -> dict[str, Any]:
    body = tx.body
    entry: dict[str, Any] = {
        "tx_id": tx.tx_id.hex(),
        "chaincode": body.chaincode,
        "function": body.function,
        "args": to_json_safe(dict(body.args)),
        "sender_org": body.sender_org,
        "sender_key": body.sender_key.hex(),
        "nonce": body.nonce,
        "valid_until": body.valid_until,
        "signature": tx.signature.hex(),
    }
    if result is not None:
        entry["result"] = result_json(result)
    return entry


def block_json(
    header: BlockHeader,
    txs: tuple[SignedTx, ...],
    results: tuple[TxResult, ...],
    certificate: CommitCertificate | None,
    state_root_after: bytes,
) -> dict[str, Any]:
    return {
        "height": header.height,
        "hash": header.block_hash.hex(),
        "header": header_json(header),
        "state_root_after": state_root_after.hex(),
        "txs": [transaction_json(tx, result) for tx, result in zip(txs, results, strict=True)],
        "certificate": certificate_json(certificate),
    }
