"""The web console: the built single-page app in ``wtrunner/console_dist`` (sources in
``console/``), served at ``/ui/`` and, for the API documentation page, at ``/docs``.

Not part of the HTTP API (the OpenAPI document leaves these routes out). Hashed assets under
``/ui/assets/`` are cached for a year; every other path under ``/ui/`` is a page of the app and
answers its ``index.html`` (never cached), into which the server writes the console's settings.
Nothing is loaded from elsewhere: the Content-Security-Policy allows this origin only.
"""

from __future__ import annotations

import html
import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import anyio.to_thread
from aiohttp import web

from ..keys import SETTINGS
from ..version import __version__

DIST = Path(__file__).resolve().parents[1] / "console_dist"
ROUTE_PREFIX = "console-"
CONFIG_PLACEHOLDER = '<meta name="wtrunner-config" content="{}" />'
ASSETS = "assets"
IMMUTABLE = "public, max-age=31536000, immutable"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; img-src 'self' data:; "
        "style-src 'self' 'unsafe-inline'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class _File:
    body: bytes
    content_type: str
    charset: str | None


class ConsoleBundle:
    """The files of the built console, listed and read once each (the bundle never changes
    while the server runs), and the handlers that serve them."""

    def __init__(self, dist: Path = DIST) -> None:
        self.dist = dist
        self._names: frozenset[str] | None = None
        self._files: dict[str, _File] = {}
        self._index: str | None = None  # index.html with the settings written in

    async def _file(self, relative: str) -> _File | None:
        if self._names is None:
            self._names = await anyio.to_thread.run_sync(self._list)
        if relative not in self._names:
            return None  # nothing is kept for names outside the bundle
        if relative not in self._files:
            self._files[relative] = await anyio.to_thread.run_sync(self._read, relative)
        return self._files[relative]

    def _list(self) -> frozenset[str]:
        if not self.dist.is_dir():
            return frozenset()
        return frozenset(
            path.relative_to(self.dist).as_posix()
            for path in self.dist.rglob("*")
            if path.is_file()
        )

    def _read(self, relative: str) -> _File:
        path = self.dist / relative
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        textual = content_type.startswith("text/") or content_type in (
            "application/javascript",
            "application/json",
            "image/svg+xml",
        )
        return _File(path.read_bytes(), content_type, "utf-8" if textual else None)

    async def page(self, request: web.Request) -> web.StreamResponse:
        """``GET /ui/{path}``: an asset of the bundle, or else the app's page."""
        relative = _safe_relative(request.match_info.get("path", ""))
        if relative and relative != "index.html":
            found = await self._file(relative)
            if found is not None:
                cache = IMMUTABLE if relative.startswith(f"{ASSETS}/") else "no-cache"
                return web.Response(
                    body=found.body,
                    content_type=found.content_type,
                    charset=found.charset,
                    headers={"Cache-Control": cache, **SECURITY_HEADERS},
                )
            if relative.startswith(f"{ASSETS}/"):
                raise web.HTTPNotFound()
        return await self.index(request)

    async def index(self, request: web.Request) -> web.Response:
        """The app's ``index.html`` with the console's settings written in (its router shows
        the page the URL names: ``/ui/runs/{id}``, ``/docs``, ...)."""
        if self._index is None:  # the bundle and the settings do not change while serving
            found = await self._file("index.html")
            if found is None:
                raise web.HTTPNotFound(reason="The console is not built into this installation")
            settings = request.app[SETTINGS]
            config = {"resultsUrl": settings.effective_console_results_url, "version": __version__}
            meta = f'<meta name="wtrunner-config" content="{html.escape(json.dumps(config))}" />'
            self._index = found.body.decode().replace(CONFIG_PLACEHOLDER, meta, 1)
        return web.Response(
            text=self._index,
            content_type="text/html",
            headers={"Cache-Control": "no-cache", **SECURITY_HEADERS},
        )


async def _redirect_to_console(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect("/ui/")


def _safe_relative(tail: str) -> str:
    """``tail`` as a path inside the bundle, or "" when it is a page (or tries to leave)."""
    parts = PurePosixPath(tail).parts
    if not parts or any(part in ("..", ".") or part.startswith("/") for part in parts):
        return ""
    return "/".join(parts)


def setup_console(app: web.Application, dist: Path = DIST) -> None:
    """Serve the console at ``/ui/`` and the API documentation page at ``/docs``."""
    bundle = ConsoleBundle(dist)
    app.router.add_get("/ui", _redirect_to_console, name=f"{ROUTE_PREFIX}redirect")
    app.router.add_get("/ui/{path:.*}", bundle.page, name=f"{ROUTE_PREFIX}page")
    app.router.add_get("/docs", bundle.index, name=f"{ROUTE_PREFIX}docs")


def is_console_route(route: web.AbstractRoute) -> bool:
    """Whether ``route`` serves the console (not an operation of the HTTP API)."""
    return (route.name or "").startswith(ROUTE_PREFIX)
