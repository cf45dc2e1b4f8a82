"""The local subprocess back end: the workflow runs next to the server, asyncio-native.

Each run gets a work dir under ``<cache>/runs`` holding its params file, stdout/stderr logs and
``TMPDIR``; the process starts in its own session with a minimal environment; a timeout ends
the whole process group; whatever a finished workflow left running is ended in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import anyio.to_thread
import yaml
from opentelemetry.trace import Span

from ..contract import RESULTS_ENV_VAR_SETTING
from ..environments import Environment
from ..processes import RUN_ID_VARIABLE, GroupProcess, read_tail, spawn
from ..run_request import LithopsConfig
from ..tracing import tracer
from ..workflow_commands import (
    METADATA_TIMEOUT_SECONDS,
    STDERR_TAIL_BYTES,
    base_env,
    check_output,
    new_work_dir,
    no_room,
)
from .base import Completion, Invoker, WorkflowStartError
from .command import contract_env, run_arguments


@dataclass
class LocalSubprocessInvoker(Invoker):
    """Runs ``<prefix>/bin/<name> run ...`` as a local asyncio subprocess."""

    _run_dir: Path | None = field(default=None, init=False)
    _process: GroupProcess | None = field(default=None, init=False)
    _span: Span | None = field(default=None, init=False)
    _stderr_log: IO[bytes] | None = field(default=None, init=False)
    _ended: bool = field(default=False, init=False)
    _leases: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, init=False)

    async def is_installed(self) -> bool:
        """Whether the environment is resolved and still on disk."""
        return self.environment is not None and self.environment.executable.exists()

    async def install(self) -> None:
        """Resolve (and if needed install) the workflow's environment."""
        self.environment = await self.context.environments.resolve(self.request.spec)

    def _require_environment(self) -> Environment:
        if self.environment is None:
            raise RuntimeError("install() the invoker before running the workflow")
        return self.environment

    async def pre_run(self) -> None:
        """Lease the environment and prepare the work dir: params file, Lithops config, logs.

        A server disk that cannot take them (full, read-only) is a 503: retrying later may work.
        """
        environment = self._require_environment()
        self._leases.enter_context(self.context.environments.lease(environment))
        try:
            self._run_dir = new_work_dir(self.context.settings, "run-")
            (self._run_dir / "tmp").mkdir()
            (self._run_dir / "params.json").write_text(json.dumps(self.request.params))
            if self.request.execution_mode == "async":
                config = self.request.lithops_config or LithopsConfig()
                (self._run_dir / "lithops.yaml").write_text(
                    yaml.safe_dump(config.model_dump(exclude_none=True), sort_keys=False)
                )
            # kept open: the tail stays readable even if the work dir is removed meanwhile
            self._stderr_log = self._leases.enter_context(
                (self._run_dir / "stderr.log").open("w+b")
            )
        except OSError as exc:
            raise no_room(self.context.settings, exc) from None

    def child_env(self) -> dict[str, str]:
        """The workflow's whole environment: activation, pass-through, then what wtrunner sets."""
        assert self._run_dir is not None
        request = self.request
        env = base_env(self.context.settings, self._require_environment())
        for name in ("TRACEPARENT", "TRACESTATE", RESULTS_ENV_VAR_SETTING):
            env.pop(name, None)  # only what this run says
        env.update(contract_env(request, self.context.settings))
        env["TMPDIR"] = str(self._run_dir / "tmp")
        env[RUN_ID_VARIABLE] = request.run_id  # also how a restart finds its orphans
        if request.execution_mode == "async":
            env["LITHOPS_CONFIG_FILE"] = str(self._run_dir / "lithops.yaml")
        trace_dir = self.context.settings.otel_console_exporter_file_dst_target_dir
        if trace_dir is not None:  # a console-to-file workflow appends its spans there too
            env["ECOSCOPE_WORKFLOWS_OTEL_CONSOLE_EXPORTER_FILE_DST_TARGET_DIR"] = str(trace_dir)
        for name, value in request.data_connections_env_vars.items():
            env[name] = value.get_secret_value()
        return env

    async def _start(self) -> None:
        assert self._run_dir is not None
        environment = self._require_environment()
        config = ["--config-file", str(self._run_dir / "params.json")]
        argv = [
            str(environment.executable),
            *run_arguments(self.request, self.context.settings, config),
        ]
        assert self._stderr_log is not None
        with (self._run_dir / "stdout.log").open("wb") as stdout:
            try:
                env = self.child_env()
                self._span = tracer.start_span("workflow-process")
                self._process = await spawn(
                    argv, env=env, cwd=self._run_dir, stdout=stdout, stderr=self._stderr_log
                )
                self._span.set_attribute("process.pid", self._process.process.pid)
            except OSError as exc:
                raise WorkflowStartError(
                    f"The workflow could not be started: {exc.strerror or exc}: {argv[0]}"
                ) from None

    async def _wait(self) -> Completion:
        assert self._process is not None and self._run_dir is not None
        process = self._process
        grace = self.context.settings.kill_grace_seconds
        try:
            finished = await process.wait(self.request.timeout)
        except asyncio.CancelledError:
            self._ended = True
            await process.end(grace)
            raise
        if not finished:
            self._ended = True
            await process.end(grace)
        assert self._stderr_log is not None
        tail = read_tail(self._stderr_log, STDERR_TAIL_BYTES)
        if self._span is not None:
            self._span.set_attribute("process.exit_code", process.returncode or 0)
            self._span.set_attribute("wtrunner.timed_out", not finished)
        return Completion(process.returncode, timed_out=not finished, stderr_tail=tail)

    @property
    def pgid(self) -> int | None:
        """The workflow's process group, once started."""
        return self._process.pgid if self._process is not None else None

    async def post_run(self) -> None:
        """End leftovers in the background, release the environment, remove the work dir."""
        if self._span is not None:
            self._span.end()
        if self._process is not None and not self._ended:
            self.context.reaper.schedule(self._process)
        self._leases.close()
        if self._run_dir is not None and not self.context.settings.keep_run_dirs:
            await anyio.to_thread.run_sync(shutil.rmtree, self._run_dir, True)

    async def check_output(
        self,
        args: Sequence[str],
        stdin: bytes | None = None,
        timeout: float = METADATA_TIMEOUT_SECONDS,
    ) -> bytes:
        """Run ``<workflow> *args`` with ``stdin``; its stdout, bounded in size and time."""
        return await check_output(
            self.context.settings,
            self.context.reaper,
            self._require_environment(),
            args,
            stdin,
            timeout,
        )
