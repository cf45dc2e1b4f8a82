"""The image's health check script, run for real against ``wtrunner serve``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.container.dockerfile import FINAL, IMAGE_ENV, copies, healthcheck_command
from tests.container.known import LIVEZ
from tests.helpers import REPO
from tests.processes import free_port, wait_until_answering


def _image_path_to_repo(path: str) -> Path:
    for from_stage, sources, dest in copies(FINAL):
        if from_stage is None and dest == path and len(sources) == 1:
            return REPO / sources[0]
    raise AssertionError(f"{path} is not copied from the build context")


def _healthcheck(
    port: int, path: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the image's HEALTHCHECK command, with this interpreter, on the image's environment."""
    command = healthcheck_command(FINAL)
    argv = [sys.executable, str(_image_path_to_repo(command[1])), *command[2:]]
    if path is not None:
        argv[2:] = [path]
    environment = {
        **{k: v for k, v in IMAGE_ENV.items() if k not in {"PATH", "HOME"}},
        "PATH": os.environ["PATH"],
        "PORT": str(port),
        **env,
    }
    return subprocess.run(argv, env=environment, capture_output=True, text=True, timeout=30)


def test_healthcheck_script_checks_the_port_the_server_listens_on(
    tmp_path: Path, channel: Path
) -> None:
    port = free_port()
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PYTHONDONTWRITEBYTECODE": "1",
        # The image's settings, but on loopback only and with this test's cache and channel.
        "WTRUNNER_HOST": "127.0.0.1",
        "PORT": str(port),
        "WTRUNNER_CACHE_DIR": str(tmp_path / "cache"),
        "WTRUNNER_CHANNELS": channel.as_uri(),
        "WTRUNNER_SHUTDOWN_TIMEOUT": "5",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "wtrunner", "serve"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_answering(f"http://127.0.0.1:{port}{LIVEZ}", server)
        # A proxy in the environment must not catch the request to localhost.
        answered = _healthcheck(
            port, HTTP_PROXY="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9"
        )
        assert answered.returncode == 0, answered.stderr
        assert _healthcheck(port, WTRUNNER_PORT=str(port), PORT="1").returncode == 0
        missing = _healthcheck(port, "/no-such-route")
        assert missing.returncode == 1 and "404" in missing.stderr
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()
        server.wait()
        assert server.stderr is not None
        server.stderr.close()
    stopped = _healthcheck(port)
    assert stopped.returncode == 1 and str(port) in stopped.stderr
    invalid = _healthcheck(port, PORT="not-a-port")
    assert invalid.returncode == 1 and "PORT" in invalid.stderr
