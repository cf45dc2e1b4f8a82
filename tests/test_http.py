"""The HTTP surface every route shares: JSON errors, CORS, compression, request ids."""

from __future__ import annotations

import gzip
import logging

import pytest
from aiohttp import web
from pydantic import BaseModel

from tests.helpers import ClientFactory, SettingsFactory
from wtrunner.api.parsing import parse_json_body
from wtrunner.app import create_app

JSON_BODY = {"Content-Type": "application/json"}


class Echo(BaseModel):
    name: str
    data_connections_env_vars: dict[str, str] | None = None


async def _echo(request: web.Request) -> web.Response:
    body = await parse_json_body(request, Echo)
    return web.json_response({"name": body.name})


async def _explode(request: web.Request) -> web.Response:
    raise RuntimeError("secret internals /etc/shadow")


def _app_with_test_routes(make_settings: SettingsFactory, **overrides: object) -> web.Application:
    app = create_app(make_settings(**overrides))
    app.router.add_post("/test/echo", _echo)
    app.router.add_get("/test/explode", _explode)
    return app


async def test_unknown_route_is_json_404(make_client: ClientFactory) -> None:
    client = await make_client()
    response = await client.get("/no/such/route")
    assert response.status == 404
    assert response.content_type == "application/json"
    assert "/no/such/route" in (await response.json())["detail"]


async def test_wrong_method_is_json_405_with_allow(make_client: ClientFactory) -> None:
    client = await make_client()
    response = await client.delete("/livez")
    assert response.status == 405
    assert response.content_type == "application/json"
    assert "GET" in response.headers["Allow"]
    assert "DELETE" in (await response.json())["detail"]


async def test_body_over_the_limit_is_json_413(
    make_client: ClientFactory, make_settings: SettingsFactory
) -> None:
    client = await make_client(app=_app_with_test_routes(make_settings, max_body_bytes=1024))
    response = await client.post(
        "/test/echo", data=b'{"name": "' + b"x" * 2000 + b'"}', headers=JSON_BODY
    )
    assert response.status == 413
    assert response.content_type == "application/json"
    assert "1024" in (await response.json())["detail"]


@pytest.mark.parametrize(
    ("body", "error_type", "loc"),
    [
        (b"not json at all", "json_invalid", ["body"]),
        (b"[1, 2]", "model_type", ["body"]),
        (b"", "missing", ["body"]),
        (b'{"other": 1}', "missing", ["body", "name"]),
    ],
)
async def test_body_that_is_not_a_valid_object_is_422(
    make_client: ClientFactory,
    make_settings: SettingsFactory,
    body: bytes,
    error_type: str,
    loc: list[str],
) -> None:
    client = await make_client(app=_app_with_test_routes(make_settings))
    response = await client.post("/test/echo", data=body, headers=JSON_BODY)
    assert response.status == 422
    assert response.content_type == "application/json"
    detail = (await response.json())["detail"]
    assert detail[0]["type"] == error_type
    assert detail[0]["loc"][: len(loc)] == loc
    assert set(detail[0]) == {"type", "loc", "msg", "input"}


async def test_422_never_echoes_secret_values(
    make_client: ClientFactory, make_settings: SettingsFactory
) -> None:
    client = await make_client(app=_app_with_test_routes(make_settings))
    response = await client.post(
        "/test/echo", json={"data_connections_env_vars": {"TOKEN": "canary-s3cr3t"}}
    )
    assert response.status == 422
    assert "canary-s3cr3t" not in await response.text()


async def test_unexpected_exception_is_logged_and_answered_500_without_internals(
    make_client: ClientFactory, make_settings: SettingsFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(app=_app_with_test_routes(make_settings))
    with caplog.at_level(logging.ERROR):
        response = await client.get("/test/explode", headers={"X-Request-ID": "req-42"})
    assert response.status == 500
    assert response.content_type == "application/json"
    body = await response.json()
    assert body == {"detail": "Internal server error", "request_id": "req-42"}
    assert "shadow" not in await response.text()
    records = [r for r in caplog.records if r.exc_info]
    assert records and records[0].request_id == "req-42"


async def test_cors_preflight_from_any_origin_for_post_and_get(make_client: ClientFactory) -> None:
    client = await make_client()
    for method in ("POST", "GET"):
        response = await client.options(
            "/",
            headers={
                "Origin": "https://maps.example.org",
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "content-type, x-custom-thing",
            },
        )
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "https://maps.example.org"
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert method in response.headers["Access-Control-Allow-Methods"]
        allowed = response.headers["Access-Control-Allow-Headers"].lower()
        assert "content-type" in allowed and "x-custom-thing" in allowed


async def test_every_response_carries_cors_headers_for_the_origin(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    for path in ("/", "/openapi.json", "/no/such/route"):
        response = await client.get(path, headers={"Origin": "https://app.example.com"})
        assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com", path
        assert response.headers["Access-Control-Allow-Credentials"] == "true", path


async def test_gzip_for_large_bodies_only(make_client: ClientFactory) -> None:
    client = await make_client()
    large = await client.get(
        "/openapi.json", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    )
    raw = await large.read()
    assert large.headers["Content-Encoding"] == "gzip"
    assert len(gzip.decompress(raw)) >= 1000

    small = await client.get("/", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert "Content-Encoding" not in small.headers
    assert await small.json() == {"status": "ok"}

    plain = await client.get(
        "/openapi.json", headers={"Accept-Encoding": "identity"}, auto_decompress=False
    )
    assert "Content-Encoding" not in plain.headers


async def test_request_id_is_returned(make_client: ClientFactory) -> None:
    client = await make_client()
    response = await client.get("/livez")
    assert len(response.headers["X-Request-ID"]) >= 16
    response = await client.get("/livez", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
