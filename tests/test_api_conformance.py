"""Every route against its OpenAPI document, with schemathesis generating the requests.

The server is the session's real ``wtrunner serve`` (``live_server``): results may only go
under its temporary root (anything else is a 422), so generated requests cannot write elsewhere.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers import LiveServer
from wtrunner.api.openapi import build_openapi
from wtrunner.api.routes import OPERATIONS

CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


# The document the app serves at /openapi.json (the first test checks that it is this one).
schema = schemathesis.openapi.from_dict(build_openapi(OPERATIONS))


def test_the_document_is_the_served_one(live_server: LiveServer) -> None:
    with urllib.request.urlopen(f"{live_server.url}/openapi.json") as response:
        assert json.load(response) == json.loads(json.dumps(build_openapi(OPERATIONS)))


def no_plain_text_and_no_bare_500(ctx: Any, response: Any, case: Any) -> bool:
    """Every answer is JSON (but Prometheus' own format), and a 500 is a workflow's outcome or
    an error with a request id, never a traceback."""
    content_type = response.headers.get("content-type", [""])[0]
    if case.path != "/metrics":
        assert content_type.startswith("application/json"), f"{case.path}: {content_type}"
    if response.status_code == 500:
        body = response.json()
        assert "Traceback" not in response.text
        assert body.get("error") or body.get("request_id"), body
    return True


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_route_conforms_to_the_document(case: Any, live_server: LiveServer) -> None:
    case.call_and_validate(
        base_url=live_server.url, checks=[*CHECKS, no_plain_text_and_no_bare_500]
    )
