"""The API against its own OpenAPI document (issue 18 problem 9), on a real node process with a few blocks.

The document must be valid OpenAPI 3.1 and describe every route the node serves; then schemathesis
generates requests from it for every operation (valid ones, and invalid ones for the parameters and
bodies it can break) and checks each answer: never a 5xx, only documented status codes and content types,
and bodies that match their schemas.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.definitions import OPENAPI_31

from client import CarbonClient
from core.devkeys import dev_admin_key
from node.api import OPENAPI, ROUTES, build_api
from tests.integration.cluster import Cluster, wait_until

pytestmark = pytest.mark.timeout(240)
EXAMPLES_PER_OPERATION = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cluster = Cluster(tmp_path_factory.mktemp("schema-net"), validators=1, observers=0)
    try:
        cluster.start()
        url = cluster.api_url("validator-0")
        asyncio.run(_commit_a_few(url))
        yield url
        cluster.close()
        cluster.assert_no_tracebacks()
    except BaseException:
        print(cluster.log_tail("validator-0"))
        raise
    finally:
        cluster.close()


async def _commit_a_few(url: str) -> None:
    async with CarbonClient(url) as client:
        await wait_until(client.is_ready, timeout_s=30, what="the node to be ready")
        signer = await client.signer(org="bank", key=dev_admin_key("bank"))
        for i in range(3):
            tx = signer.build("deposit_cash", {"org": "ent-a", "amount_fen": 5, "bank_ref": f"S-{i}"})
            assert (await client.submit_and_wait(tx)).is_ok


def test_the_document_is_valid_openapi_and_names_every_route(node_url: str) -> None:
    jsonschema_rs.Draft202012Validator(OPENAPI_31).validate(OPENAPI)
    for name, schema in OPENAPI["components"]["schemas"].items():
        assert jsonschema_rs.meta.is_valid(schema), name
    with urllib.request.urlopen(node_url + "/v1/openapi.json", timeout=10) as response:
        assert json.loads(response.read()) == json.loads(json.dumps(OPENAPI))
    served = {
        (r.method, r.resource.canonical) for r in build_api(_NoBackend(), body_bytes_max=1024).router.routes()
    }  # type: ignore[arg-type, union-attr]
    assert served == {(route.method, route.path) for route in ROUTES}
    described = {(method.upper(), path) for path, item in OPENAPI["paths"].items() for method in item}
    assert described == {(route.method, route.path) for route in ROUTES}
    # every query parameter is typed, every answer has a schema
    for path, item in OPENAPI["paths"].items():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                assert "type" in parameter["schema"], (path, parameter["name"])
            for status, response in operation["responses"].items():
                assert status == "101" or response.get("content"), (path, status)


class _NoBackend:
    """build_api only stores its backend; the route table is what this test looks at."""


def _cases() -> list[Any]:
    """(operation, mode) pairs: every operation with valid input, and with invalid input where it has
    parameters or a body to make invalid."""
    schema = schemathesis.openapi.from_dict(OPENAPI)
    cases = []
    for result in schema.get_all_operations():
        operation = result.ok()
        described = OPENAPI["paths"][operation.path][operation.method.lower()]
        cases.append(pytest.param(operation, GenerationMode.POSITIVE, id=f"{operation.label} valid"))
        if "parameters" in described or "requestBody" in described:
            cases.append(pytest.param(operation, GenerationMode.NEGATIVE, id=f"{operation.label} invalid"))
    return cases


@pytest.mark.parametrize(("operation", "mode"), _cases())
def test_the_live_api_keeps_to_its_document(node_url: str, operation: Any, mode: GenerationMode) -> None:
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        response = case.call(base_url=node_url, timeout=30)
        case.validate_response(response, checks=CHECKS)

    check()


def test_unknown_parameters_and_nonsense_filters_are_refused(node_url: str) -> None:
    for path in (
        "/v1/events?blocks=maybe",
        "/v1/events?from_height=0",
        "/v1/events?tx=xyz",
        "/v1/events?limit=5",
        "/v1/state/bal/ent-a/cash/history?limt=5",
        "/v1/blocks/1?format=xml",
        "/v1/carbon/holdings?org=ent-a&org=ent-b",
    ):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(node_url + path, timeout=10)
        assert refused.value.code == 400, path
        body = json.loads(refused.value.read())
        assert body["error"] == "invalid_request" and body["message"], path
