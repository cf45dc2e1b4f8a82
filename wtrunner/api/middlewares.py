"""The middlewares every request passes through: request id, JSON errors, compression."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from aiohttp import hdrs, web

from ..errors import WtrunnerError
from ..keys import METRICS, SETTINGS
from ..logs import request_id_var
from ..metrics import observe_request
from .operations import Handler

log = logging.getLogger(__name__)

COMPRESS_MIN_BYTES = 1000
_REQUEST_ID_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def _request_id(request: web.Request) -> str:
    incoming = request.headers.get("X-Request-ID", "")
    if 0 < len(incoming) <= 128 and set(incoming) <= _REQUEST_ID_OK:
        return incoming
    return uuid.uuid4().hex


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id (the client's ``X-Request-ID`` when sane) for logs and replies."""
    request_id = _request_id(request)
    token = request_id_var.set(request_id)
    try:
        response = await handler(request)
    finally:
        request_id_var.reset(token)
    response.headers["X-Request-ID"] = request_id
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every failure as JSON: our errors, aiohttp's HTTP errors, and the unexpected."""
    try:
        return await handler(request)
    except WtrunnerError as exc:
        return web.json_response(exc.body(), status=exc.status, headers=exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {
            name: value
            for name, value in exc.headers.items()
            if name not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH)
        }
        detail = _reason(request, exc)
        return web.json_response({"detail": detail}, status=exc.status, headers=headers)
    except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
        raise
    except Exception:
        request_id = request_id_var.get()
        log.exception(
            "unhandled error in %s %s",
            request.method,
            request.path,
            extra={"request_id": request_id},
        )
        return web.json_response(
            {"detail": "Internal server error", "request_id": request_id}, status=500
        )


def _reason(request: web.Request, exc: web.HTTPException) -> str:
    if exc.status == 413:
        limit = request.app[SETTINGS].max_body_bytes
        return f"Request body too large: the limit is {limit} bytes (WTRUNNER_MAX_BODY_BYTES)"
    if exc.status == 405:
        return f"Method {request.method} not allowed; allowed: {exc.headers.get(hdrs.ALLOW, '')}"
    if exc.status == 404:
        return f"Not found: {request.path}"
    return exc.reason


@web.middleware
async def compression_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """gzip bodies of at least 1000 bytes for clients that accept it; smaller ones stay plain."""
    response = await handler(request)
    if (
        isinstance(response, web.Response)
        and isinstance(response.body, bytes)
        and len(response.body) >= COMPRESS_MIN_BYTES
        and "gzip" in request.headers.get(hdrs.ACCEPT_ENCODING, "").lower()
    ):
        response.enable_compression(web.ContentCoding.gzip)
    return response


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request by route template and status (probes and /metrics excluded)."""
    started = time.perf_counter()
    response = await handler(request)  # errors are responses by now (error middleware)
    observe_request(request.app[METRICS], request, response.status, started)
    return response
