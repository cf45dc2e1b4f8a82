"""The local subprocess back end: the workflow runs next to the server, asyncio-native.

Each run gets a work dir under ``<cache>/work`` holding its params file and ``TMPDIR`` (emptied
and reused by a later run: :mod:`wtrunner.workdirs`); its stdout and stderr are copied into the
run's logs (``<cache>/runs/<id>/``, secrets masked, bounded). The process starts in its own
session with a minimal environment, in a cgroup leaf of its own where the server may make one,
with the per-run limits; a timeout or a cancel ends its process group, its leaf and whatever of
it left both; whatever a finished workflow left running is ended in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import yaml
from opentelemetry.trace import Span

from ..cgroups import RunCgroup, RunLimits
from ..contract import RESULTS_ENV_VAR_SETTING
from ..environments import Environment
from ..processes import RUN_ID_VARIABLE, GroupProcess, read_tail, spawn
from ..run_request import LithopsConfig
from ..runlogs import LogSink, OutputPipe, logs_dir
from ..tracing import tracer
from ..workdirs import run_dir_name
from ..workflow_commands import (
    METADATA_TIMEOUT_SECONDS,
    STDERR_TAIL_BYTES,
    base_env,
    check_output,
    no_room,
)
from .base import Completion, Invoker, WorkflowStartError
from .command import contract_env, run_arguments

# after the workflow exits, how long its output may take to reach the logs
PUMP_DRAIN_SECONDS = 2.0


@dataclass
class LocalSubprocessInvoker(Invoker):
    """Runs ``<prefix>/bin/<name> run ...`` as a local asyncio subprocess."""

    _run_dir: Path | None = field(default=None, init=False)
    _idle_dir: Path | None = field(default=None, init=False)  # a kept work dir, until made
    _process: GroupProcess | None = field(default=None, init=False)
    _cgroup: RunCgroup | None = field(default=None, init=False)
    _span: Span | None = field(default=None, init=False)
    _stdout_log: IO[bytes] | None = field(default=None, init=False)
    _stderr_log: IO[bytes] | None = field(default=None, init=False)
    _pipes: list[OutputPipe] = field(default_factory=list, init=False)
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
        """Lease the environment; name the run's work dir and pick a kept one to reuse (made
        as the process starts)."""
        environment = self._require_environment()
        self._leases.enter_context(self.context.environments.lease(environment))
        self._run_dir = self.context.work_dirs.root / run_dir_name(self.request.run_id)
        self._idle_dir = self.context.work_dirs.take()

    def _make_files(self) -> RunCgroup | None:
        """In the worker thread that starts the process: the work dir (TMPDIR, params file,
        Lithops config), the open log files and the run's cgroup leaf (where the server may
        make one), which it returns. On a busy machine creating a file can wait for the disk's
        journal for a long time (over 100 ms seen here during a burst of runs), so none of it
        happens on the event loop. What it made is released by post_run, whatever happens.

        A server disk that cannot take them (full, read-only) is a 503: retrying later may
        work."""
        assert self._run_dir is not None
        idle, self._idle_dir = self._idle_dir, None
        try:
            self.context.work_dirs.make(self._run_dir, idle)
            (self._run_dir / "params.json").write_text(json.dumps(self.request.params))
            if self.request.execution_mode == "async":
                config = self.request.lithops_config or LithopsConfig()
                (self._run_dir / "lithops.yaml").write_text(
                    yaml.safe_dump(config.model_dump(exclude_none=True), sort_keys=False)
                )
            # the run's logs outlive the work dir (they go with the run's record); the files
            # stay open: the stderr tail is read from the open file
            logs = logs_dir(self.context.settings.cache_dir, self.request.run_id)
            logs.mkdir(parents=True, exist_ok=True)
            self._stdout_log = self._leases.enter_context((logs / "stdout.log").open("w+b"))
            self._stderr_log = self._leases.enter_context((logs / "stderr.log").open("w+b"))
        except OSError as exc:
            raise no_room(self.context.settings, exc) from None
        cgroups = self.context.reaper.cgroups
        if cgroups is not None:
            self._cgroup = cgroups.leaf(f"run-{self.request.run_id}")
        return self._cgroup

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
        """Make the run's files and start its process, in one hand-off to a worker thread."""
        assert self._run_dir is not None
        environment = self._require_environment()
        config = ["--config-file", str(self._run_dir / "params.json")]
        argv = [
            str(environment.executable),
            *run_arguments(self.request, self.context.settings, config),
        ]
        pipes = (OutputPipe(), OutputPipe())
        try:
            env = self.child_env()
            self._span = tracer.start_span("workflow-process")
            self._process = await spawn(
                argv, env=env, cwd=self._run_dir,
                stdout=pipes[0].child_fd, stderr=pipes[1].child_fd,
                run_id=self.request.run_id, limits=RunLimits.of(self.context.settings),
                prepare=self._make_files,
            )  # fmt: skip
            self._cgroup = None  # the process's from here on
            self._span.set_attribute("process.pid", self._process.process.pid)
        except BaseException as exc:  # nothing started: let go of what was made for it
            for pipe in pipes:
                pipe.close()
            if isinstance(exc, OSError):
                raise WorkflowStartError(
                    f"The workflow could not be started: {exc.strerror or exc}: {argv[0]}"
                ) from None
            raise
        self._copy_output(pipes)

    def _copy_output(self, pipes: tuple[OutputPipe, OutputPipe]) -> None:
        """Copy the workflow's output into its logs, secrets masked, bounded in size."""
        assert self._stdout_log is not None and self._stderr_log is not None
        secrets = [
            value.get_secret_value() for value in self.request.data_connections_env_vars.values()
        ]
        limit = self.context.settings.run_log_max_bytes
        for pipe, log in zip(pipes, (self._stdout_log, self._stderr_log), strict=True):
            pipe.start(LogSink(log, secrets, limit))
            self._pipes.append(pipe)

    async def _drain_output(self) -> None:
        """Let the pipes deliver what is left; a pipe still held open by leftovers is let go."""
        if not self._pipes:
            return
        pending = [pipe.done for pipe in self._pipes if pipe.done is not None]
        if pending:
            await asyncio.wait(pending, timeout=PUMP_DRAIN_SECONDS)
        for pipe in self._pipes:
            pipe.close()
        self._pipes.clear()

    async def _wait(self) -> Completion:
        assert self._process is not None and self._run_dir is not None
        process = self._process
        grace = self.context.settings.kill_grace_seconds
        try:
            finished = await process.wait(self.request.timeout)
        except asyncio.CancelledError:
            self._ended = True
            await process.end(grace)
            await self._drain_output()
            raise
        if not finished:
            self._ended = True
            await process.end(grace)
        await self._drain_output()
        assert self._stderr_log is not None
        tail = read_tail(self._stderr_log, STDERR_TAIL_BYTES)
        if self._span is not None:
            self._span.set_attribute("process.exit_code", process.returncode or 0)
            self._span.set_attribute("wtrunner.timed_out", not finished)
        return Completion(process.returncode, timed_out=not finished, stderr_tail=tail)

    async def post_run(self) -> None:
        """End leftovers in the background, release the environment, empty the work dir for
        another run (removed instead while the run's leftovers live)."""
        await self._drain_output()
        if self._span is not None:
            self._span.end()
        left_behind = (
            self._process is not None
            and not self._ended
            and self.context.reaper.schedule(self._process)
        )
        if self._cgroup is not None:  # made, but no process was started in it
            self._cgroup.remove()
        self._leases.close()
        work_dirs = self.context.work_dirs
        if self._idle_dir is not None:  # never made: the kept dir is still as it was
            work_dirs.put_back(self._idle_dir)
            self._idle_dir = None
        if self._run_dir is None or self.context.settings.keep_run_dirs:
            return
        if left_behind or self._process is None:
            # (no process: the dir may be half made, or not at all)
            self.context.reaper.remove_later(self._run_dir)  # nobody waits for it
        else:
            work_dirs.give_back(self._run_dir)

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
