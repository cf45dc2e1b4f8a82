"""Test utilities for workflow authors: describe cases, run them through wtrunner.

::

    from wtrunner.testing import Case, CaseRunner

    CASES = [
        Case(name="sample data", params={...}, mock_io=True),
        Case(name="no fixes", params={...}, expected_status=500, raises=True),
        Case(name="bad params", params={"workflow_details": {}}, expected_status=422),
    ]

    @pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
    async def test_workflow(case, tmp_path):
        async with CaseRunner("wt-my-workflow", tmp_path, channels=["./channel"]) as runner:
            response = await runner.run(case)          # through the app, in-process
        assert response["result"]["animals"]

``mode="cli"`` runs the same case through the installed ``wtrunner run`` in a subprocess
instead (from the current directory, which may hold a ``wtrunner/`` directory of its own).

The tests are coroutines: run them with pytest-aiohttp (or pytest-asyncio) and
``asyncio_mode = auto`` in the pytest configuration.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from pydantic import BaseModel, Field

from .contract import ExecutionMode
from .processes import wtrunner_command
from .settings import Settings


class Case(BaseModel):
    """One test case of a workflow: its params and what the run should answer."""

    name: str
    description: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    mock_io: bool = True
    execution_mode: ExecutionMode = "sequential"
    timeout: float | None = None
    expected_status: int = Field(200, description="HTTP status POST / should answer")
    raises: bool = Field(False, description="whether the workflow itself should report an error")


class CaseFailed(AssertionError):
    """A case did not answer as it expected."""


@dataclass
class CaseRunner:
    """Runs Cases against one workflow package, through the app or through the CLI.

    ``work_dir`` receives one results directory per case run. ``channels`` and ``prefixes``
    say where the package comes from; other settings may be given in ``settings``.
    """

    matchspec: str
    work_dir: Path
    channels: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    mode: Literal["app", "cli"] = "app"
    settings: dict[str, Any] = field(default_factory=dict)
    _client: Any = field(default=None, init=False, repr=False)

    def _settings(self) -> Settings:
        overrides: dict[str, Any] = {"cache_dir": self.work_dir / "cache", **self.settings}
        if self.channels:
            overrides["channels"] = tuple(self.channels)
        if self.prefixes:
            overrides["prefixes"] = tuple(self.prefixes)
        return Settings(**overrides)

    async def __aenter__(self) -> CaseRunner:
        if self.mode == "app":
            from aiohttp.test_utils import TestClient, TestServer

            from .app import create_app

            self._client = TestClient(TestServer(create_app(self._settings())))
            await self._client.start_server()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def run(self, case: Case) -> dict[str, Any]:
        """Run ``case``; its response JSON. Raises CaseFailed when the status or the presence
        of an error differs from what the case expects."""
        results = self.work_dir / "results" / f"{uuid.uuid4().hex[:12]}"
        if self.mode == "app":
            status, body = await self._run_in_app(case, results)
        else:
            status, body = await self._run_in_cli(case, results)
        expected = case.expected_status
        # The CLI only tells success (exit 0) from failure (exit 1), not the HTTP status.
        matches = status == expected if self.mode == "app" else (status < 400) == (expected < 400)
        if not matches:
            raise CaseFailed(f"case {case.name!r}: status {status}, expected {expected}: {body}")
        if "error" in body and bool(body["error"]) != case.raises:
            raise CaseFailed(
                f"case {case.name!r}: error {body['error']!r} but raises={case.raises}"
            )
        return body

    async def _run_in_app(self, case: Case, results: Path) -> tuple[int, dict[str, Any]]:
        if self._client is None:
            raise RuntimeError("use `async with CaseRunner(...)` in app mode")
        query: dict[str, str] = {"matchspec": self.matchspec}
        if case.timeout is not None:
            query["timeout"] = str(case.timeout)
        response = await self._client.post(
            "/",
            params=query,
            json={
                "params": case.params,
                "execution_mode": case.execution_mode,
                "mock_io": case.mock_io,
                "results_url": str(results),
            },
        )
        return response.status, await response.json()

    async def _run_in_cli(self, case: Case, results: Path) -> tuple[int, dict[str, Any]]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        params_file = results.with_suffix(".params.json")
        params_file.parent.mkdir(parents=True, exist_ok=True)
        params_file.write_text(json.dumps(case.params))
        argv = [
            *wtrunner_command(), "run", self.matchspec,
            "--params", str(params_file),
            "--results-url", str(results),
            "--execution-mode", case.execution_mode,
            "--mock-io" if case.mock_io else "--no-mock-io",
        ]  # fmt: skip
        if case.timeout is not None:
            argv += ["--timeout", str(case.timeout)]
        env = {**os.environ, **_settings_env(self._settings())}
        process = await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        stdout, stderr = await process.communicate()
        try:
            body = json.loads(stdout)
        except ValueError:
            raise CaseFailed(
                f"case {case.name!r}: `wtrunner run` printed no JSON: {stderr.decode()[-2000:]}"
            ) from None
        return (200 if process.returncode == 0 else 500), body


def _settings_env(settings: Settings) -> dict[str, str]:
    return {
        name: str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in settings.describe(effective=False).items()
        if value not in (None, "") and not name.endswith("OBJECT_STORE_OPTIONS")
    }
