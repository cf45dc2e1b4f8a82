"""POST /: results, workflow failures, every client error of the README's table, secrets,
context."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from pathlib import Path

import pytest
import yaml

from tests.helpers import Client, ClientFactory, SettingsFactory, post_run, run_files_left, until
from wtrunner.keys import RUNS
from wtrunner.run_request import TIMEOUT_MESSAGE
from wtrunner.workdirs import WorkDirs

TRACKS = "wt-example-tracks-workflow"
ECHO = "wt-test-echo-workflow"
TRIVIAL = "wt-test-trivial-workflow"
TRACKS_PARAMS = {"workflow_details": {"name": "Elephants"}, "get_fixes": {}}


async def test_success_returns_the_result(client: Client, tmp_path: Path) -> None:
    status, body = await post_run(client, TRACKS, TRACKS_PARAMS, tmp_path / "results")
    assert status == 200
    assert body["error"] is None and body["trace"] is None
    result = body["result"]
    assert result["workflow"] == "Elephants" and result["source"] == "sample data"
    assert [a["animal_id"] for a in result["animals"]] == [
        "elephant-01",
        "elephant-02",
        "giraffe-07",
    ]
    assert result["animals"][1]["dropped_fixes"] == 1
    on_disk = json.loads((tmp_path / "results" / "result.json").read_text())
    assert on_disk["result"] == result


async def test_real_io_with_fixes_in_params(client: Client, tmp_path: Path) -> None:
    fixes = [
        {"animal_id": "zebra-3", "time": "2024-05-01T00:00:00Z", "lat": 0.0, "lon": 0.0},
        {"animal_id": "zebra-3", "time": "2024-05-01T01:00:00Z", "lat": 0.0, "lon": 0.1},
    ]
    params = {"workflow_details": {"name": "z"}, "get_fixes": {"fixes": fixes}}
    status, body = await post_run(client, TRACKS, params, tmp_path / "r", mock_io=False)
    assert status == 200
    zebra = body["result"]["animals"][0]
    assert zebra["animal_id"] == "zebra-3"
    assert zebra["distance_km"] == pytest.approx(11.12, abs=0.01)
    assert zebra["mean_speed"] == pytest.approx(11.12, abs=0.01)


async def test_list_result_is_returned_as_is(client: Client, tmp_path: Path) -> None:
    status, body = await post_run(client, "wt-test-list-workflow", {}, tmp_path / "r")
    assert (status, body["result"]) == (200, [1, "two", {"three": 3}])


async def test_workflow_error_is_500_with_its_error_and_trace(
    client: Client, tmp_path: Path
) -> None:
    params = {"echo": {"raise": "the river flooded the camp"}}
    status, body = await post_run(client, ECHO, params, tmp_path / "r")
    assert status == 500
    assert body["result"] is None
    assert body["error"] == "the river flooded the camp"
    assert "RuntimeError: the river flooded the camp" in body["trace"]


async def test_crash_without_result_is_500_with_stderr_tail(client: Client, tmp_path: Path) -> None:
    status, body = await post_run(client, "wt-test-crash-workflow", {}, tmp_path / "r")
    assert status == 500
    assert body["error"] == "The workflow exited with code 3: fatal: the sky fell"
    assert "working on step 49" in body["trace"]
    assert body["result"] is None


async def test_stale_result_from_an_earlier_run_is_never_returned(
    client: Client, tmp_path: Path
) -> None:
    results = tmp_path / "r"
    results.mkdir()
    stale = {"result": {"stale": True}, "error": None, "trace": None}
    (results / "result.json").write_text(json.dumps(stale))
    status, body = await post_run(client, "wt-test-crash-workflow", {"exit_code": 0}, results)
    assert status == 500
    assert "exited with code 0 but wrote no result.json" in body["error"]
    assert body["result"] is None


async def test_timeout_message(client: Client, tmp_path: Path) -> None:
    status, body = await post_run(
        client,
        "wt-test-slow-workflow",
        {"sleep": {"seconds": 30}},
        tmp_path / "r",
        query={"timeout": "0.5"},
    )
    assert status == 500
    assert body["error"] == TIMEOUT_MESSAGE
    assert body["result"] is None


async def test_fields_in_body_or_query_and_conflicts(client: Client, tmp_path: Path) -> None:
    # as existing clients send them: in the query string
    response = await client.post(
        "/",
        params={
            "matchspec": ECHO,
            "execution_mode": "async",
            "mock_io": "false",
            "results_url": str(tmp_path / "q"),
        },
        json={"params": {"echo": {}}},
    )
    body = await response.json()
    assert response.status == 200, body
    assert (body["result"]["execution_mode"], body["result"]["mock_io"]) == ("async", False)

    # in both places with the same value: fine; with different values: 422
    status, body = await post_run(
        client, ECHO, {"echo": {}}, tmp_path / "b", query={"mock_io": "true"}, mock_io=True
    )
    assert status == 200
    status, body = await post_run(
        client, ECHO, {"echo": {}}, tmp_path / "c", query={"execution_mode": "async"}
    )
    assert status == 422
    assert body["detail"][0]["loc"] == ["query", "execution_mode"]


@pytest.mark.parametrize(
    ("matchspec", "query", "body", "loc", "words"),
    [
        (ECHO, {}, {"params": None}, ["body", "params"], "required"),
        (ECHO, {}, {"mock_io": None}, ["body", "mock_io"], "required"),
        (ECHO, {}, {"params": ["not", "a", "dict"]}, ["body", "params"], "object"),
        (None, {}, {}, ["query", "matchspec"], "required"),
        ("wt-*-workflow", {}, {}, ["query", "matchspec"], "MatchSpec"),
        (ECHO, {"invoker_type": "SshInvoker"}, {}, ["query", "invoker_type"], "BlockingLocal"),
        (ECHO, {}, {"results_url": "relative/dir"}, ["body", "results_url"], "absolute"),
        (ECHO, {}, {"results_url": "ftp://h/x"}, ["body", "results_url"], "scheme"),
        (ECHO, {"timeout": "-1"}, {}, ["query", "timeout"], "greater than"),
        (
            ECHO,
            {},
            {"data_connections_env_vars": {"PATH": "/evil"}},
            ["body", "data_connections_env_vars", "PATH"],
            "reserved",
        ),
        (
            ECHO,
            {},
            {"data_connections_env_vars": {"LD_PRELOAD": "/evil.so"}},
            ["body", "data_connections_env_vars", "LD_PRELOAD"],
            "reserved",
        ),
        (
            ECHO,
            {},
            {"data_connections_env_vars": {"WT_RESULTS": "file:///elsewhere"}},
            ["body", "data_connections_env_vars", "WT_RESULTS"],
            "reserved",
        ),
        (
            ECHO,
            {},
            {"data_connections_env_vars": {"BAD NAME": "x"}},
            ["body", "data_connections_env_vars", "BAD NAME"],
            "valid",
        ),
    ],
)
async def test_malformed_requests_are_422_naming_the_field(
    client: Client,
    tmp_path: Path,
    matchspec: str | None,
    query: dict[str, str],
    body: dict[str, object],
    loc: list[str],
    words: str,
) -> None:
    payload: dict[str, object] = {
        "params": {"echo": {}},
        "execution_mode": "sequential",
        "mock_io": True,
        "results_url": str(tmp_path / "r"),
    }
    payload.update(body)
    payload = {key: value for key, value in payload.items() if value is not None}
    params = {"matchspec": matchspec} if matchspec else {}
    response = await client.post("/", params={**params, **query}, json=payload)
    assert response.status == 422
    assert response.content_type == "application/json"
    detail = (await response.json())["detail"]
    item = next(item for item in detail if item["loc"] == loc)
    assert words.lower() in item["msg"].lower()
    assert not (tmp_path / "r").exists(), "nothing may run for a malformed request"


async def test_several_problems_are_reported_at_once(client: Client, tmp_path: Path) -> None:
    response = await client.post(
        "/",
        params={"invoker_type": "Nope", "timeout": "soon"},
        json={"execution_mode": "parallel", "mock_io": True, "results_url": "rel"},
    )
    assert response.status == 422
    locs = {tuple(item["loc"]) for item in (await response.json())["detail"]}
    assert {("query", "timeout"), ("body", "params"), ("body", "execution_mode")} <= locs


async def test_params_failing_the_schema_are_422_with_jsonschema_items(
    client: Client, tmp_path: Path
) -> None:
    params = {"workflow_details": {"name": 7}}
    status, body = await post_run(client, TRACKS, params, tmp_path / "r")
    assert status == 422
    by_path = {tuple(item["path"]): item for item in body["detail"]}
    assert by_path[("workflow_details", "name")]["validator"] == "type"
    assert by_path[("workflow_details", "name")]["input"] == 7
    assert by_path[()]["validator"] == "required"
    assert set(by_path[()]) == {"message", "path", "schema_path", "validator", "input"}
    assert not (tmp_path / "r").exists()


async def test_package_without_params_schema_validates_its_own_params(
    client: Client, tmp_path: Path
) -> None:
    # the trivial workflow has no `get params`: bad params reach it, it exits 2
    status, body = await post_run(client, "wt-test-trivial-workflow", {"x": 1}, tmp_path / "ok")
    assert (status, body["result"]) == (200, {"ok": True, "params": {"x": 1}})


async def test_no_matching_package_is_404(client: Client, tmp_path: Path) -> None:
    status, body = await post_run(client, f"{ECHO}==9", {"echo": {}}, tmp_path / "r")
    assert status == 404
    assert f"{ECHO} ==9" in body["detail"]


async def test_unreachable_channel_is_503(make_client: ClientFactory, tmp_path: Path) -> None:
    client = await make_client(channels=("http://127.0.0.1:9/channel",))
    status, body = await post_run(client, ECHO, {"echo": {}}, tmp_path / "r")
    assert status == 503
    assert "cannot read the channels" in body["detail"]


async def test_results_outside_the_roots_are_422(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    allowed = tmp_path / "allowed"
    client = await make_client(results_roots=(str(allowed),))
    status, _ = await post_run(client, ECHO, {"echo": {}}, allowed / "run-1")
    assert status == 200
    for outside in (tmp_path / "elsewhere", allowed / ".." / "escape", "file:///etc"):
        status, body = await post_run(client, ECHO, {"echo": {}}, outside)
        assert status == 422, outside
        assert body["detail"][0]["loc"] == ["body", "results_url"]


async def test_all_slots_busy_and_queue_full_is_503_with_retry_after(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_client(max_concurrent_runs=1, max_queued_runs=0)
    slow = asyncio.create_task(
        post_run(client, "wt-test-slow-workflow", {"sleep": {"seconds": 3}}, tmp_path / "a")
    )
    slots = client.app[RUNS].slots
    await until(lambda: slots.in_use, 60, "the slow run to hold the only run slot")
    response = await client.post(
        "/",
        params={"matchspec": ECHO},
        json={"params": {"echo": {}}, "execution_mode": "sequential", "mock_io": True,
              "results_url": str(tmp_path / "b")},
    )  # fmt: skip
    assert response.status == 503
    assert int(response.headers["Retry-After"]) > 0
    assert "run slots" in (await response.json())["detail"]
    assert (await slow)[0] == 200


async def test_secrets_reach_the_workflow_but_no_response_or_log(
    client: Client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    canary = "s3cr3t-canary-7f1e"
    with caplog.at_level(logging.DEBUG):
        status, body = await post_run(
            client,
            ECHO,
            {"echo": {"message": "hi"}},
            tmp_path / "r",
            data_connections_env_vars={"ER_PASSWORD": canary},
        )
        assert status == 200
        assert "ER_PASSWORD" in body["result"]["env_names"]
        assert canary not in json.dumps(body)

        failed_status, failed = await post_run(
            client,
            ECHO,
            {"echo": {"raise": "boom"}},
            tmp_path / "r2",
            data_connections_env_vars={"ER_PASSWORD": canary},
        )
        assert failed_status == 500 and canary not in json.dumps(failed)

        bad_status, bad = await post_run(
            client,
            ECHO,
            {"echo": {}},
            tmp_path / "r3",
            data_connections_env_vars={"HOME": canary, "OK_NAME": canary},
        )
        assert bad_status == 422 and canary not in json.dumps(bad)

        invalid = await client.post(
            "/", params={"matchspec": ECHO}, json={"data_connections_env_vars": {"X": canary}}
        )
        assert invalid.status == 422 and canary not in await invalid.text()
    assert caplog.records, "the run path logs something"
    assert canary not in caplog.text


async def test_child_environment_is_minimal_and_complete(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WTRUNNER_TEST_SERVER_SECRET", "server-only")
    monkeypatch.setenv("WT_TEST_PASSED_THROUGH", "yes")
    monkeypatch.setenv("TZ", "Africa/Nairobi")
    wanted = ["WT_RESULTS", "WT_TEST_ACTIVATED", "WT_TEST_PASSED_THROUGH", "TZ", "CONN_URL"]
    status, body = await post_run(
        client,
        ECHO,
        {"echo": {"env": wanted}},
        tmp_path / "r",
        data_connections_env_vars={"CONN_URL": "https://er.example.org"},
    )
    assert status == 200
    env = body["result"]["env"]
    assert env["WT_RESULTS"] == (tmp_path / "r").as_uri()
    assert env["WT_TEST_ACTIVATED"] == "yes"
    assert env["WT_TEST_PASSED_THROUGH"] == "yes"
    assert env["TZ"] == "Africa/Nairobi"
    assert env["CONN_URL"] == "https://er.example.org"
    assert "WTRUNNER_TEST_SERVER_SECRET" not in body["result"]["env_names"]
    assert "PYTHONPATH" not in body["result"]["env_names"]


async def test_results_variable_name_can_be_changed(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_client(results_env_var="MY_RESULTS")
    status, body = await post_run(
        client, ECHO, {"echo": {"env": ["MY_RESULTS", "WT_RESULTS"]}}, tmp_path / "r"
    )
    assert status == 200
    assert body["result"]["env"] == {"MY_RESULTS": (tmp_path / "r").as_uri(), "WT_RESULTS": None}


async def test_trace_context_reaches_the_workflow(client: Client, tmp_path: Path) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    status, body = await post_run(
        client,
        ECHO,
        {"echo": {"env": ["TRACEPARENT", "TRACESTATE"]}},
        tmp_path / "r",
        headers={"traceparent": traceparent, "tracestate": "congo=t61rcWkgMzE"},
    )
    assert status == 200
    env = body["result"]["env"]
    assert env["TRACEPARENT"].split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"  # same trace
    assert env["TRACESTATE"] == "congo=t61rcWkgMzE"


async def test_async_mode_gets_a_lithops_config_file(client: Client, tmp_path: Path) -> None:
    status, body = await post_run(
        client,
        ECHO,
        {"echo": {"files": ["LITHOPS_CONFIG_FILE"]}},
        tmp_path / "r",
        execution_mode="async",
        lithops_config={"lithops": {"backend": "gcp_cloudrun", "data_limit": 64},
                        "gcp": {"region": "europe-west1"}},
    )  # fmt: skip
    assert status == 200
    config = yaml.safe_load(body["result"]["files"]["LITHOPS_CONFIG_FILE"])
    assert config["lithops"]["backend"] == "gcp_cloudrun"
    assert config["lithops"]["data_limit"] == 64
    assert config["gcp"]["region"] == "europe-west1"


async def test_override_variable_replaces_the_requested_spec(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_client(matchspec_override="wt-test-versions-workflow<2")
    status, body = await post_run(client, ECHO, {}, tmp_path / "a")
    assert (status, body["result"]["version"]) == (200, "1.0.0")
    status, body = await post_run(client, None, {}, tmp_path / "b")
    assert (status, body["result"]["version"]) == (200, "1.0.0")


def test_at_start_kept_work_dirs_are_taken_and_lost_runs_dirs_removed(tmp_path: Path) -> None:
    """What a server killed mid-run left under ``<cache>/work``: its emptied dirs are reused
    (up to the number kept, the rest removed), its lost runs' dirs removed; others' stay."""
    root = tmp_path / "work"
    names = ["idle-00000001", "idle-00000002", "idle-00000003", f"run-lost1-{'a' * 8}",
             f"run-lost2-{'b' * 8}", f"run-alive-{'c' * 8}", "cmd-xyz", "run-x"]  # fmt: skip
    for name in names:
        (root / name / "tmp").mkdir(parents=True)
    (root / "idle-file").write_text("not a dir")
    work_dirs = WorkDirs(root, keep=2)
    work_dirs.recover({"lost1", "lost2"})
    taken = [work_dirs.take(), work_dirs.take(), work_dirs.take()]
    assert taken[2] is None and all(path is not None and path.is_dir() for path in taken[:2])
    assert sorted(path.name for path in root.iterdir()) == sorted(
        [path.name for path in taken if path is not None]
        + [f"run-alive-{'c' * 8}", "cmd-xyz", "run-x", "idle-file"]
    )
    WorkDirs(tmp_path / "none yet", keep=2).recover({"lost1"})  # no work dir at all: nothing


async def test_work_dirs_are_emptied_and_reused_unless_kept(
    make_client: ClientFactory, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    settings = make_settings(max_concurrent_runs=1)  # (one work dir kept)
    client = await make_client(settings)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "kept.txt").write_text("not the run's")
    work = settings.cache_dir / "work"
    found = []
    for index in range(2):  # each leaves files, directories and links to outside
        params = {"litter": {"outside": str(outside)}, "n": index}
        status, body = await post_run(client, TRIVIAL, params, tmp_path / f"r{index}")
        assert status == 200, body
        assert body["result"]["params"] == params
        found.append(body["result"]["found"])
        await until(lambda: not run_files_left(work), 10, "work dirs emptied")
    # the second run had the first one's dir, with nothing of it left
    assert [(f["cwd"], f["tmp"], f["modes"]) for f in found] == [
        (["params.json", "tmp"], [], ["0o700", "0o700"])  # (the first run took tmp's away)
    ] * 2
    assert found[0]["cwd_inode"] == found[1]["cwd_inode"]
    assert [path.name for path in outside.iterdir()] == ["kept.txt"]  # links not followed
    await client.close()
    assert list(work.iterdir()) == []  # removed at shutdown

    kept = make_settings(cache_dir=tmp_path / "kept-cache", keep_run_dirs=True)
    client = await make_client(kept)
    await post_run(client, ECHO, {"echo": {}}, tmp_path / "b")
    (run_dir,) = (kept.cache_dir / "work").iterdir()
    assert {p.name for p in run_dir.iterdir()} >= {"params.json", "tmp"}
    shutil.rmtree(run_dir)
