"""A run's logs: kept with its record, readable while it runs (follow), bounded, secrets masked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import Client, ClientFactory, until
from wtrunner.runlogs import LogSink, logs_dir, truncation_marker

CHATTY = "wt-test-chatty-workflow"
RUN_BODY = {"execution_mode": "sequential", "mock_io": True}


async def _submit(client: Client, chatter: dict[str, Any], results: Path, **body: Any) -> str:
    response = await client.post(
        "/runs",
        params={"matchspec": CHATTY},
        json={"params": {"chatter": chatter}, "results_url": str(results), **RUN_BODY, **body},
    )
    assert response.status == 202, await response.text()
    run_id: str = (await response.json())["id"]
    return run_id


async def _finished(client: Client, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = await (await client.get(f"/runs/{run_id}", params={"wait": "60"})).json()
    assert run["state"] == "succeeded", run
    return run


async def test_logs_of_a_finished_run_by_stream_and_tail(client: Client, tmp_path: Path) -> None:
    run_id = await _submit(client, {"megabytes": 0.01, "lines": 3}, tmp_path / "r")
    await _finished(client, run_id)
    stdout = await (await client.get(f"/runs/{run_id}/logs", params={"stream": "stdout"})).text()
    assert stdout.startswith("line 0\nline 1\nline 2\n")
    assert stdout.count("x" * 1023) == 10
    stderr = await (await client.get(f"/runs/{run_id}/logs", params={"stream": "stderr"})).text()
    assert "line 0" not in stderr and stderr.count("x" * 1023) == 10
    both = await client.get(f"/runs/{run_id}/logs")
    assert both.content_type == "text/plain"
    assert await both.text() == stdout + stderr
    tail = await client.get(f"/runs/{run_id}/logs", params={"stream": "stdout", "tail": "2"})
    assert await tail.text() == ("x" * 1023 + "\n") * 2


async def test_follow_streams_output_while_the_run_lasts(client: Client, tmp_path: Path) -> None:
    go = tmp_path / "go"
    run_id = await _submit(client, {"megabytes": 0, "lines": 3, "go_file": str(go)}, tmp_path / "r")
    response = await client.get(f"/runs/{run_id}/logs", params={"follow": "1", "stream": "stdout"})
    assert response.status == 200
    seen = b""

    async def first_line_arrived() -> bool:
        nonlocal seen
        seen += await response.content.readany()
        return b"line 0\n" in seen

    await until(first_line_arrived, 60, "the first line while the run is still going")
    run = await (await client.get(f"/runs/{run_id}")).json()
    assert run["state"] == "running"  # it waits for the go file: the line came mid-run
    go.touch()
    seen += await response.content.read()  # the answer ends when the run ends
    assert seen == b"line 0\nline 1\nline 2\n"
    assert (await (await client.get(f"/runs/{run_id}")).json())["state"] == "succeeded"


async def test_logs_are_cut_at_the_cap_with_a_marker(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_client(run_log_max_bytes=4096)
    run_id = await _submit(client, {"megabytes": 0.1}, tmp_path / "r")
    await _finished(client, run_id)
    text = await (await client.get(f"/runs/{run_id}/logs", params={"stream": "stdout"})).text()
    marker = truncation_marker(4096).decode()
    assert text.endswith(marker)
    assert len(text) == 4096 + len(marker)


async def test_a_printed_secret_is_masked_before_it_is_stored(
    client: Client, tmp_path: Path
) -> None:
    secret = "tok-SECRET-77e1"
    run_id = await _submit(
        client, {"megabytes": 0, "secret_env": ["ER_TOKEN"]}, tmp_path / "r",
        data_connections_env_vars={"ER_TOKEN": secret},
    )  # fmt: skip
    await _finished(client, run_id)
    text = await (await client.get(f"/runs/{run_id}/logs")).text()
    assert text.count("the value of ER_TOKEN is **********!") == 2
    assert secret not in text
    for log in logs_dir(tmp_path / "cache", run_id).iterdir():
        assert secret.encode() not in log.read_bytes()


def test_a_secret_split_across_writes_is_masked(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    with path.open("w+b") as file:
        sink = LogSink(file, ["abcdef"], limit=1000)
        for piece in (b"xxab", b"cd", b"efyy abc", b"def", b"!"):
            sink.write(piece)
        sink.close()
    assert path.read_bytes() == b"xx**********yy **********!"


async def test_logs_go_with_the_run_and_unknown_runs_are_404(
    client: Client, tmp_path: Path
) -> None:
    run_id = await _submit(client, {"megabytes": 0, "lines": 1}, tmp_path / "r")
    await _finished(client, run_id)
    kept = tmp_path / "cache" / "runs" / run_id
    assert sorted(path.name for path in kept.iterdir()) == ["stderr.log", "stdout.log"]
    assert (await client.delete(f"/runs/{run_id}")).status == 204
    assert not kept.exists()
    missing = await client.get(f"/runs/{run_id}/logs")
    assert missing.status == 404
