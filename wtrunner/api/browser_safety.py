"""Rules that keep web pages from driving a server they reach through the user's browser.

- **JSON bodies only.** A POST with a body that is not JSON (``Content-Type:
  application/json`` or ``application/*+json``) is a 415. The only cross-origin POSTs a page
  can send without asking first (no CORS preflight) are forms, ``text/plain`` and bodies
  without a type, so even where CORS lets any origin in, a page on another site cannot start
  a run with a plain form. A body without a Content-Type is taken as JSON (as the earlier
  implementation did) only from clients that are not browsers (no ``Origin`` header). A POST
  without a body (a cancel) passes whatever its Content-Type.
- **Only our own names on loopback.** A server listening on a loopback address answers only
  requests whose ``Host`` is ``localhost``, a ``*.localhost`` name, an IP address, its
  advertised host or a name in ``WTRUNNER_ALLOWED_HOSTS``: a page whose DNS name an attacker
  re-points at 127.0.0.1 (DNS rebinding) gets a 421. Open operations (health probes, the
  OpenAPI document) and what is not an operation (the console's static pages, a 404) answer
  every name: none of them shows or changes anyone's data.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from ..errors import MisdirectedRequestError, UnsupportedMediaTypeError
from ..settings import Settings, is_loopback
from .access import AccessPolicy
from .operations import Access, Handler

_SHOWN_CHARACTERS = 100


def host_names(settings: Settings) -> frozenset[str] | None:
    """The host names a server of ``settings`` answers to; None: any (it does not listen on
    loopback, so no browser reaches it by a name that was re-pointed at this machine)."""
    if not is_loopback(settings.host):
        return None
    names = {"localhost", settings.host.strip("[]").lower(), *settings.allowed_hosts}
    advertised = urlsplit(settings.effective_advertise_url).hostname
    if advertised:
        names.add(advertised.lower())
    return frozenset(names)


def host_allowed(host: str, names: frozenset[str]) -> bool:
    """Whether the ``Host`` header value ``host`` names this server (see the module)."""
    name = _hostname(host)
    if name is None:
        return False
    if name in names or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True  # an address: nothing to re-point


def _hostname(host: str) -> str | None:
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        name = host[1:end] if end > 0 else ""
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name.rstrip(".") or None


def is_json(content_type: str) -> bool:
    """Whether ``content_type`` (a media type without parameters) says JSON."""
    media_type = content_type.strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARACTERS else text[:_SHOWN_CHARACTERS] + "…"


def browser_safety_middleware(policy: AccessPolicy, settings: Settings) -> Middleware:
    """The middleware enforcing the module's two rules for a server of ``settings``."""
    names = host_names(settings)

    @web.middleware
    async def browser_safety(request: web.Request, handler: Handler) -> web.StreamResponse:
        if names is not None and policy.access(request) is not Access.OPEN:
            host = request.headers.get(hdrs.HOST)
            if host is not None and not host_allowed(host, names):
                raise MisdirectedRequestError(
                    f"this server does not answer to the host {_shown(host)!r}: it listens on "
                    "loopback and answers to localhost, IP addresses and the names of "
                    "WTRUNNER_ALLOWED_HOSTS"
                )
        if request.method == hdrs.METH_POST and request.body_exists:
            if hdrs.CONTENT_TYPE in request.headers:
                if not is_json(request.content_type):
                    raise UnsupportedMediaTypeError(
                        "the body of a POST must be JSON: send Content-Type: application/json "
                        f"(not {_shown(request.headers[hdrs.CONTENT_TYPE])!r})"
                    )
            elif hdrs.ORIGIN in request.headers:
                raise UnsupportedMediaTypeError(
                    "the body of a POST must be JSON: send Content-Type: application/json"
                )
        return await handler(request)

    return browser_safety
