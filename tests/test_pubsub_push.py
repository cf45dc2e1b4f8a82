"""POST /run-from-pubsub: the push front door (no emulator needed: this is what Pub/Sub sends)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Client, ClientFactory, until
from tests.pubsub_helpers import push_body, run_command
from wtrunner.keys import RUNS
from wtrunner.run_request import TIMEOUT_MESSAGE

ECHO = "wt-test-echo-workflow"


async def _push(
    client: Client, data: bytes | dict[str, Any], message_id: str | None = None
) -> tuple[int, Any]:
    response = await client.post("/run-from-pubsub", json=push_body(data, message_id))
    assert response.content_type == "application/json"
    return response.status, await response.json()


def _result(results: Path) -> dict[str, Any]:
    return json.loads((results / "result.json").read_text())


async def test_success_is_processed_and_the_result_written(client: Client, tmp_path: Path) -> None:
    params = {"workflow_details": {"name": "pushed"}, "get_fixes": {}}
    command = run_command("wt-example-tracks-workflow", params, tmp_path / "r", run_id="run-1")
    status, body = await _push(client, command)
    assert (status, body) == (200, {"status": "processed"})
    assert _result(tmp_path / "r")["result"]["workflow"] == "pushed"


async def test_envelope_defaults_and_extra_fields(client: Client, tmp_path: Path) -> None:
    command = run_command(ECHO, {"echo": {}}, tmp_path / "r")
    command.pop("schema_version")
    command["unknown_field"] = {"ignored": True}
    command["payload"]["invoker_kwargs"].pop("mock_io")
    status, body = await _push(client, command)
    assert (status, body["status"]) == (200, "processed")
    result = _result(tmp_path / "r")["result"]
    assert (result["mock_io"], result["execution_mode"]) == (False, "sequential")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\xff\xfe not json", "not JSON"),
        ({"payload": {"command": "run"}}, "invoker_kwargs"),
        ({"schema_version": "v2", "payload": {}}, "schema_version"),
    ],
)
async def test_messages_without_a_usable_command_are_acked_with_an_error(
    client: Client, data: bytes | dict[str, Any], words: str
) -> None:
    status, body = await _push(client, data)
    assert status == 200
    assert body["status"] == "error" and words in body["error"]


async def test_data_that_is_not_base64_is_an_error(client: Client) -> None:
    body = push_body({"x": 1})
    body["message"]["data"] = "%%% not base64 %%%"
    response = await client.post("/run-from-pubsub", json=body)
    assert (response.status, (await response.json())["error"]) == (
        200,
        "message.data is not base64",
    )
    response = await client.post(
        "/run-from-pubsub", data=b"[1, 2, 3]", headers={"Content-Type": "application/json"}
    )
    assert (response.status, (await response.json())["status"]) == (200, "error")


@pytest.mark.parametrize(
    ("matchspec", "changes", "words"),
    [
        (ECHO, {"command": "delete"}, "unsupported command"),
        (ECHO, {"invoker_type": "SshInvoker"}, "unknown invoker"),
        ("wt-**-bad", {}, "MatchSpec"),
        (f"{ECHO}==9", {}, "no package matches"),
        (ECHO, {"params": {"echo": {"raise": "bad data"}}}, "bad data"),
        ("wt-test-crash-workflow", {"params": {}}, "exited with code 3"),
        (ECHO, {"params": {"echo": {"message": 7}}}, "schema"),
    ],
)
async def test_permanent_failures_are_acked_and_written_as_result(
    client: Client, tmp_path: Path, matchspec: str, changes: dict[str, Any], words: str
) -> None:
    command = run_command(matchspec, {"echo": {}}, tmp_path / "r", run_id="run-x")
    for key, value in changes.items():
        if key == "params":
            command["payload"]["invoker_kwargs"]["params"] = value
        else:
            command["payload"][key] = value
    status, body = await _push(client, command)
    assert status == 200
    assert body["status"] == "error" and words in body["error"]
    written = _result(tmp_path / "r")
    assert written["result"] is None and words in written["error"]


async def test_transient_failures_are_5xx_so_pubsub_retries(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    unreachable = await make_client(channels=("http://127.0.0.1:9/channel",))
    status, body = await _push(unreachable, run_command(ECHO, {"echo": {}}, tmp_path / "r"))
    assert status == 503 and "cannot read the channels" in body["detail"]
    assert not (tmp_path / "r").exists()


async def test_full_run_slots_are_transient(make_client: ClientFactory, tmp_path: Path) -> None:
    client = await make_client(max_concurrent_runs=1, max_queued_runs=0)
    slow = asyncio.create_task(
        _push(
            client, run_command("wt-test-slow-workflow", {"sleep": {"seconds": 2}}, tmp_path / "a")
        )
    )
    slots = client.app[RUNS].slots
    await until(lambda: slots.in_use, 60, "the slow run to hold the only run slot")
    status, _ = await _push(client, run_command(ECHO, {"echo": {}}, tmp_path / "b", run_id="b"))
    assert status == 503
    assert (await slow)[1]["status"] == "processed"


async def test_the_cap_caps_the_wait(make_client: ClientFactory, tmp_path: Path) -> None:
    client = await make_client(pubsub_max_run_seconds=1, kill_grace_seconds=0.5)
    command = run_command(
        "wt-test-slow-workflow", {"sleep": {"seconds": 60}}, tmp_path / "r", timeout=3600
    )
    started = time.monotonic()
    status, body = await _push(client, command)
    assert time.monotonic() - started < 20
    assert (status, body["status"], body["error"]) == (200, "error", TIMEOUT_MESSAGE)
    assert _result(tmp_path / "r")["error"] == TIMEOUT_MESSAGE


async def test_duplicates_run_once(client: Client, tmp_path: Path) -> None:
    count = tmp_path / "runs.txt"
    command = run_command(ECHO, {"echo": {"append": str(count)}}, tmp_path / "r", run_id="dup-1")
    first, second = await asyncio.gather(_push(client, command), _push(client, command))
    assert first == second == (200, {"status": "processed"})
    later = await _push(client, command)
    assert later == (200, {"status": "duplicate"})
    assert len(count.read_text().splitlines()) == 1

    # with no workflow_run_id, the Pub/Sub message id tells copies apart
    anonymous = run_command(ECHO, {"echo": {"append": str(count)}}, tmp_path / "r2")
    await _push(client, anonymous, message_id="m-1")
    await _push(client, anonymous, message_id="m-1")
    await _push(client, anonymous, message_id="m-2")
    assert len(count.read_text().splitlines()) == 3


async def test_secrets_never_in_answers_or_written_errors(client: Client, tmp_path: Path) -> None:
    canary = "pubsub-canary-39f1"
    command = run_command(ECHO, {"echo": {"raise": "x"}}, tmp_path / "r",
                          data_connections_env_vars={"TOKEN": canary, "PATH": canary})  # fmt: skip
    response = await client.post("/run-from-pubsub", json=push_body(command))
    assert canary not in await response.text()
    assert canary not in (tmp_path / "r" / "result.json").read_text()
