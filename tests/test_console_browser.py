"""The web console in a real browser: Debian's Chromium driven by Playwright against a real
``wtrunner serve`` on the session's test channel.

Playwright's synchronous API runs its own event loop, so these are plain (not asyncio) tests.
Chromium comes from the system (``chromium``; Playwright's own browser download is never
used): without it the tests are skipped, or fail with ``WTRUNNER_REQUIRE_BROWSER=1`` (CI).
Every test leaves a screenshot of its page in its tmp dir (also when it fails), no page may
fetch anything from another origin (the console works offline), and none may do what the
server's Content-Security-Policy forbids (a script added to each page reports such attempts).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.processes import running_server
from wtrunner.api.routes import OPERATIONS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Waits for what a run does (installs, workflow processes) on a busy 2-core machine.
expect.set_options(timeout=30_000)

FORM = "wt-test-form-workflow"
# Playwright does not pass on the browser's own reports of what the Content-Security-Policy
# refused: a script added to every page logs each one on the page's console instead.
CSP_VIOLATION = "refused by the Content-Security-Policy:"
REPORT_CSP_VIOLATIONS = f"""
document.addEventListener("securitypolicyviolation", (event) =>
  console.error("{CSP_VIOLATION} " + event.violatedDirective + " " + event.blockedURI));
"""


@dataclass(frozen=True)
class Server:
    """A ``wtrunner serve`` process for the browser: its URL and its results root."""

    url: str
    results: Path

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        """Call the server's API (JSON in, JSON out)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)


@pytest.fixture(scope="module")
def chromium() -> str:
    """The system's Chromium executable."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "Chromium is not installed (apt-get install chromium)"
        if os.environ.get("WTRUNNER_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    """Headless Chromium for the module."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


def _serve(work: Path, channel: Path, **settings: str) -> Iterator[Server]:
    with running_server(work, channel, **settings) as live:
        yield Server(live.url, live.results_root)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, channel: Path) -> Iterator[Server]:
    """``wtrunner serve`` without authentication, for the module."""
    yield from _serve(tmp_path_factory.mktemp("console-server"), channel)


@pytest.fixture
def page(browser: Browser, server: Server, tmp_path: Path) -> Iterator[Page]:
    """A fresh browser tab (its own session storage); a screenshot in tmp_path at the end."""
    with open_page(browser, server, tmp_path) as opened:
        yield opened


