"""GET /openapi.json: a valid OpenAPI 3.1 document that lists every route the app serves (but
the web console's pages)."""

from __future__ import annotations

from openapi_spec_validator import validate

from tests.helpers import ClientFactory
from wtrunner.api.console import is_console_route


async def test_openapi_document_is_valid_and_lists_every_route(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    response = await client.get("/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.1")
    validate(document)

    served = {
        (route.method.lower(), route.resource.canonical)
        for route in client.app.router.routes()
        if route.method not in ("HEAD", "OPTIONS")
        and route.resource is not None
        # the web console's pages are not operations of the API
        and not is_console_route(route)
    }
    documented = {
        (method, path) for path, methods in document["paths"].items() for method in methods
    }
    assert served == documented
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            assert operation["responses"], (method, path)
