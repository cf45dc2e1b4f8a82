"""``wtrunner.client`` against the real app, and ``wtrunner runs ...`` against a real
``wtrunner serve``: submit, wait, list and page, cancel, errors with their items, logs, and a
bearer token that never leaks."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.helpers import Client
from tests.processes import free_port, start_server
from wtrunner.api.models import RequestErrorItem, ValidationErrorItem
from wtrunner.client import WtrunnerClient, WtrunnerClientError
from wtrunner.processes import wtrunner_command
from wtrunner.run_states import RunState
from wtrunner.runstore import RunRecord

ECHO = "wt-test-echo-workflow"
SLOW = "wt-test-slow-workflow"
CRASH = "wt-test-crash-workflow"
TRACKS = "wt-example-tracks-workflow"
TOKEN = "tok-3f9a1c-very-secret"

AiohttpClient = Callable[[web.Application], Awaitable[Client]]


def _base(client: Client) -> str:
    return str(client.make_url(""))


@pytest.fixture
async def api(client: Client) -> AsyncIterator[WtrunnerClient]:
    """A WtrunnerClient pointed at the real app of the ``client`` fixture."""
    async with WtrunnerClient(_base(client)) as wt:
        yield wt


# -- the client against the real app -------------------------------------------------------------


async def test_submit_then_wait_succeeds_with_the_result(
    api: WtrunnerClient, tmp_path: Path
) -> None:
    submitted = await api.submit(
        ECHO,
        {"echo": {"message": "hi"}},
        results_url=str(tmp_path / "r"),
        mock_io=True,
        workflow_run_id="client-1",
    )
    assert isinstance(submitted, RunRecord)
    assert submitted.state in (RunState.QUEUED, RunState.RESOLVING, RunState.RUNNING)
    assert submitted.workflow_run_id == "client-1" and submitted.package == ECHO

    done = await api.wait(submitted.id, timeout=60)
    assert done.state is RunState.SUCCEEDED
    assert done.outcome is not None and done.outcome.kind == "ok"
    assert done.outcome.result["params"] == {"echo": {"message": "hi"}}
    assert done.outcome.result["mock_io"] is True
    assert (await api.get(submitted.id)).model_dump() == done.model_dump()

    await api.delete(submitted.id)
    with pytest.raises(WtrunnerClientError) as gone:
        await api.get(submitted.id)
    assert gone.value.status == 404


async def test_submit_passes_every_option(api: WtrunnerClient, tmp_path: Path) -> None:
    submitted = await api.submit(
        ECHO,
        {"echo": {"env": ["ER_TOKEN"]}},
        results_url=str(tmp_path / "r"),
        execution_mode="async",
        mock_io=True,
        timeout=120,
        invoker_type="BlockingLocalSubprocessInvoker",
        data_connections_env_vars={"ER_TOKEN": "value-from-client"},
    )
    done = await api.wait(submitted.id, timeout=60)
    assert done.state is RunState.SUCCEEDED, done.outcome
    assert done.data_connection_names == ["ER_TOKEN"]
    assert done.outcome is not None
    assert done.outcome.result["execution_mode"] == "async"
    assert done.outcome.result["env"] == {"ER_TOKEN": "value-from-client"}


async def test_synchronous_run_returns_the_outcome_even_when_the_workflow_failed(
    api: WtrunnerClient, tmp_path: Path
) -> None:
    ok = await api.run(ECHO, {"echo": {"message": "sync"}}, results_url=str(tmp_path / "a"))
    assert ok.error is None and ok.result["params"] == {"echo": {"message": "sync"}}

    crashed = await api.run(CRASH, {}, results_url=str(tmp_path / "b"))
    assert crashed.error == "The workflow exited with code 3: fatal: the sky fell"
    assert crashed.trace is not None and "working on step 49" in crashed.trace

    with pytest.raises(WtrunnerClientError) as missing:
        await api.run("wt-no-such-workflow", {}, results_url=str(tmp_path / "c"))
    assert missing.value.status == 404
    assert isinstance(missing.value.detail, str) and "wt-no-such-workflow" in missing.value.detail


async def test_wait_returns_the_run_as_it_is_when_time_is_up(
    api: WtrunnerClient, tmp_path: Path
) -> None:
    run = await api.submit(SLOW, {"sleep": {"seconds": 600}}, results_url=str(tmp_path / "r"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    still = await api.wait(run.id, timeout=0.5)
    assert 0.4 <= loop.time() - started < 10
    assert not still.state.final
    await api.cancel(run.id)
    assert (await api.wait(run.id, timeout=30)).state is RunState.CANCELLED


async def test_list_and_iter_runs_follow_the_pages(api: WtrunnerClient, tmp_path: Path) -> None:
    ids = []
    for index in range(5):
        run = await api.submit(
            ECHO, {"echo": {}}, results_url=str(tmp_path / str(index)), mock_io=True,
            workflow_run_id=f"page-{index}",
        )  # fmt: skip
        ids.append(run.id)
    for run_id in ids:
        assert (await api.wait(run_id, timeout=60)).state is RunState.SUCCEEDED

    first = await api.list(limit=2)
    assert len(first.runs) == 2 and first.next is not None
    everything = [run async for run in api.iter_runs(page_size=2)]
    assert [run.id for run in everything] == list(reversed(ids))  # newest first, each once
    assert [run.id for run in everything[:2]] == [run.id for run in first.runs]

    one = await api.list(workflow_run_id="page-3")
    assert [run.id for run in one.runs] == [ids[3]] and one.next is None
    assert len((await api.list(state=RunState.SUCCEEDED, package=ECHO)).runs) == 5
    assert (await api.list(state="failed")).runs == []
    since_last = [run.id async for run in api.iter_runs(since=everything[0].created_at)]
    assert ids[-1] in since_last
    assert [run async for run in api.iter_runs(package="wt-other-workflow")] == []


async def test_cancel_of_a_slow_run_ends_it_cancelled(api: WtrunnerClient, tmp_path: Path) -> None:
    run = await api.submit(SLOW, {"sleep": {"seconds": 600}}, results_url=str(tmp_path / "r"))
    cancelled = await api.cancel(run.id)
    assert cancelled.id == run.id
    done = await api.wait(run.id, timeout=30)
    assert done.state is RunState.CANCELLED

    with pytest.raises(WtrunnerClientError) as again:
        await api.cancel(run.id)
    assert again.value.status == 409
    assert "cancelled" in str(again.value)


async def test_422_raises_with_the_detail_items(api: WtrunnerClient, tmp_path: Path) -> None:
    with pytest.raises(WtrunnerClientError) as schema:
        await api.submit(ECHO, {"echo": {"count": -1}}, results_url=str(tmp_path / "r"))
    assert schema.value.status == 422
    assert isinstance(schema.value.detail, list)
    (item,) = schema.value.items
    assert isinstance(item, ValidationErrorItem)
    assert (item.validator, item.path, item.input) == ("minimum", ["echo", "count"], -1)
    assert "echo/count" in str(schema.value)

    with pytest.raises(WtrunnerClientError) as request:
        await api.submit(ECHO, {"echo": {}}, results_url="relative/path")
    assert request.value.status == 422
    locs = [item.loc for item in request.value.items if isinstance(item, RequestErrorItem)]
    assert len(locs) == len(request.value.items) and ["body", "results_url"] in locs
    assert str(request.value).startswith("HTTP 422 (POST /runs): body.results_url: ")

    with pytest.raises(WtrunnerClientError) as conversion:
        await api.formdata_to_params(TRACKS, {"Workflow Details": {"workflow_details": {}}})
    assert conversion.value.status == 422
    assert {"required"} <= {
        item.validator for item in conversion.value.items if isinstance(item, ValidationErrorItem)
    }
    assert (await api.list(limit=5)).runs == []  # refused requests record nothing


async def test_metadata_calls(api: WtrunnerClient) -> None:
    rjsf = await api.rjsf(TRACKS)
    assert set(rjsf["properties"]) == {"Workflow Details", "Data", "Analysis"}
    schema = await api.params_schema(TRACKS)
    assert set(schema["properties"]) == {"workflow_details", "get_fixes", "summarize"}
    assert await api.data_connection_property_names(TRACKS) == {"TracksConnection": ["get_fixes"]}
    params = {"workflow_details": {"name": "Elephants"}, "get_fixes": {}}
    formdata = await api.params_to_formdata(TRACKS, params)
    assert await api.formdata_to_params(TRACKS, formdata) == params


async def test_logs_and_follow_logs(api: WtrunnerClient, tmp_path: Path) -> None:
    run = await api.submit(CRASH, {}, results_url=str(tmp_path / "r"))
    chunks = [chunk async for chunk in api.follow_logs(run.id, stream="stderr")]
    followed = "".join(chunks)  # the iteration ends because the run ended
    assert "working on step 0\n" in followed and followed.endswith("fatal: the sky fell\n")
    assert (await api.get(run.id)).state is RunState.FAILED

    everything = await api.logs(run.id)
    assert "fatal: the sky fell" in everything
    assert await api.logs(run.id, stream="stderr", tail=1) == "fatal: the sky fell\n"
    assert await api.logs(run.id, stream="stdout") == ""
    tailed = [chunk async for chunk in api.follow_logs(run.id, stream="stderr", tail=2)]
    assert "".join(tailed) == "working on step 49\nfatal: the sky fell\n"

    with pytest.raises(WtrunnerClientError) as unknown:
        await api.logs("no-such-run")
    assert unknown.value.status == 404
    with pytest.raises(WtrunnerClientError) as unknown_follow:
        async for _ in api.follow_logs("no-such-run"):
            pass
    assert unknown_follow.value.status == 404


# -- against small fakes: what the real app cannot show --------------------------------------


async def test_the_token_is_sent_as_bearer_and_never_shown(
    aiohttp_client: AiohttpClient,
) -> None:
    seen: list[str] = []

    async def refuse(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response(
            {"detail": "not allowed", "request_id": "req-1"},
            status=403,
            headers={"X-Request-ID": "req-1"},
        )

    async def not_json(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>bad gateway</html>")

    app = web.Application()
    app.router.add_get("/runs/{run_id}", refuse)
    app.router.add_get("/runs", not_json)
    server = await aiohttp_client(app)
    async with WtrunnerClient(_base(server), token=TOKEN) as wt:
        assert TOKEN not in repr(wt) and "<hidden>" in repr(wt)
        with pytest.raises(WtrunnerClientError) as refused:
            await wt.get("abc")
        with pytest.raises(WtrunnerClientError) as gateway:
            await wt.list()
    assert seen == [f"Bearer {TOKEN}"]
    error = refused.value
    assert (error.status, error.detail, error.request_id) == (403, "not allowed", "req-1")
    assert str(error) == "HTTP 403 (GET /runs/abc): not allowed [request req-1]"
    assert (gateway.value.status, gateway.value.detail) == (502, "<html>bad gateway</html>")
    for exc in (refused.value, gateway.value):
        shown = [str(exc), repr(exc), repr(exc.args), str(exc.__dict__)]
        assert all(TOKEN not in text for text in shown), shown


async def test_wait_polls_in_steps_of_at_most_60_seconds(
    aiohttp_client: AiohttpClient, client: Client, tmp_path: Path
) -> None:
    # a real record to answer with, its state changed by the fake
    async with WtrunnerClient(_base(client)) as real:
        submitted = await real.submit(ECHO, {"echo": {}}, results_url=str(tmp_path / "r"))
        template = (await real.wait(submitted.id, timeout=60)).model_dump(mode="json")
    waits: list[float] = []

    async def get_run(request: web.Request) -> web.Response:
        waits.append(float(request.query["wait"]))
        state = "succeeded" if len(waits) == 3 else "running"
        return web.json_response({**template, "state": state})

    app = web.Application()
    app.router.add_get("/runs/{run_id}", get_run)
    server = await aiohttp_client(app)
    async with WtrunnerClient(_base(server)) as wt:
        done = await wt.wait(submitted.id, timeout=150)
    assert done.state is RunState.SUCCEEDED
    assert len(waits) == 3 and all(55 < wait <= 60 for wait in waits)


async def test_a_base_url_path_prefix_is_kept(aiohttp_client: AiohttpClient) -> None:
    paths: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        paths.append(request.path_qs)
        return web.json_response({"detail": "nope"}, status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    server = await aiohttp_client(app)
    async with WtrunnerClient(str(server.make_url("/wt"))) as wt:
        for call in (wt.get("a/b"), wt.cancel("x"), wt.rjsf("wt-x>=1")):
            with pytest.raises(WtrunnerClientError):
                await call
    assert paths == ["/wt/runs/a%2Fb", "/wt/runs/x/cancel", "/wt/rjsf?matchspec=wt-x%3E%3D1"]


def test_a_client_needs_an_http_url_and_a_one_line_token() -> None:
    with pytest.raises(ValueError, match="not an http"):
        WtrunnerClient("127.0.0.1:8080")
    with pytest.raises(ValueError) as multiline:
        WtrunnerClient("http://127.0.0.1:8080", token=TOKEN + "\nX-Injected: 1")
    assert TOKEN not in str(multiline.value)
    assert "secret" not in repr(WtrunnerClient("http://user:secret@127.0.0.1:8080/"))


# -- ``wtrunner runs ...`` against a real server ------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, channel: Path) -> Iterator[str]:
    """``wtrunner serve`` on the session channel, for this module's CLI tests; its URL."""
    work = tmp_path_factory.mktemp("runs-cli")
    with (work / "server.log").open("wb") as log:
        process, url = start_server(
            work,
            stderr=log,
            WTRUNNER_CHANNELS=channel.as_uri(),
            WTRUNNER_KILL_GRACE_SECONDS="0.2",
        )
    try:
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != "WTRUNNER_PORT"}
    return subprocess.run(
        [*wtrunner_command(), "runs", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**environment, **(env or {})},
    )


