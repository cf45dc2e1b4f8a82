"""Safe defaults for browsers: a page on another site cannot start a run with a plain form
(415), a DNS-rebound name cannot reach a server on loopback (421), and with authentication on
CORS lets in only the origins configured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.auth_helpers import bearer, write_tokens
from tests.helpers import Client, ClientFactory, SettingsFactory

ECHO = "wt-test-echo-workflow"
EVIL = "https://evil.example"


def _run_body(results: Path) -> dict[str, Any]:
    return {
        "params": {"echo": {"message": "from a page"}},
        "execution_mode": "sequential",
        "mock_io": True,
        "results_url": str(results),
    }


async def _runs(client: Client) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = (await (await client.get("/runs")).json())["runs"]
    return runs


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
     "multipart/form-data; boundary=x", "application/octet-stream"],
)  # fmt: skip
async def test_a_cross_site_simple_post_is_415_and_starts_nothing(
    client: Client, tmp_path: Path, content_type: str
) -> None:
    # authentication off and CORS open to every origin: the defaults
    import json

    for path in ("/", "/runs", "/run-from-pubsub", "/formdata-to-params"):
        response = await client.post(
            path,
            params={"matchspec": ECHO},
            data=json.dumps(_run_body(tmp_path / "r")).encode(),
            headers={"Content-Type": content_type, "Origin": EVIL},
        )
        assert response.status == 415, path
        assert response.content_type == "application/json"
        assert "application/json" in (await response.json())["detail"]
        # a page may read the answer (CORS is open) but nothing ran
        assert response.headers["Access-Control-Allow-Origin"] == EVIL
    assert await _runs(client) == []
    assert not (tmp_path / "r").exists()


async def test_a_body_without_a_type_is_json_unless_a_browser_sent_it(
    client: Client, tmp_path: Path
) -> None:
    import json

    raw = json.dumps(_run_body(tmp_path / "r")).encode()
    from_page = await client.post(
        "/", params={"matchspec": ECHO}, data=raw, headers={"Origin": EVIL, "Content-Type": ""}
    )
    assert from_page.status == 415
    # requests.post(url, data=json.dumps(...)) and the like send no Content-Type: as before
    response = await client.post(
        "/", params={"matchspec": ECHO}, data=raw, skip_auto_headers=["Content-Type"]
    )
    assert response.status == 200, await response.text()
    # a JSON type with parameters, and application/*+json, are JSON
    for content_type in ("application/json; charset=utf-8", "application/vnd.run+json"):
        response = await client.post(
            "/", params={"matchspec": ECHO}, data=raw, headers={"Content-Type": content_type}
        )
        assert response.status == 200, content_type


async def test_a_post_without_a_body_passes_whatever_its_type(
    client: Client, tmp_path: Path
) -> None:
    response = await client.post(
        "/runs/no-such-run/cancel", headers={"Content-Type": "text/plain", "Origin": EVIL}
    )
    assert response.status == 404


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "rebind.attacker.test."])
async def test_a_rebound_host_name_is_refused_on_loopback(client: Client, host: str) -> None:
    for path in ("/runs", "/rjsf", "/metrics", "/workflows"):
        response = await client.get(path, headers={"Host": host})
        assert response.status == 421, path
        assert response.content_type == "application/json"
        assert "WTRUNNER_ALLOWED_HOSTS" in (await response.json())["detail"]
    posted = await client.post("/runs", json={}, headers={"Host": host})
    assert posted.status == 421
    # the health probes answer whatever name they are asked by
    for path in ("/", "/livez", "/readyz"):
        assert (await client.get(path, headers={"Host": host})).status == 200


@pytest.mark.parametrize(
    "host",
    ["localhost", "localhost:8080", "LOCALHOST.", "console.localhost:8080", "127.0.0.1:8080",
     "[::1]:8080", "10.1.2.3", "wtrunner.internal:8080"],
)  # fmt: skip
async def test_own_names_and_addresses_are_answered_on_loopback(
    make_client: ClientFactory, host: str
) -> None:
    client = await make_client(allowed_hosts="wtrunner.internal")
    assert (await client.get("/runs", headers={"Host": host})).status == 200


async def test_any_host_name_is_answered_beyond_loopback(
    make_client: ClientFactory, make_settings: SettingsFactory
) -> None:
    # the app is built for 0.0.0.0; the test client still reaches it on 127.0.0.1
    client = await make_client(make_settings(host="0.0.0.0"))
    assert (await client.get("/runs", headers={"Host": "wtrunner.example.org"})).status == 200


async def test_with_authentication_on_cors_allows_only_the_origins_configured(
    make_client: ClientFactory, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    tokens = write_tokens(tmp_path / "tokens.txt", {"console": None})
    console = "https://console.example"
    client = await make_client(
        make_settings(auth_tokens_file=tmp_path / "tokens.txt", cors_origins=console)
    )
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}  # fmt: skip
    allowed = await client.options("/runs", headers={"Origin": console, **preflight})
    assert allowed.status == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == console
    assert "authorization" in allowed.headers["Access-Control-Allow-Headers"].lower()
    refused = await client.options("/runs", headers={"Origin": EVIL, **preflight})
    assert refused.status == 403
    assert "Access-Control-Allow-Origin" not in refused.headers

    for origin, readable in ((console, True), (EVIL, False)):
        for path in ("/runs", "/no/such/route"):
            response = await client.get(
                path, headers={"Origin": origin, **bearer(tokens["console"])}
            )
            assert ("Access-Control-Allow-Origin" in response.headers) is readable, (origin, path)
        # a refusal is readable by an allowed page (it re-prompts for a token on 401)
        anonymous = await client.get("/runs", headers={"Origin": origin})
        assert anonymous.status == 401
        assert ("Access-Control-Allow-Origin" in anonymous.headers) is readable


async def test_with_authentication_on_and_no_origins_no_page_may_call(
    make_client: ClientFactory, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    write_tokens(tmp_path / "tokens.txt", {"console": None})
    client = await make_client(make_settings(auth_tokens_file=tmp_path / "tokens.txt"))
    preflight = await client.options(
        "/runs", headers={"Origin": EVIL, "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status == 403
    response = await client.get("/livez", headers={"Origin": EVIL})
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_cors_can_be_opened_or_closed_explicitly(
    make_client: ClientFactory, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    write_tokens(tmp_path / "tokens.txt", {"console": None})
    opened = await make_client(
        make_settings(auth_tokens_file=tmp_path / "tokens.txt", cors_origins="*")
    )
    response = await opened.get("/livez", headers={"Origin": EVIL})
    assert response.headers["Access-Control-Allow-Origin"] == EVIL
    closed = await make_client(make_settings(cors_origins="none"))
    response = await closed.get("/livez", headers={"Origin": EVIL})
    assert "Access-Control-Allow-Origin" not in response.headers