@contextlib.contextmanager
def open_page(browser: Browser, server: Server, tmp_path: Path) -> Iterator[Page]:
    """A tab of its own; on leaving, a screenshot in tmp_path, and the checks that the page
    raised no error, fetched nothing from another origin and broke no rule of the server's
    Content-Security-Policy."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    opened = context.new_page()
    crashes: list[str] = []
    elsewhere: list[str] = []
    refused: list[str] = []
    opened.on("pageerror", lambda error: crashes.append(str(error)))
    opened.on(
        "console",
        lambda message: (
            refused.append(message.text) if message.text.startswith(CSP_VIOLATION) else None
        ),
    )
    opened.on(
        "request",
        lambda request: (
            None
            if request.url.startswith((f"{server.url}/", "data:"))
            else elsewhere.append(request.url)
        ),
    )
    try:
        yield opened
    finally:
        opened.screenshot(path=tmp_path / "screenshot.png", full_page=True)
        context.close()
    assert not crashes, crashes
    assert not elsewhere, f"fetched from elsewhere: {elsewhere}"
    assert not refused, refused


def _form_group(page: Page, label: str) -> Any:
    """The rjsf field (label, input, its errors) whose label starts with ``label``."""
    found = page.locator("label.control-label", has_text=re.compile(f"^{re.escape(label)}"))
    return found.locator("xpath=..")


def _posts(page: Page) -> list[str]:
    """The URLs ``page`` will POST to from now on, in order (filled as it sends them)."""
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)
    return posted


def _observer_option(page: Page) -> Any:
    """The form's choice between an observer and none (rjsf's select of the anyOf options)."""
    return page.locator("select[id$='_observer__anyof_select']")


def _run_id(page: Page) -> str:
    expect(page).to_have_url(re.compile(r"/ui/runs/[a-z0-9]+$"))
    return page.url.rsplit("/", 1)[1]


def test_the_list_shows_the_test_workflows(page: Page, server: Server) -> None:
    page.goto(f"{server.url}/ui/")
    workflows = page.get_by_test_id("workflow-list").get_by_role("listitem")
    for name in (FORM, "wt-test-versions-workflow", "wt-test-chatty-workflow"):
        expect(workflows.filter(has_text=name)).to_have_count(1)
    listed = server.api("GET", "/workflows")["workflows"]
    expect(workflows).to_have_count(len(listed))

    page.get_by_label("Search").fill("versions")
    expect(workflows).to_have_count(1)
    expect(workflows.first).to_contain_text("2.0.0 (and 1 older)")
    workflows.first.get_by_role("link").click()
    expect(page).to_have_url(f"{server.url}/ui/workflows/wt-test-versions-workflow")
    picker = page.get_by_label("Version")
    expect(picker.locator("option")).to_have_text(["2.0.0", "1.0.0"])  # newest first


def test_a_workflow_form_renders_its_schema(page: Page, server: Server) -> None:
    page.goto(f"{server.url}/ui/workflows/{FORM}")
    expect(page.get_by_role("heading", name=FORM)).to_be_visible()
    site = _form_group(page, "Site code")
    expect(site.locator(".required")).to_have_text("*")
    expect(site).to_contain_text("three capital letters")  # the field's description
    expect(_form_group(page, "Notes").locator(".required")).to_have_count(0)

    habitat = page.get_by_label("Habitat")
    expect(habitat).to_have_js_property("tagName", "SELECT")  # an enum is a select
    expect(habitat.locator("option")).to_have_text(["", "forest", "savanna", "wetland"])
    expect(page.get_by_label("Animals counted")).to_have_attribute("type", "number")
    expect(page.get_by_label("Notes")).to_have_js_property("tagName", "TEXTAREA")  # uiSchema
    labels = page.locator("label.control-label")
    expect(labels.first).to_have_text("Site code*")  # ui:order puts the site first
    results = page.get_by_label("Results URL")
    expect(results).to_have_value(f"{server.results.as_uri()}/console/{{run_id}}")


def test_an_invalid_value_shows_its_error_on_the_field_and_submits_nothing(
    page: Page, server: Server
) -> None:
    posted = _posts(page)
    page.goto(f"{server.url}/ui/workflows/{FORM}")
    page.get_by_label("Site code").fill("ABC")
    page.get_by_label("Habitat").select_option("forest")
    page.get_by_label("Animals counted").fill("-1")
    page.get_by_role("button", name="Run").click()
    expect(_form_group(page, "Animals counted")).to_contain_text("-1 is less than 0")
    # one message, on the field: none on the sections around it ("a property has errors")
    expect(page.locator("form.workflow-form .text-danger")).to_have_count(1)
    expect(page.get_by_label("Animals counted")).to_be_focused()
    assert posted == []  # the browser's own check: nothing was sent

    # the optional observer (anyOf of a $ref and null) starts as null: no observer fields
    expect(page.get_by_label("Observer name")).to_have_count(0)
    page.get_by_label("Animals counted").fill("3")
    _observer_option(page).select_option(label="Observer")
    page.get_by_label("Observer name").fill("A")
    page.get_by_role("button", name="Run").click()
    expect(_form_group(page, "Observer name")).to_contain_text("String is too short (1 < 2)")
    # only that: not also "matches no option" and "is not null" on the observer
    expect(page.locator("form.workflow-form .text-danger")).to_have_count(1)
    assert posted == []
    page.get_by_label("Observer name").fill("Al")

    # a rule only the server knows (the package's converter checks a pattern its form lacks)
    page.get_by_label("Site code").fill("abc")
    page.get_by_role("button", name="Run").click()
    expect(_form_group(page, "Site code")).to_contain_text("'abc' does not match")
    expect(page.get_by_test_id("submit-error")).to_contain_text("server found problems")
    expect(_form_group(page, "Animals counted").locator(".text-danger")).to_have_count(0)
    assert [url.split("?")[0] for url in posted] == [f"{server.url}/formdata-to-params"]
    assert server.api("GET", f"/runs?package={FORM}")["runs"] == []
    expect(page).to_have_url(f"{server.url}/ui/workflows/{FORM}")


def test_a_field_asked_for_only_under_a_condition_comes_and_goes_with_it(
    page: Page, server: Server
) -> None:
    posted = _posts(page)
    page.goto(f"{server.url}/ui/workflows/{FORM}")
    depth = page.get_by_label("Water depth (m)")
    expect(depth).to_have_count(0)
    page.get_by_label("Site code").fill("ABC")
    page.get_by_label("Animals counted").fill("4")
    page.get_by_label("Habitat").select_option("wetland")  # the browser's validator: "if" holds
    expect(depth).to_be_visible()
    page.get_by_role("button", name="Run").click()
    expect(_form_group(page, "Water depth (m)")).to_contain_text("is a required property")
    assert posted == []
    page.get_by_label("Habitat").select_option("forest")
    expect(depth).to_have_count(0)


def test_a_valid_submit_creates_a_run_whose_page_shows_the_result(
    page: Page, server: Server
) -> None:
    page.goto(f"{server.url}/ui/workflows/{FORM}")
    page.get_by_label("Site code").fill("KRU")
    page.get_by_label("Habitat").select_option("savanna")
    page.get_by_label("Animals counted").fill("12")
    _observer_option(page).select_option(label="Observer")
    page.get_by_label("Observer name").fill("Ana")
    page.get_by_label("Mock I/O").check()
    page.get_by_label("Timeout (seconds)").fill("120")
    page.get_by_role("button", name="Run").click()

    run_id = _run_id(page)
    expect(page.get_by_test_id("state-badge")).to_have_text("succeeded")
    result = page.get_by_test_id("json-tree")
    expect(result).to_contain_text('"site": "KRU"')
    expect(result).to_contain_text('"habitat": "savanna"')
    expect(result).to_contain_text('"mock_io": true')
    expect(result).to_contain_text('"name": "Ana"')
    expect(page.get_by_test_id("resolved")).to_contain_text(f"{FORM} 1.0.0")
    expect(page.get_by_test_id("logs-status")).to_have_text("complete")

    # the result's objects fold away and open again, with the keyboard or a click
    site = result.get_by_text('"KRU"', exact=True)
    expect(site).to_be_visible()
    survey = result.locator(".json-node > summary").nth(1)
    survey.press("Enter")
    expect(site).to_be_hidden()
    survey.click()
    expect(site).to_be_visible()

    record = server.api("GET", f"/runs/{run_id}")
    assert record["state"] == "succeeded"
    assert record["workflow_run_id"].startswith("console-")
    # {run_id} of the results URL became the run's workflow_run_id
    results = server.results / "console" / record["workflow_run_id"]
    assert record["results_url"] == results.as_uri()
    assert json.loads((results / "result.json").read_text())["result"]["survey"]["count"] == 12


def test_a_chatty_workflows_logs_appear_while_it_runs(
    page: Page, server: Server, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    page.goto(f"{server.url}/ui/workflows/wt-test-chatty-workflow")
    page.get_by_label("megabytes").fill("0")
    page.get_by_label("lines").fill("3")
    page.get_by_label("go_file").fill(str(go))
    page.get_by_role("button", name="Run").click()

    _run_id(page)
    logs = page.get_by_test_id("logs")
    # line 1 waits for the go file: "line 0" can only be read while the run lasts
    expect(logs).to_contain_text("line 0")
    expect(page.get_by_test_id("state-badge")).to_have_text("running")
    expect(page.get_by_test_id("logs-status")).to_have_text("following…")
    go.touch()
    expect(logs).to_contain_text("line 2")
    expect(page.get_by_test_id("state-badge")).to_have_text("succeeded")
    expect(page.get_by_test_id("logs-status")).to_have_text("complete")


def test_cancel_ends_a_long_run(page: Page, server: Server) -> None:
    page.goto(f"{server.url}/ui/workflows/wt-test-slow-workflow")
    page.get_by_label("seconds*", exact=True).fill("600")  # "*": required
    page.get_by_role("button", name="Run").click()

    run_id = _run_id(page)
    badge = page.get_by_test_id("state-badge")
    expect(badge).to_have_text("running")
    page.get_by_role("button", name="Cancel run").click()
    expect(badge).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    assert server.api("GET", f"/runs/{run_id}")["state"] == "cancelled"


def _finished_run(server: Server, package: str, name: str) -> str:
    body = {
        "params": {},
        "execution_mode": "sequential",
        "mock_io": True,
        "results_url": str(server.results / name),
    }
    run = server.api("POST", f"/runs?matchspec={package}", body)
    return str(server.api("GET", f"/runs/{run['id']}?wait=60")["id"])


def test_the_runs_list_pages_and_refreshes_itself(page: Page, server: Server) -> None:
    older = _finished_run(server, "wt-test-trivial-workflow", "page-1")
    newer = _finished_run(server, "wt-test-trivial-workflow", "page-2")
    page.goto(f"{server.url}/ui/runs?package=wt-test-trivial-workflow&limit=1")
    table = page.get_by_test_id("runs-table")
    expect(table).to_contain_text(newer)  # newest first
    page.get_by_role("button", name="Older").click()
    expect(table).to_contain_text(older)
    expect(table).not_to_contain_text(newer)
    page.get_by_role("button", name="Newer").click()
    expect(table).to_contain_text(newer)

    newest = _finished_run(server, "wt-test-trivial-workflow", "page-3")
    expect(table).to_contain_text(newest)  # the first page refreshes without a reload
    expect(table).not_to_contain_text(newer)


def test_the_runs_list_filters_by_state(page: Page, server: Server) -> None:
    succeeded = _finished_run(server, "wt-test-trivial-workflow", "list-ok")
    failed = _finished_run(server, "wt-test-crash-workflow", "list-crash")
    page.goto(f"{server.url}/ui/runs")
    table = page.get_by_test_id("runs-table")
    expect(table).to_contain_text(succeeded)
    expect(table).to_contain_text(failed)

    page.get_by_label("State").select_option("failed")
    expect(page).to_have_url(re.compile(r"/ui/runs\?state=failed$"))
    expect(table).to_contain_text(failed)
    expect(table).not_to_contain_text(succeeded)
    for badge in table.get_by_test_id("state-badge").all():
        expect(badge).to_have_text("failed")

    page.get_by_label("State").select_option("succeeded")
    expect(table).to_contain_text(succeeded)
    expect(table).not_to_contain_text(failed)

    page.get_by_label("State").select_option("")
    page.get_by_label("Package").fill("wt-test-crash-workflow")
    page.get_by_label("Package").press("Enter")
    expect(table).to_contain_text(failed)
    expect(table).not_to_contain_text(succeeded)
    table.get_by_role("link", name=failed).click()
    expect(page.get_by_test_id("run-error")).to_contain_text("exited with code 3")


def test_the_docs_page_lists_the_routes(page: Page, server: Server) -> None:
    page.goto(f"{server.url}/docs")
    docs = page.get_by_test_id("api-docs")
    operations = docs.locator(".opblock")
    expect(operations).to_have_count(len(OPERATIONS))
    for op in OPERATIONS:
        path = docs.locator(f'.opblock-summary-path[data-path="{op.path}"]')
        expect(path.first).to_be_visible()
    expect(docs.locator(".opblock-get").filter(has_text="/workflows/{name}")).to_have_count(1)


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory, channel: Path) -> Iterator[Server]:
    """``wtrunner serve`` with bearer tokens on: WTRUNNER_AUTH_TOKENS_FILE."""
    work = tmp_path_factory.mktemp("console-auth-server")
    tokens = work / "tokens"
    tokens.write_text(_token_line("console-test", "first-token"))
    yield from _serve(work, channel, WTRUNNER_AUTH_TOKENS_FILE=str(tokens))


def _token_line(name: str, token: str) -> str:
    return f"{name}:{hashlib.sha256(token.encode()).hexdigest()}\n"


def test_with_tokens_on_the_console_asks_for_one_and_sends_it(
    browser: Browser, token_server: Server, tmp_path: Path
) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        token_server.api("GET", "/workflows")
    assert refused.value.code == 401
    with open_page(browser, token_server, tmp_path) as page:
        page.goto(f"{token_server.url}/ui/")
        prompt = page.get_by_role("dialog", name="Sign in with an access token")
        expect(prompt).to_be_visible()
        expect(page.get_by_label("Access token", exact=True)).to_be_focused()
        page.get_by_label("Access token", exact=True).fill("wrong-token")
        page.get_by_role("button", name="Use token").click()
        expect(prompt).to_contain_text("did not accept")
        page.get_by_label("Access token", exact=True).fill("first-token")
        page.get_by_role("button", name="Use token").click()
        expect(prompt).to_be_hidden()
        workflows = page.get_by_test_id("workflow-list").get_by_role("listitem")
        expect(workflows.filter(has_text=FORM)).to_have_count(1)

        page.reload()  # the token is kept for the browser session: no prompt
        expect(workflows.filter(has_text=FORM)).to_have_count(1)
        expect(prompt).to_be_hidden()

        # the token is revoked: the next 401 brings the prompt back, once for both requests of the
        # runs page, and both go through with the new token (when their 401s came at the same
        # time, a second prompt used to replace the first and leave one waiting for ever)
        tokens = token_server.results.parent / "tokens"
        tokens.write_text(_token_line("console-test", "second-token"))
        page.get_by_role("link", name="Runs").click()
        expect(prompt).to_be_visible()
        expect(prompt).to_contain_text("did not accept")
        page.get_by_label("Access token", exact=True).fill("second-token")
        page.get_by_label("Access token", exact=True).press("Enter")
        expect(prompt).to_be_hidden()
        expect(page.get_by_text("No runs.")).to_be_visible()
        expect(page.locator(f'#package-names option[value="{FORM}"]')).to_have_count(1)
