"""``wtrunner serve`` as a real process: it answers on its port and shuts down cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.processes import free_port, wait_until_answering


def _start_server(tmp_path: Path, **env: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "WTRUNNER_CACHE_DIR": str(tmp_path / "cache"),
        "WTRUNNER_SHUTDOWN_TIMEOUT": "5",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "wtrunner", "serve", "--port", str(port)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_until_answering(f"http://127.0.0.1:{port}/livez", process)
    return process, port


def test_serve_answers_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    process, port = _start_server(tmp_path)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as response:
            assert json.load(response) == {"status": "ok"}
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 0, stderr.decode()
    assert b"Traceback" not in stderr
    assert b"shutdown complete" in stderr


def test_serve_logs_json_lines_without_probes(tmp_path: Path) -> None:
    process, port = _start_server(tmp_path, WTRUNNER_LOG_FORMAT="json")
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz").close()
        urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json").close()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 0
    records = [json.loads(line) for line in stderr.decode().splitlines() if line.strip()]
    access = [r for r in records if r["logger"] == "aiohttp.access"]
    assert [r["path"] for r in access] == ["/openapi.json"]
    assert access[0]["status"] == 200 and access[0]["request_id"]
