"""The web console as files: /ui/ and its deep links answer the app's page with the console's
settings written in, assets come from the committed bundle with long cache lifetimes, and
nothing outside the bundle is served. (What the pages do is tested in a browser:
tests/test_console_browser.py.)"""

from __future__ import annotations

import gzip
import html
import json
import re
from pathlib import Path

import pytest

from tests.helpers import ClientFactory
from wtrunner.api.console import DIST

# The bundle of the console pages (not the API docs page, a chunk of its own) stays small.
MAX_MAIN_BUNDLE_GZIPPED = 500 * 1024


def _config(page: str) -> dict[str, str]:
    found = re.search(r'<meta name="wtrunner-config" content="([^"]*)"', page)
    assert found, page
    config: dict[str, str] = json.loads(html.unescape(found.group(1)))
    return config


def _entry_assets(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/ui/assets/[^"]+)"', page)


@pytest.mark.parametrize(
    "path", ["/ui/", "/ui/index.html", "/ui/runs", "/ui/runs/abc123", "/ui/workflows/x", "/docs"]
)
async def test_every_page_is_the_app_with_its_settings(
    make_client: ClientFactory, path: str
) -> None:
    client = await make_client(console_results_url="file:///srv/results/{run_id}?a=1&b=<2>")
    response = await client.get(path)
    assert response.status == 200
    assert response.content_type == "text/html"
    assert response.headers["Cache-Control"] == "no-cache"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src 'self';" in csp  # no eval, no inline scripts
    page = await response.text()
    assert _config(page)["resultsUrl"] == "file:///srv/results/{run_id}?a=1&b=<2>"
    assert '<div id="root"></div>' in page


async def test_the_default_results_url_is_under_the_first_results_root(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_client()
    page = await (await client.get("/ui/")).text()
    cache = (tmp_path / "cache").as_uri()
    assert _config(page)["resultsUrl"] == f"{cache}/results/console/{{run_id}}"

    roots = await make_client(results_roots=(str(tmp_path / "runs"), "/elsewhere"))
    page = await (await roots.get("/ui/")).text()
    assert _config(page)["resultsUrl"] == f"{(tmp_path / 'runs').as_uri()}/console/{{run_id}}"


async def test_assets_are_served_from_the_bundle_cached_for_a_year(
    make_client: ClientFactory,
) -> None:
    client = await make_client()
    page = await (await client.get("/ui/")).text()
    assets = _entry_assets(page)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        response = await client.get(asset, headers={"Accept-Encoding": "gzip"})
        assert response.status == 200, asset
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert response.headers["Content-Encoding"] == "gzip"
        expected = "text/css" if asset.endswith(".css") else "javascript"
        assert expected in response.content_type
        assert await response.read() == (DIST / asset.removeprefix("/ui/")).read_bytes()


def test_the_console_bundle_stays_under_500_kb_gzipped() -> None:
    page = (DIST / "index.html").read_text()
    scripts = [a for a in _entry_assets(page) if a.endswith(".js")]
    assert scripts
    for script in scripts:
        size = len(gzip.compress((DIST / script.removeprefix("/ui/")).read_bytes()))
        assert size < MAX_MAIN_BUNDLE_GZIPPED, (script, size)


@pytest.mark.parametrize(
    "path", ["/ui/assets/missing.js", "/ui/assets/../../settings.py", "/ui/%2e%2e/settings.py"]
)
async def test_nothing_outside_the_bundle_is_served(make_client: ClientFactory, path: str) -> None:
    client = await make_client()
    response = await client.get(path)
    body = await response.text()
    assert "pydantic" not in body  # never wtrunner's own source
    if response.status == 404:
        assert response.content_type == "application/json"
    else:
        assert response.content_type == "text/html" and '<div id="root">' in body


async def test_ui_without_a_slash_goes_to_the_console(make_client: ClientFactory) -> None:
    client = await make_client()
    response = await client.get("/ui", allow_redirects=False)
    assert response.status == 308
    assert response.headers["Location"] == "/ui/"


async def test_the_health_check_stays_json_for_browsers(make_client: ClientFactory) -> None:
    client = await make_client()
    response = await client.get("/", headers={"Accept": "text/html,*/*;q=0.8"})
    assert response.status == 200
    assert await response.json() == {"status": "ok"}
