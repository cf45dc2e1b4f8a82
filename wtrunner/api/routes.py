"""The route table: every operation wtrunner serves, registered in one place."""

from __future__ import annotations

import functools
from typing import Any

import aiohttp_cors
from aiohttp import web

from . import health
from .models import OpenAPIDocument, ReadinessResponse, StatusResponse
from .openapi import build_openapi
from .operations import Operation, error_responses


async def openapi_document(request: web.Request) -> web.Response:
    """``GET /openapi.json``: the OpenAPI 3.1 document of this service."""
    return web.json_response(_openapi())


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET", "/", health.health, "Health check", {200: (StatusResponse,)}, tags=("health",)
    ),
    Operation(
        "GET", "/livez", health.livez, "Liveness probe", {200: (StatusResponse,)}, tags=("health",)
    ),
    Operation(
        "GET",
        "/readyz",
        health.readyz,
        "Readiness probe (503 once shutdown has begun)",
        {200: (ReadinessResponse,), 503: (ReadinessResponse,)},
        tags=("health",),
    ),
    Operation(
        "GET",
        "/openapi.json",
        openapi_document,
        "This OpenAPI document",
        {200: (OpenAPIDocument,), **error_responses(500)},
        tags=("meta",),
    ),
)


@functools.cache
def _openapi() -> dict[str, Any]:
    return build_openapi(OPERATIONS)


def setup_routes(app: web.Application) -> None:
    """Register every operation, with CORS for any origin (credentials allowed)."""
    cors = aiohttp_cors.setup(
        app,
        defaults={
            "*": aiohttp_cors.ResourceOptions(  # type: ignore[no-untyped-call]
                allow_credentials=True,
                expose_headers="*",
                allow_headers="*",
                allow_methods=["GET", "POST"],
            )
        },
    )
    for op in OPERATIONS:
        cors.add(app.router.add_route(op.method, op.path, op.handler, name=op.handler.__name__))
