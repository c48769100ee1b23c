"""Schemathesis over the JSON API's own OpenAPI document (/api/openapi.json): generated queries — valid and not —
for every operation, sent as an admin of the tenant, must never make the application fail (no 5xx) and every answer
must be one the document declares, in the shape it declares."""

from __future__ import annotations

from typing import Any

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.web.conftest import ADMIN
from web.app import create_app
from web.auth import Agent, session_agent
from web.settings import WebSettings


def _app(url: str) -> Any:
    app = create_app(WebSettings(database_url=url))
    app.dependency_overrides[session_agent] = lambda: Agent("sub-admin", ADMIN, "Admin")
    return app


# schemathesis' pytest loaders (from_fixture) break on pytest 9 (`Function._nodeid`): the operations are walked here
# and each one's strategy is driven by Hypothesis directly. The requests are sent with Starlette's test client
# (httpx), not schemathesis' requests transport: caldav brings urllib3-future, whose pool manager that transport's
# connection counting cannot read.
def test_the_api_never_fails_and_answers_as_documented(state: str) -> None:
    app = _app(state)
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    client = TestClient(app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {operation.path for operation in operations} == {"/api/savings", "/api/links/lookup", "/api/console"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def exercise(case: Any) -> None:
            response = client.request(case.method, case.formatted_path, params=case.query, headers=case.headers)
            case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                                     response_schema_conformance])

        exercise()
