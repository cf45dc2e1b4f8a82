"""CORS: the browser origins that may call the API (``WTRUNNER_CORS_ORIGINS``).

With authentication off and nothing configured, any origin may (credentials allowed), as the
API has always allowed; with authentication on, only the origins listed (none by default: the
console wtrunner serves is same-origin and needs no CORS).
"""

from __future__ import annotations

import aiohttp_cors
from aiohttp import web

from ..keys import SETTINGS
from ..settings import Settings


def cors_options(settings: Settings) -> dict[str, aiohttp_cors.ResourceOptions]:
    """aiohttp-cors' options for each allowed origin (``*``: any origin)."""
    return {
        origin: aiohttp_cors.ResourceOptions(  # type: ignore[no-untyped-call]
            allow_credentials=True,
            expose_headers="*",
            allow_headers="*",
            allow_methods=["GET", "POST", "DELETE"],
        )
        for origin in settings.effective_cors_origins
    }


def origin_allowed(settings: Settings, origin: str) -> bool:
    """Whether a browser page of ``origin`` may read this server's answers."""
    origins = settings.effective_cors_origins
    return origins == ("*",) or origin in origins


async def cors_for_unrouted(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the CORS headers of an allowed origin on answers aiohttp-cors
    does not handle (it answers for registered routes only; a 404 or 405 must be readable by
    a browser front end too)."""
    origin = request.headers.get("Origin")
    if (
        origin
        and request.method != "OPTIONS"
        and "Access-Control-Allow-Origin" not in response.headers
        and origin_allowed(request.app[SETTINGS], origin)
    ):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers.add("Vary", "Origin")