def _with(url: str, call: Callable[[WtrunnerClient], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        async with WtrunnerClient(url) as wt:
            return await call(wt)

    return asyncio.run(go())


def test_cli_list_show_and_cancel(served: str, tmp_path: Path) -> None:
    echo = _with(
        served,
        lambda wt: wt.submit(
            ECHO, {"echo": {"message": "cli"}}, results_url=str(tmp_path / "e"),
            workflow_run_id="cli-echo",
        ),
    )  # fmt: skip
    assert _with(served, lambda wt: wt.wait(echo.id, 60)).state is RunState.SUCCEEDED
    slow = _with(
        served,
        lambda wt: wt.submit(SLOW, {"sleep": {"seconds": 600}}, results_url=str(tmp_path / "s")),
    )

    listed = _cli("list", "--json", "--url", served)
    assert listed.returncode == 0, listed.stderr
    runs = [RunRecord.model_validate(item) for item in json.loads(listed.stdout)]
    assert [run.id for run in runs[:2]] == [slow.id, echo.id]

    only = _cli("list", "--json", "--url", served, "--state", "succeeded", "--package", ECHO)
    assert [item["id"] for item in json.loads(only.stdout)] == [echo.id]
    limited = _cli("list", "--json", "--url", served, "--limit", "1")
    assert [item["id"] for item in json.loads(limited.stdout)] == [slow.id]

    table = _cli("list", "--url", served)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["ID", "STATE", "PACKAGE", "WORKFLOW", "RUN", "ID", "CREATED",
                              "DURATION"]  # fmt: skip
    echo_row = next(row for row in rows if row.startswith(echo.id))
    assert echo_row.split()[1:4] == ["succeeded", ECHO, "cli-echo"]
    assert echo_row.split()[-1].endswith("s")

    shown = _cli("show", echo.id, "--url", served)
    assert shown.returncode == 0, shown.stderr
    assert f"id               {echo.id}" in shown.stdout
    assert "state            succeeded" in shown.stdout
    assert '"message": "cli"' in shown.stdout
    shown_json = _cli("show", echo.id, "--json", "--url", served)
    assert RunRecord.model_validate_json(shown_json.stdout).id == echo.id

    cancelled = _cli("cancel", slow.id, "--url", served)
    assert cancelled.returncode == 0, cancelled.stderr
    assert slow.id in cancelled.stdout
    assert _with(served, lambda wt: wt.wait(slow.id, 30)).state is RunState.CANCELLED

    again = _cli("cancel", slow.id, "--url", served)
    assert (again.returncode, again.stdout) == (1, "")
    assert again.stderr.startswith("wtrunner: HTTP 409") and slow.id in again.stderr


def test_cli_errors_and_usage(served: str) -> None:
    missing = _cli("show", "no-such-run", "--url", served)
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr.startswith("wtrunner: HTTP 404 (GET /runs/no-such-run): ")

    unreachable = _cli("list", "--url", f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 1
    assert "cannot reach the service" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr

    for usage in (
        ["list", "--limit", "0"],
        ["list", "--state", "sleeping"],
        ["show"],
        ["logs", "x", "--tail", "-1"],
        ["frobnicate"],
        ["list", "--url", "not a url"],
    ):
        result = _cli(*usage)
        assert result.returncode == 2, (usage, result.stderr)
        assert result.stderr and "Traceback" not in result.stderr, usage

    bad_port = _cli("list", env={"WTRUNNER_PORT": "eighty"})
    assert bad_port.returncode == 2 and "WTRUNNER_PORT" in bad_port.stderr


def test_cli_url_defaults_to_wtrunner_port(served: str) -> None:
    port = served.rsplit(":", 1)[1]
    result = _cli("list", "--json", env={"WTRUNNER_PORT": port})
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), list)


def test_cli_logs(served: str, tmp_path: Path) -> None:
    run = _with(served, lambda wt: wt.submit(CRASH, {}, results_url=str(tmp_path / "r")))
    followed = _cli("logs", run.id, "--follow", "--stream", "stderr", "--url", served)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.endswith("fatal: the sky fell\n")
    followed_tail = _cli("logs", run.id, "-f", "--tail", "1", "--stream", "stderr", "--url", served)
    assert (followed_tail.returncode, followed_tail.stdout) == (0, "fatal: the sky fell\n")
    tail = _cli("logs", run.id, "--tail", "2", "--url", served)
    assert tail.returncode == 0, tail.stderr
    assert tail.stdout.splitlines()[-1] == "fatal: the sky fell"
    missing = _cli("logs", "no-such-run", "--url", served)
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr
