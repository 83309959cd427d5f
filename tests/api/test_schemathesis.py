"""Property-based tests from the OpenAPI schema (schemathesis): for every operation, with
generated parameters and bodies (valid and invalid), the API never answers a 5xx, and every
answer matches its documented status, content type and body schema."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ecocluster.api import create_app
from tests.api.conftest import World, build_world, write_territory

pytestmark = [pytest.mark.slow]


def _world() -> World:
    """Built at import: schemathesis parametrizes at collection time, from a live app."""
    tmp = Path(tempfile.mkdtemp(prefix="ecocluster-schemathesis-"))
    world = asyncio.run(build_world(tmp, write_territory(tmp / "territory.yaml")))

    async def broker_up() -> None:  # no broker in this test: readiness answers 200
        return None

    world.deps.checks = {"broker": broker_up}
    return world


WORLD = _world()
#: Examples per operation; raise it for a deeper run (ECOCLUSTER_SCHEMATHESIS_EXAMPLES=500).
EXAMPLES = int(os.environ.get("ECOCLUSTER_SCHEMATHESIS_EXAMPLES", "12"))
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", create_app(WORLD.deps)).exclude(
    path="/api/v1/stream"  # an endless event stream; tests/api/test_stream.py covers it
)


def _no_server_error(ctx, response, case) -> None:  # type: ignore[no-untyped-def]
    if response.status_code >= 500:
        raise AssertionError(
            f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
        )


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_5xx_and_answers_match_the_schema(case: schemathesis.Case) -> None:
    world = WORLD
    world.alerts.down = False
    case.call_and_validate(
        headers={"Authorization": f"Bearer {world.tokens['coordinator']}"},
        checks=[
            _no_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )


def test_the_schema_documents_errors_and_examples() -> None:
    raw = schema.raw_schema
    assert "ErrorResponse" in raw["components"]["schemas"]
    secured = [
        (path, method)
        for path, item in raw["paths"].items()
        for method, op in item.items()
        if op.get("security")
    ]
    for path, method in secured:
        responses = raw["paths"][path][method]["responses"]
        assert "401" in responses and "403" in responses, (path, method)
        example = responses["401"]["content"]["application/json"]["example"]
        assert example["error"]["code"] == "unauthorized"
    assert raw["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
