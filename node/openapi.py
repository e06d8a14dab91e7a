"""The OpenAPI 3.1 document served at /v1/openapi.json, generated from the route table of node/api.py.

Every route the API serves is a `Route`: its path, the pydantic models of its query parameters and request
body (node/schemas.py, the ones the handler validates with) and of each response. `build_openapi` turns the
table into the document, so a route cannot exist without being described and a described type cannot
differ from what the handler checks and sends. The chaincode queries (`/v1/carbon/<name>`) are one route
each, their parameters typed from the same chaincode argument specs that parse them (chaincode.QuerySpec).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from chaincode import Arg, QuerySpec
from chaincode.base import HEX32_PATTERN, ID_PATTERN, ORG_PATTERN
from node.schemas import EVENT_MESSAGES, ErrorBody

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_REF = "#/components/schemas/{model}"
ERROR_TEXT = {
    400: "the request is invalid (the message says which parameter and why)",
    404: "no such object",
    409: "the transaction is already committed",
    413: "the body is too large",
    415: "the body is encoded in a way the node does not take",
    503: "the node cannot take it now: retry later",
}


@dataclass(frozen=True)
class PathParam:
    name: str
    description: str
    schema: Mapping[str, Any]


@dataclass(frozen=True)
class Route:
    """One endpoint: how aiohttp routes it and how the document describes it."""

    method: str
    path: str  # the OpenAPI template, e.g. /v1/state/{key}/history
    handler: Handler
    summary: str
    ok: type[BaseModel] | Mapping[str, type[BaseModel] | Mapping[str, Any]]  # a model, or media type ->
    ok_status: int = 200
    also_ok: tuple[tuple[int, type[BaseModel]], ...] = ()  # other success answers: (status, body)
    errors: tuple[int, ...] = ()
    path_params: tuple[PathParam, ...] = ()
    query: type[BaseModel] | None = None  # query-string parameters (validated by node.schemas.parse_query)
    query_args: tuple[Arg, ...] = ()  # or a chaincode query's parameters, typed by their specs
    body: Mapping[str, type[BaseModel] | Mapping[str, Any]] = field(default_factory=dict)  # media type ->
    router_path: str | None = None  # when aiohttp needs another pattern (a key with "/")
    description: str = ""
    operation_id: str = ""  # default: the handler's name

    @property
    def aiohttp_path(self) -> str:
        return self.router_path or self.path


def build_openapi(routes: Sequence[Route]) -> dict[str, Any]:
    models = _collect_models(routes)
    refs, definitions = models_json_schema([(model, "validation") for model in models], ref_template=_REF)
    ref_of = {model: refs[(model, "validation")] for model in models}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, ref_of)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "carbonchain node API",
            "version": "1",
            "description": "Every validator and observer serves this API (docs/API.md). Errors are "
            "ErrorBody with a 4xx status; a 5xx is a bug of the node.",
        },
        "paths": paths,
        "components": {"schemas": definitions.get("$defs", {})},
    }


def _collect_models(routes: Iterable[Route]) -> list[type[BaseModel]]:
    models: dict[type[BaseModel], None] = {ErrorBody: None}
    for model in EVENT_MESSAGES:
        models[model] = None
    for route in routes:
        oks = route.ok.values() if isinstance(route.ok, Mapping) else (route.ok,)
        for candidate in (*oks, *route.body.values(), *(model for _, model in route.also_ok)):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                models[candidate] = None
    return list(models)


def _operation(route: Route, ref_of: Mapping[type[BaseModel], Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.operation_id or route.handler.__name__,
        "summary": route.summary,
        "responses": {str(route.ok_status): _ok_response(route, ref_of)},
    }
    for status, model in route.also_ok:
        operation["responses"][str(status)] = {
            "description": model.__doc__.strip() if model.__doc__ else "success",
            "content": {"application/json": {"schema": ref_of[model]}},
        }
    if route.description:
        operation["description"] = route.description
    parameters = [
        {
            "name": p.name,
            "in": "path",
            "required": True,
            "description": p.description,
            "schema": dict(p.schema),
        }
        for p in route.path_params
    ]
    if route.query is not None:
        parameters += _model_parameters(route.query)
    parameters += [_arg_parameter(arg) for arg in route.query_args]
    if parameters:
        operation["parameters"] = parameters
    if route.body:
        operation["requestBody"] = {
            "required": True,
            "content": {media: {"schema": _schema(kind, ref_of)} for media, kind in route.body.items()},
        }
    for status in route.errors:
        operation["responses"][str(status)] = {
            "description": ERROR_TEXT.get(status, "error"),
            "content": {"application/json": {"schema": ref_of[ErrorBody]}},
        }
    return operation


def _ok_response(route: Route, ref_of: Mapping[type[BaseModel], Any]) -> dict[str, Any]:
    if route.ok_status == 101:  # a WebSocket: the messages it sends are listed by schema
        return {
            "description": "switching protocols: a WebSocket of JSON messages, each one of the schemas in "
            "x-messages",
            "x-messages": [ref_of[model] for model in EVENT_MESSAGES],
        }
    if isinstance(route.ok, type):
        content = {"application/json": {"schema": ref_of[route.ok]}}
    else:
        content = {media: {"schema": _schema(kind, ref_of)} for media, kind in route.ok.items()}
    return {"description": "success", "content": content}


def _schema(kind: type[BaseModel] | Mapping[str, Any], ref_of: Mapping[type[BaseModel], Any]) -> Any:
    return ref_of[kind] if isinstance(kind, type) else dict(kind)


def _model_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = _without_null(dict(prop))
        description = prop.pop("description", "")
        prop.pop("title", None)
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "description": description,
                "schema": prop,
            }
        )
    return parameters


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """`int | None` as a query parameter is an integer that may be left out: drop the null alternative."""
    choices = prop.pop("anyOf", None)
    if choices is not None:
        (kept,) = [choice for choice in choices if choice.get("type") != "null"]
        prop = {**kept, **prop}
    if prop.get("default", 0) is None:
        del prop["default"]
    return prop


def _arg_parameter(arg: Arg) -> dict[str, Any]:
    schema: dict[str, Any]
    if arg.kind == "int":
        schema = {"type": "integer", "minimum": arg.minimum, "maximum": arg.maximum}
    elif arg.kind == "bool":
        schema = {"type": "boolean"}
    elif arg.kind == "enum":
        schema = {"type": "string", "enum": list(arg.choices)}
    elif arg.kind in ("org", "id", "hex32"):
        pattern = {"org": ORG_PATTERN, "id": ID_PATTERN, "hex32": HEX32_PATTERN}[arg.kind]
        schema = {"type": "string", "pattern": pattern.pattern}
    else:
        schema = {"type": "string", "minLength": 1, "maxLength": arg.max_len}
    if not arg.required and arg.default is not None:
        schema["default"] = arg.default
    description = arg.description + (f" [{arg.unit}]" if arg.unit else "")
    return {
        "name": arg.name,
        "in": "query",
        "required": arg.required,
        "description": description,
        "schema": schema,
    }


def query_routes(queries: Mapping[str, QuerySpec], handler: Handler, ok: Mapping[str, Any]) -> list[Route]:
    """One route per chaincode query, its parameters typed from the query's argument specs."""
    return [
        Route(
            "GET",
            f"/v1/carbon/{name}",
            handler,
            spec.description,
            ok,
            errors=(400, 404),
            query_args=spec.params,
            description="A carbon chaincode query; its result is described in docs/CHAINCODE.md.",
            operation_id=f"query_{name}",
        )
        for name, spec in queries.items()
    ]
