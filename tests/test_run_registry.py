"""Runs as resources: every front door records its runs; status, wait, list, cancel, delete,
restart recovery and retention, against real SQLite files and real workflow processes."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tests.helpers import (
    Client,
    ClientFactory,
    SettingsFactory,
    post_run,
    run_files_left,
    sync_engine,
    until,
)
from tests.processes import call_json, kill_server, start_server, stop_server, wait_until
from tests.pubsub_helpers import push_body, run_command
from wtrunner.keys import RUNS
from wtrunner.run_request import CANCELLED_MESSAGE, LOST_MESSAGE, new_run_id
from wtrunner.run_states import RunState
from wtrunner.runstore import NewRun, RunStore
from wtrunner.settings import Settings

ECHO = "wt-test-echo-workflow"
SLOW = "wt-test-slow-workflow"
RUN_BODY = {"execution_mode": "sequential", "mock_io": True}


@pytest.fixture
def make_settings(make_settings: SettingsFactory, store_url: str) -> SettingsFactory:
    """Every app of these tests records its runs in the store of the parametrization: SQLite,
    and PostgreSQL in the full suite (the same run-registry tests on both stores)."""

    def factory(**overrides: Any) -> Settings:
        overrides.setdefault("database_url", store_url)
        return make_settings(**overrides)

    return factory


async def _submit(
    client: Client, matchspec: str, params: dict[str, Any], results: Path, **query: str
) -> tuple[int, Any, Any]:
    response = await client.post(
        "/runs",
        params={"matchspec": matchspec, **query},
        json={"params": params, "results_url": str(results), **RUN_BODY},
    )
    return response.status, await response.json(), response.headers


async def _get(client: Client, path: str, **query: str) -> Any:
    response = await client.get(path, params=query)
    assert response.status == 200, await response.text()
    return await response.json()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_run_ids_are_safe_on_a_command_line_and_in_names() -> None:
    # URL-safe base64 ids once began with "-", which `wtrunner runs show` took for an option
    ids = {new_run_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(re.fullmatch("[a-z2-7]{16}", run_id) for run_id in ids)


async def test_a_synchronous_run_is_recorded(client: Client, tmp_path: Path) -> None:
    response = await client.post(
        "/",
        params={"matchspec": ECHO, "workflow_run_id": "sync-1"},
        json={"params": {"echo": {}}, "results_url": str(tmp_path / "r"), **RUN_BODY,
              "data_connections_env_vars": {"ER_TOKEN": "secret-value-9"}},
    )  # fmt: skip
    assert response.status == 200
    run_id = response.headers["X-Run-ID"]
    run = await _get(client, f"/runs/{run_id}")
    assert run["state"] == "succeeded"
    assert run["front_door"] == "http"
    assert run["workflow_run_id"] == "sync-1"
    assert run["package"] == ECHO
    assert run["resolved"]["name"] == ECHO and run["resolved"]["version"]
    assert run["outcome"]["kind"] == "ok" and run["outcome"]["exit_code"] == 0
    assert run["created_at"] <= run["started_at"] <= run["finished_at"]
    assert run["data_connection_names"] == ["ER_TOKEN"]
    assert "secret-value-9" not in json.dumps(run)
    assert run["results_url"] == (tmp_path / "r").as_uri()


async def test_async_submit_then_poll_then_result(client: Client, tmp_path: Path) -> None:
    status, run, headers = await _submit(client, ECHO, {"echo": {"message": "hi"}}, tmp_path / "r")
    assert status == 202
    assert headers["Location"] == f"/runs/{run['id']}"
    assert run["state"] in ("queued", "running", "succeeded")
    done = await _get(client, headers["Location"], wait="30")
    assert done["state"] == "succeeded"
    assert done["outcome"]["result"]["params"] == {"echo": {"message": "hi"}}


async def test_prefer_respond_async_on_post_root(client: Client, tmp_path: Path) -> None:
    response = await client.post(
        "/",
        params={"matchspec": ECHO},
        json={"params": {"echo": {}}, "results_url": str(tmp_path / "r"), **RUN_BODY},
        headers={"Prefer": "respond-async"},
    )
    assert response.status == 202
    run = await response.json()
    assert response.headers["Location"] == f"/runs/{run['id']}"
    assert (await _get(client, f"/runs/{run['id']}", wait="30"))["state"] == "succeeded"


async def test_wait_returns_the_run_as_it_is_when_time_is_up(
    client: Client, tmp_path: Path
) -> None:
    _, run, _ = await _submit(client, SLOW, {"sleep": {"seconds": 30}}, tmp_path / "r")
    still = await _get(client, f"/runs/{run['id']}", wait="0.3")
    assert still["state"] in ("queued", "running")
    await client.post(f"/runs/{run['id']}/cancel")


async def test_a_bad_request_creates_no_run(client: Client, tmp_path: Path) -> None:
    status, body, _ = await _submit(client, ECHO, {"echo": {"count": -1}}, tmp_path / "r")
    assert status == 422
    assert body["detail"][0]["validator"] == "minimum"
    assert (await _get(client, "/runs"))["runs"] == []
    missing = await client.get("/runs/nope")
    assert missing.status == 404 and "detail" in await missing.json()


async def test_list_filters_and_pages_stay_stable_under_inserts(
    client: Client, tmp_path: Path
) -> None:
    ids = []
    for index in range(5):
        status, _ = await post_run(
            client,
            ECHO,
            {"echo": {}},
            tmp_path / str(index),
            query={"workflow_run_id": f"w{index}"},
        )
        assert status == 200
    status, _ = await post_run(client, ECHO, {"echo": {"raise": "x"}}, tmp_path / "f")
    assert status == 500
    everything = await _get(client, "/runs")
    ids = [run["id"] for run in everything["runs"]]
    assert len(ids) == 6 and everything["next"] is None
    assert [run["state"] for run in (await _get(client, "/runs", state="failed"))["runs"]] == [
        "failed"
    ]
    assert [
        r["workflow_run_id"] for r in (await _get(client, "/runs", workflow_run_id="w3"))["runs"]
    ] == ["w3"]
    assert len((await _get(client, "/runs", package=ECHO))["runs"]) == 6
    assert (await _get(client, "/runs", package="wt-other"))["runs"] == []

    first = await _get(client, "/runs", limit="4")
    assert [run["id"] for run in first["runs"]] == ids[:4]
    assert first["next"]
    await post_run(client, ECHO, {"echo": {}}, tmp_path / "new")  # a newer run meanwhile
    second = await _get(client, first["next"])
    assert [run["id"] for run in second["runs"]] == ids[4:]
    assert second["next"] is None
    bad = await client.get("/runs", params={"cursor": "not-a-cursor"})
    assert bad.status == 422
    too_many = await client.get("/runs", params={"limit": "501"})
    assert too_many.status == 422


async def test_cancel_a_run_whose_workflow_ignores_sigterm(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_client(kill_grace_seconds=0.5)
    pid_file = tmp_path / "pid"
    params = {"sleep": {"seconds": 600, "ignore_sigterm": True, "pid_file": str(pid_file)}}
    _, run, _ = await _submit(client, SLOW, params, tmp_path / "r")
    await until(pid_file.exists, 60, "the workflow to start")
    pid = int(pid_file.read_text())
    response = await client.post(f"/runs/{run['id']}/cancel")
    assert response.status == 202
    done = await _get(client, f"/runs/{run['id']}", wait="30")
    assert done["state"] == "cancelled"
    assert done["outcome"]["error"] == CANCELLED_MESSAGE
    assert not _alive(pid)
    again = await client.post(f"/runs/{run['id']}/cancel")
    assert again.status == 409
    assert "detail" in await again.json()


async def test_a_synchronous_post_of_a_cancelled_run_answers_500(
    client: Client, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    params = {"sleep": {"seconds": 600, "pid_file": str(pid_file)}}

    async def cancel_when_started() -> None:
        await until(pid_file.exists, 60, "the workflow to start")
        (run,) = (await _get(client, "/runs", state="running"))["runs"]
        assert (await client.post(f"/runs/{run['id']}/cancel")).status == 202

    (status, body), _ = await asyncio.gather(
        post_run(client, SLOW, params, tmp_path / "r"), cancel_when_started()
    )
    assert (status, body["error"]) == (500, CANCELLED_MESSAGE)


async def test_a_run_that_finds_a_slot_free_is_recorded_running_at_once(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    """Two writes for a run that starts at once (created running, then its end); a run that
    waited for a slot is recorded queued first, and becomes running when it gets one."""
    client = await make_client(max_concurrent_runs=1, kill_grace_seconds=0.2)
    engine = sync_engine(client.app[RUNS].store)
    writes: list[tuple[str, str]] = []

    def seen(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, *_: Any
    ) -> None:
        verb = statement.split()[0].upper()
        if verb in ("INSERT", "UPDATE") and " runs" in statement.lower():
            values = context.compiled_parameters[0] if context.compiled_parameters else {}
            writes.append((verb, str(values.get("state", ""))))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        status, body = await post_run(client, ECHO, {"echo": {}}, tmp_path / "a")
        assert status == 200, body
        await client.app[RUNS].settled()
        assert writes == [("INSERT", "running"), ("UPDATE", "succeeded")]
        writes.clear()
        pid_file = tmp_path / "pid"
        _, first, _ = await _submit(
            client, SLOW, {"sleep": {"seconds": 600, "pid_file": str(pid_file)}}, tmp_path / "b"
        )
        await until(pid_file.exists, 60, "the first run to hold the only slot")
        _, waiting, _ = await _submit(client, ECHO, {"echo": {}}, tmp_path / "c")
        assert (await _get(client, f"/runs/{waiting['id']}"))["state"] == "queued"
        assert (await client.post(f"/runs/{first['id']}/cancel")).status == 202
        done = await _get(client, f"/runs/{waiting['id']}", wait="60")
        assert done["state"] == "succeeded"
        assert done["resolved"]["name"] == ECHO
        await client.app[RUNS].settled()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    # the slow run: created running, its cancel asked for, cancelled; the other: created
    # queued, running once it had the slot, succeeded
    assert sorted(writes) == sorted([
        ("INSERT", "running"), ("UPDATE", ""), ("UPDATE", "cancelled"),
        ("INSERT", "queued"), ("UPDATE", "running"), ("UPDATE", "succeeded"),
    ])  # fmt: skip


async def test_a_queued_run_cancelled_never_starts(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_client(max_concurrent_runs=1, kill_grace_seconds=0.2)
    pid_file = tmp_path / "pid"
    _, first, _ = await _submit(
        client, SLOW, {"sleep": {"seconds": 600, "pid_file": str(pid_file)}}, tmp_path / "a"
    )
    await until(pid_file.exists, 60, "the first run to hold the only slot")
    marker = tmp_path / "ran.txt"
    _, queued, _ = await _submit(client, ECHO, {"echo": {"append": str(marker)}}, tmp_path / "b")
    assert (await _get(client, f"/runs/{queued['id']}"))["state"] == "queued"
    assert (await client.post(f"/runs/{queued['id']}/cancel")).status == 202
    assert (await client.post(f"/runs/{first['id']}/cancel")).status == 202
    assert (await _get(client, f"/runs/{queued['id']}", wait="30"))["state"] == "cancelled"
    assert (await _get(client, f"/runs/{first['id']}", wait="30"))["state"] == "cancelled"
    assert not marker.exists()


async def test_delete_forgets_a_finished_run_only(client: Client, tmp_path: Path) -> None:
    _, run, _ = await _submit(client, SLOW, {"sleep": {"seconds": 600}}, tmp_path / "r")
    assert (await client.delete(f"/runs/{run['id']}")).status == 409
    await client.post(f"/runs/{run['id']}/cancel")
    await _get(client, f"/runs/{run['id']}", wait="30")
    assert (await client.delete(f"/runs/{run['id']}")).status == 204
    assert (await client.get(f"/runs/{run['id']}")).status == 404


async def test_pubsub_push_runs_are_recorded(client: Client, tmp_path: Path) -> None:
    command = run_command(ECHO, {"echo": {}}, tmp_path / "r", run_id="ps-rec-1")
    response = await client.post("/run-from-pubsub", json=push_body(command))
    assert await response.json() == {"status": "processed"}
    (run,) = (await _get(client, "/runs", workflow_run_id="ps-rec-1"))["runs"]
    assert (run["front_door"], run["state"]) == ("pubsub-push", "succeeded")


async def test_history_survives_a_clean_restart_and_unfinished_runs_become_lost(
    make_client: ClientFactory, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    settings = make_settings()
    client = await make_client(settings)
    status, _ = await post_run(client, ECHO, {"echo": {}}, tmp_path / "r")
    assert status == 200
    (finished,) = (await _get(client, "/runs"))["runs"]
    await client.close()

    # a run this replica recorded as running when it died
    store = await RunStore.open(settings.effective_database_url)
    orphan = await store.create(
        NewRun(id="orphan-1", package=ECHO, matchspec=ECHO, invoker_type="x", front_door="http",
               results_url="file:///tmp/x", replica=settings.replica_id)
    )  # fmt: skip
    await store.transition(orphan.id, RunState.RUNNING)
    await store.close()

    again = await make_client(settings)
    runs = {run["id"]: run for run in (await _get(again, "/runs"))["runs"]}
    assert runs[finished["id"]]["state"] == "succeeded"
    assert runs["orphan-1"]["state"] == "lost"
    assert runs["orphan-1"]["outcome"]["error"] == LOST_MESSAGE


async def test_retention_prunes_old_finished_runs(client: Client, tmp_path: Path) -> None:
    status, _ = await post_run(client, ECHO, {"echo": {}}, tmp_path / "r")
    assert status == 200
    runs = client.app[RUNS]
    assert await runs.prune(dt.timedelta(days=30)) == []
    assert await runs.store.replica(runs.replica) is not None, "its heartbeat is recent"
    pruned = await runs.prune(dt.timedelta(seconds=0))
    assert len(pruned) == 1
    assert (await _get(client, "/runs"))["runs"] == []
    assert await runs.store.replica(runs.replica) is None, "silent longer than the retention"


async def test_runs_gauge_by_state(client: Client, tmp_path: Path) -> None:
    await post_run(client, ECHO, {"echo": {}}, tmp_path / "r")
    await post_run(client, ECHO, {"echo": {"raise": "x"}}, tmp_path / "f")
    await client.app[RUNS].refresh_counts()
    text = await (await client.get("/metrics")).text()
    assert 'wtrunner_runs{state="succeeded"} 1.0' in text
    assert 'wtrunner_runs{state="failed"} 1.0' in text
    assert 'wtrunner_runs{state="running"} 0.0' in text


def test_a_server_killed_mid_run_restarts_with_the_run_lost_and_its_process_gone(
    tmp_path: Path, channel: Path
) -> None:
    settings = {"WTRUNNER_CHANNELS": channel.as_uri(), "WTRUNNER_REPLICA_ID": "replica-k"}
    work = tmp_path / "cache" / "work"
    quick = {"params": {"echo": {"message": "hi"}}, "results_url": str(tmp_path / "q"), **RUN_BODY}
    server, url = start_server(tmp_path, stderr=subprocess.DEVNULL, **settings)
    pid_file = tmp_path / "pid"
    try:
        assert call_json(f"{url}/?matchspec={ECHO}", quick)["error"] is None
        wait_until(lambda: list(work.glob("idle-*")), 10, "the run's work dir was not kept")
        kept = list(work.glob("idle-*"))
        run = call_json(
            f"{url}/runs?matchspec={SLOW}",
            {"params": {"sleep": {"seconds": 600, "pid_file": str(pid_file)}},
             "results_url": str(tmp_path / "r"), **RUN_BODY},
        )  # fmt: skip
        wait_until(pid_file.exists, 60, "the workflow did not start")
        pid = int(pid_file.read_text())
        assert call_json(f"{url}/runs/{run['id']}")["state"] == "running"
        assert list(work.glob(f"run-{run['id']}-*"))
    finally:
        kill_server(server)
    assert _alive(pid), "the orphaned workflow outlives its server"

    again, url = start_server(tmp_path, stderr=subprocess.DEVNULL, **settings)
    try:
        record = call_json(f"{url}/runs/{run['id']}")
        assert record["state"] == "lost"
        assert record["outcome"]["error"] == LOST_MESSAGE
        wait_until(lambda: not _alive(pid), 10, "the orphaned workflow survived the restart")
        assert not list(work.glob(f"run-{run['id']}-*")), "the lost run's work dir is left"
        # the emptied dir the killed server kept is reused, not left beside a new one
        assert call_json(f"{url}/?matchspec={ECHO}", quick)["error"] is None
        assert not kept[0].exists(), "the kept work dir was not reused"
        wait_until(
            lambda: len(list(work.glob("idle-*"))) == 1 and run_files_left(work) == [],
            10, "one work dir kept, nothing else left",
        )  # fmt: skip
    finally:
        stop_server(again)


# --- idempotency -----------------------------------------------------------------------------


async def test_the_same_run_id_names_one_run(client: Client, tmp_path: Path) -> None:
    count = tmp_path / "runs.txt"
    go = {"echo": {"append": str(count)}}
    results = tmp_path / "r"
    first, second = await asyncio.gather(
        _submit(client, ECHO, go, results, workflow_run_id="idem-1"),
        _submit(client, ECHO, go, results, workflow_run_id="idem-1"),
    )
    assert sorted((first[0], second[0])) == [200, 202]
    assert first[1]["id"] == second[1]["id"]
    done = await _get(client, f"/runs/{first[1]['id']}", wait="30")
    assert done["state"] == "succeeded" and done["attempt"] == 1

    # after it succeeded: the synchronous door answers its outcome and starts nothing
    response = await client.post(
        "/",
        params={"matchspec": ECHO, "workflow_run_id": "idem-1"},
        json={"params": go, "results_url": str(results), **RUN_BODY},
    )
    assert response.status == 200
    assert response.headers["X-Run-ID"] == done["id"]
    assert (await response.json())["result"] == done["outcome"]["result"]
    assert len(count.read_text().splitlines()) == 1

    # the same id for another request is a 409 naming the id
    status, body, _ = await _submit(
        client, ECHO, {"echo": {"message": "other"}}, results, workflow_run_id="idem-1"
    )
    assert status == 409
    assert "idem-1" in body["detail"]


async def test_an_idempotency_key_names_a_run_without_a_run_id(
    client: Client, tmp_path: Path
) -> None:
    count = tmp_path / "runs.txt"
    body = {"params": {"echo": {"append": str(count)}}, "results_url": str(tmp_path / "r"),
            **RUN_BODY}  # fmt: skip
    ids = []
    for _ in range(2):
        response = await client.post(
            "/runs", params={"matchspec": ECHO}, json=body, headers={"Idempotency-Key": "k-77"}
        )
        ids.append((await response.json())["id"])
        await _get(client, f"/runs/{ids[-1]}", wait="30")
    assert ids[0] == ids[1]
    assert len(count.read_text().splitlines()) == 1


async def test_after_a_failure_the_same_request_is_the_next_attempt(
    client: Client, tmp_path: Path
) -> None:
    params = {"echo": {"raise": "flaky source"}}
    _, first, _ = await _submit(client, ECHO, params, tmp_path / "r", workflow_run_id="retry-1")
    assert (await _get(client, f"/runs/{first['id']}", wait="30"))["state"] == "failed"
    status, second, _ = await _submit(
        client, ECHO, params, tmp_path / "r", workflow_run_id="retry-1"
    )
    assert status == 202
    assert second["id"] != first["id"] and second["attempt"] == 2
    attempts = (await _get(client, "/runs", workflow_run_id="retry-1"))["runs"]
    assert [run["attempt"] for run in attempts] == [2, 1]


async def test_pubsub_redelivery_runs_once_and_a_failure_runs_again(
    client: Client, tmp_path: Path
) -> None:
    count = tmp_path / "runs.txt"
    command = run_command(ECHO, {"echo": {"append": str(count)}}, tmp_path / "r", run_id="ps-i")
    answers = await asyncio.gather(  # copies delivered at the same moment
        *(client.post("/run-from-pubsub", json=push_body(command)) for _ in range(6))
    )
    statuses = [(await answer.json())["status"] for answer in answers]
    # each copy waits for the one run; a copy handled after it ended is a plain duplicate
    assert "processed" in statuses and set(statuses) <= {"processed", "duplicate"}
    later = await client.post("/run-from-pubsub", json=push_body(command))
    assert await later.json() == {"status": "duplicate"}
    assert len(count.read_text().splitlines()) == 1

    failing = run_command(ECHO, {"echo": {"raise": "x"}}, tmp_path / "f", run_id="ps-f")
    for _ in range(2):
        answer = await client.post("/run-from-pubsub", json=push_body(failing))
        assert (await answer.json())["status"] == "error"
    attempts = (await _get(client, "/runs", workflow_run_id="ps-f"))["runs"]
    assert [(run["attempt"], run["state"]) for run in attempts] == [(2, "failed"), (1, "failed")]


async def test_a_client_leaving_a_synchronous_post_does_not_cancel_its_run(
    client: Client, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    params = {"sleep": {"seconds": 600, "pid_file": str(pid_file)}}
    posting = asyncio.ensure_future(post_run(client, SLOW, params, tmp_path / "r"))
    await until(pid_file.exists, 60, "the workflow to start")
    posting.cancel()  # the client goes away: its connection is closed
    await asyncio.gather(posting, return_exceptions=True)
    (run,) = (await _get(client, "/runs", state="running"))["runs"]
    pid = int(pid_file.read_text())
    still = await _get(client, f"/runs/{run['id']}", wait="0.5")
    assert still["state"] == "running" and _alive(pid)
    assert (await client.post(f"/runs/{run['id']}/cancel")).status == 202
    assert (await _get(client, f"/runs/{run['id']}", wait="30"))["state"] == "cancelled"
