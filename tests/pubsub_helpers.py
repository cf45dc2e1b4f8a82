"""Google's Pub/Sub emulator for the tests, and helpers to publish RunWorkflow commands."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.processes import free_port, wait_until_answering

ACK_DEADLINE_SECONDS = 2  # the emulator accepts short deadlines; the real service's minimum is 10


def emulator_launcher() -> Path | None:
    """The Pub/Sub emulator that the Google Cloud CLI installs, if it is here."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    try:
        root = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    launcher = Path(root) / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
    return launcher if launcher.is_file() else None


def missing(reason: str) -> None:
    """Skip, unless emulators are required (CI): then fail."""
    if os.environ.get("WTRUNNER_REQUIRE_EMULATORS", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (WTRUNNER_REQUIRE_EMULATORS is set)")
    pytest.skip(reason)


@dataclass
class Emulator:
    """One emulator process on 127.0.0.1; ``stop`` and ``start`` again on the same port."""

    launcher: Path
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """``host:port`` for PUBSUB_EMULATOR_HOST."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and wait until it answers."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(self.launcher), "--host=127.0.0.1", f"--port={self.port}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_until_answering(f"http://{self.host}/", self.process, timeout=60)
        except AssertionError as exc:
            raise AssertionError(f"the Pub/Sub emulator: {exc} (see {self.log})") from None

    def stop(self) -> None:
        """Kill it (state is lost, as with the real emulator)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None


def start_emulator(directory: Path) -> Emulator:
    """A running emulator, or skip/fail when it is not installed."""
    launcher = emulator_launcher()
    if launcher is None:
        missing("Google's Pub/Sub emulator (Google Cloud CLI) is not installed")
    assert launcher is not None
    emulator = Emulator(launcher, directory / "pubsub-emulator.log")
    emulator.start()
    return emulator


def run_command(
    matchspec: str | None,
    params: dict[str, Any],
    results: Path | str,
    *,
    run_id: str = "",
    **kwargs: Any,
) -> dict[str, Any]:
    """A RunWorkflow command as a dict (envelope defaults left out, as some senders do)."""
    invoker_kwargs: dict[str, Any] = {
        "workflow_run_id": run_id,
        "results_url": str(results),
        "params": params,
        "mock_io": True,
        **kwargs,
    }
    payload: dict[str, Any] = {"command": "run", "invoker_kwargs": invoker_kwargs}
    if matchspec is not None:
        payload["match_spec"] = matchspec
    return {"schema_version": "v1", "payload": payload}


def push_body(data: bytes | dict[str, Any], message_id: str | None = None) -> dict[str, Any]:
    """The body a Pub/Sub push subscription POSTs for one message."""
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return {
        "message": {
            "data": base64.b64encode(raw).decode(),
            "messageId": message_id or uuid.uuid4().hex[:12],
            "publishTime": "2026-01-01T00:00:00Z",
            "attributes": {},
        },
        "subscription": "projects/test/subscriptions/wtrunner",
    }


@dataclass
class Subscription:
    """A fresh topic and subscription in a fresh project on an emulator."""

    emulator: Emulator
    project: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:10]}")

    @property
    def topic(self) -> str:
        """Full topic path."""
        return f"projects/{self.project}/topics/wtrunner-runs"

    @property
    def path(self) -> str:
        """Full subscription path (WTRUNNER_PUBSUB_SUBSCRIPTION)."""
        return f"projects/{self.project}/subscriptions/wtrunner-runs"

    def _url(self, name: str) -> str:
        return f"http://{self.emulator.host}/v1/{name}"

    async def create(self) -> None:
        """Create the topic and the subscription (short ack deadline)."""
        async with aiohttp.ClientSession() as session:
            response = await session.put(self._url(self.topic), json={})
            assert response.status == 200, await response.text()
            response = await session.put(
                self._url(self.path),
                json={"topic": self.topic, "ackDeadlineSeconds": ACK_DEADLINE_SECONDS},
            )
            assert response.status == 200, await response.text()

    async def publish(self, *commands: dict[str, Any] | bytes) -> list[str]:
        """Publish messages; their message ids."""
        messages = [
            {
                "data": base64.b64encode(
                    c if isinstance(c, bytes) else json.dumps(c).encode()
                ).decode()
            }
            for c in commands
        ]
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                self._url(f"{self.topic}:publish"), json={"messages": messages}
            )
            assert response.status == 200, await response.text()
            ids: list[str] = (await response.json())["messageIds"]
            return ids

    async def pull_now(self) -> list[dict[str, Any]]:
        """Messages deliverable right now (a pull that does not wait)."""
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                self._url(f"{self.path}:pull"),
                json={"maxMessages": 100, "returnImmediately": True},
            )
            assert response.status == 200, await response.text()
            received: list[dict[str, Any]] = (await response.json()).get("receivedMessages", [])
            return received
