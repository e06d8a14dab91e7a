"""The OpenAPI 3.1 document served at /v1/openapi.json (kept beside the handlers in node/api.py)."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}
_JSON_OBJECT = {"type": "object"}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema or _JSON_OBJECT}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _ok("error", _ERROR) for code in codes}


def _path_param(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or {"type": "string"},
    }


_TX_ID = _path_param(
    "tx_id", "transaction id, 64 hex digits", {"type": "string", "pattern": "^[0-9a-f]{64}$"}
)
_KEY = _path_param(
    "key",
    "state key as UTF-8 text (a '/' as written or as %2F; percent-decoded once), or hex with a 0x prefix",
)

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "carbonchain node API", "version": "1"},
    "paths": {
        "/v1/txs": {
            "post": {
                "summary": "Submit a signed transaction (JSON form, or msgpack with Content-Type application/msgpack)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _JSON_OBJECT},
                        "application/msgpack": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                "responses": {"202": _ok("accepted; pending"), **_errors(400, 409, 413, 415, 503)},
            }
        },
        "/v1/txs/{tx_id}": {
            "get": {
                "summary": "Status of a transaction: pending, committed (height, index, code, message) or unknown",
                "parameters": [_TX_ID],
                "responses": {"200": _ok("status"), **_errors(400)},
            }
        },
        "/v1/blocks/latest": {
            "get": {
                "summary": "The latest committed block",
                "responses": {"200": _ok("block"), **_errors(404)},
            }
        },
        "/v1/blocks/{height}": {
            "get": {
                "summary": "A committed block: header, transactions, results, commit certificate (?format=msgpack for bytes)",
                "parameters": [_path_param("height", "block height", {"type": "integer", "minimum": 1})],
                "responses": {"200": _ok("block"), **_errors(400, 404)},
            }
        },
        "/v1/status": {"get": {"summary": "Node status", "responses": {"200": _ok("status")}}},
        "/v1/carbon/{query}": {
            "get": {
                "summary": "A carbon chaincode query (see docs/CHAINCODE.md); parameters as query string",
                "parameters": [_path_param("query", "query name")],
                "responses": {"200": _ok("result"), **_errors(400, 404)},
            }
        },
        "/v1/state/{key}/history": {
            "get": {
                "summary": "Every version of a state key with height and transaction",
                "parameters": [_KEY],
                "responses": {"200": _ok("history"), **_errors(400)},
            }
        },
        "/v1/state/{key}/proof": {
            "get": {
                "summary": "An inclusion or non-inclusion proof of a state key against the latest state root",
                "parameters": [_KEY],
                "responses": {"200": _ok("proof"), **_errors(400)},
            }
        },
        "/v1/events": {
            "get": {
                "summary": "WebSocket stream of committed blocks and transaction results",
                "responses": {"101": {"description": "switching protocols"}},
            }
        },
        "/v1/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": _ok("OpenAPI document")}}
        },
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": _ok("alive")}}},
        "/readyz": {
            "get": {
                "summary": "Readiness: caught up, connected to a quorum, not halted or paused ({ready, reason})",
                "responses": {"200": _ok("ready"), "503": _ok("not ready")},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "text exposition format"}},
            }
        },
    },
}
