"""`wtrunner serve` start-up as a real process: a port in use, a missing gcp extra, and the
warning about CLOUD_RUN_REGION's default, each said in one sentence before anything starts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.processes import start_server
from tests.test_gcp_extra import BLOCK_GOOGLE
from wtrunner.cli import wtrunner_command

SUBSCRIPTION = "projects/demo/subscriptions/runs"


@pytest.fixture
def held_port() -> Iterator[socket.socket]:
    """A real socket listening on 127.0.0.1 for the whole test: its port is in use."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


@pytest.fixture
def fake_pubsub() -> Iterator[socket.socket]:
    """A listening socket standing in for a Pub/Sub emulator: a consumer would connect to it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.setblocking(False)
        yield sock


def _env(tmp_path: Path, **settings: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "WTRUNNER_CACHE_DIR": str(tmp_path / "cache"),
        **settings,
    }


@pytest.mark.parametrize("how", ["--port", "WTRUNNER_PORT", "PORT"])
def test_a_port_in_use_stops_start_up_before_anything_starts(
    tmp_path: Path, held_port: socket.socket, fake_pubsub: socket.socket, how: str
) -> None:
    port = str(held_port.getsockname()[1])
    pubsub_host = f"127.0.0.1:{fake_pubsub.getsockname()[1]}"
    # No channel configured: start-up would build the examples channel in the cache dir, and
    # with a subscription it would start the pull consumer against the fake emulator.
    env = _env(
        tmp_path, WTRUNNER_PUBSUB_SUBSCRIPTION=SUBSCRIPTION, PUBSUB_EMULATOR_HOST=pubsub_host
    )
    argv = [*wtrunner_command(), "serve"]
    if how == "--port":
        argv += ["--port", port]
    else:
        env[how] = port
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("wtrunner: ")
    assert f"port {port} on 127.0.0.1 is already in use" in lines[0]
    assert "--port" in lines[0] and "WTRUNNER_PORT" in lines[0]
    assert not (tmp_path / "cache").exists()  # no examples channel, no run dirs
    with pytest.raises(BlockingIOError):
        fake_pubsub.accept()  # the consumer never connected


def test_a_subscription_without_the_gcp_extra_says_how_to_install_it(
    tmp_path: Path, channel: Path, held_port: socket.socket
) -> None:
    # The held port makes a server that got past the check stop at once instead of serving.
    code = BLOCK_GOOGLE + (
        "from wtrunner.cli import main\n"
        f"sys.exit(main(['serve', '--port', '{held_port.getsockname()[1]}']))\n"
    )
    env = _env(tmp_path, WTRUNNER_PUBSUB_SUBSCRIPTION=SUBSCRIPTION, WTRUNNER_CHANNELS=str(channel))
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert "WTRUNNER_PUBSUB_SUBSCRIPTION is set" in done.stderr
    assert "pip install 'wtrunner[gcp]'" in done.stderr
    assert "is missing" not in done.stderr  # "gcloud is missing" read as the Google Cloud CLI
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1


def _serve_and_stop(tmp_path: Path, channel: Path, settings: dict[str, str]) -> str:
    env: dict[str, Any] = {"WTRUNNER_CHANNELS": channel.as_uri(), **settings}
    process, _ = start_server(tmp_path, **env)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr.decode()
    return stderr.decode()


def test_an_unset_region_is_warned_about_once_when_batch_could_be_used(
    tmp_path: Path, channel: Path
) -> None:
    stderr = _serve_and_stop(tmp_path, channel, {"GOOGLE_CLOUD_PROJECT": "demo-project"})
    warnings = [line for line in stderr.splitlines() if "CLOUD_RUN_REGION" in line]
    assert len(warnings) == 1, stderr
    assert "WARNING" in warnings[0] and "us-central1" in warnings[0]


@pytest.mark.parametrize(
    "settings",
    [
        {"GOOGLE_CLOUD_PROJECT": "demo-project", "CLOUD_RUN_REGION": "europe-west1"},
        {},  # no project: Cloud Batch cannot be used, the region does not matter
    ],
)
def test_no_region_warning_otherwise(
    tmp_path: Path, channel: Path, settings: dict[str, str]
) -> None:
    assert "CLOUD_RUN_REGION" not in _serve_and_stop(tmp_path, channel, settings)
