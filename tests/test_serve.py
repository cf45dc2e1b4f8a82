"""``wtrunner serve`` as a real process: it answers on its port and shuts down cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import urllib.request
from pathlib import Path

from tests.helpers import until
from tests.processes import start_server


def _start_server(tmp_path: Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    return start_server(tmp_path, **{"WTRUNNER_SHUTDOWN_TIMEOUT": "5", **env})


def test_serve_answers_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    process, url = _start_server(tmp_path)
    try:
        with urllib.request.urlopen(f"{url}/") as response:
            assert json.load(response) == {"status": "ok"}
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr
    assert b"shutdown complete" in stderr


def test_serve_logs_json_lines_without_probes(tmp_path: Path) -> None:
    process, url = _start_server(tmp_path, WTRUNNER_LOG_FORMAT="json")
    try:
        urllib.request.urlopen(f"{url}/readyz").close()
        urllib.request.urlopen(f"{url}/openapi.json").close()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 0
    records = [json.loads(line) for line in stderr.decode().splitlines() if line.strip()]
    access = [r for r in records if r["logger"] == "aiohttp.access"]
    assert [r["path"] for r in access] == ["/openapi.json"]
    assert access[0]["status"] == 200 and access[0]["request_id"]


def _post_in_thread(url: str, query: str, body: dict[str, object]) -> dict[str, object]:
    """POST / from a worker thread; the outcome lands in the returned dict."""
    outcome: dict[str, object] = {}

    def post() -> None:
        request = urllib.request.Request(
            f"{url}/?{query}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                outcome["status"] = response.status
                outcome["body"] = json.load(response)
        except Exception as exc:  # the connection may be cut on purpose
            outcome["error"] = exc

    thread = threading.Thread(target=post)
    thread.start()
    outcome["thread"] = thread
    return outcome


async def test_sigterm_lets_in_flight_runs_finish(tmp_path: Path, channel: Path) -> None:
    process, url = _start_server(tmp_path, WTRUNNER_CHANNELS=channel.as_uri())
    runs_dir = tmp_path / "cache" / "work"
    try:
        outcome = _post_in_thread(
            url,
            "matchspec=wt-test-slow-workflow",
            {
                "params": {"sleep": {"seconds": 2}},
                "execution_mode": "sequential",
                "mock_io": False,
                "results_url": str(tmp_path / "results"),
            },
        )
        await until(lambda: runs_dir.exists() and any(runs_dir.iterdir()), 30, "a run in flight")
        process.send_signal(signal.SIGTERM)
        outcome["thread"].join(60)  # type: ignore[attr-defined]
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert outcome.get("status") == 200, outcome
    assert outcome["body"]["result"] == {"slept": 2.0}  # type: ignore[index]
    assert process.returncode == 0
    assert b"Traceback" not in stderr


async def test_runs_outliving_the_shutdown_timeout_are_ended(tmp_path: Path, channel: Path) -> None:
    process, url = _start_server(
        tmp_path,
        WTRUNNER_CHANNELS=channel.as_uri(),
        WTRUNNER_SHUTDOWN_TIMEOUT="1",
        WTRUNNER_KILL_GRACE_SECONDS="1",
    )
    pid_file = tmp_path / "grandchild.pid"
    try:
        outcome = _post_in_thread(
            url,
            "matchspec=wt-test-orphan-workflow",
            {
                "params": {"orphan": {"pid_file": str(pid_file), "then": "sleep"}},
                "execution_mode": "sequential",
                "mock_io": False,
                "results_url": str(tmp_path / "results"),
            },
        )
        await until(lambda: pid_file.exists() and pid_file.read_text(), 30, "the grandchild's pid")
        grandchild = int(pid_file.read_text())
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        outcome["thread"].join(60)  # type: ignore[attr-defined]
    finally:
        process.kill()
    assert process.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr
    # the workflow and the grandchild that ignores SIGTERM are gone: no process, no zombie
    await until(lambda: not Path(f"/proc/{grandchild}").exists(), 10, "the grandchild reaped")
