"""The invoker lifecycle every back end follows; concrete invokers only fill in the steps.

An invoker is made for one request and goes IDLE -> RUNNING -> IDLE::

    invoker = SomeInvoker(context, request)
    if not await invoker.is_installed():
        await invoker.install()            # make the workflow runnable (resolve, install)
    await invoker.check()                  # refuse what this back end cannot run
    await invoker.run()                    # pre_run hook, then _start; RUNNING
    completion = await invoker.wait()      # waitable back ends only; post_run hook; IDLE

``run`` while RUNNING and ``wait`` while IDLE raise InvokerStateError. Whatever happens, the
state goes back to IDLE and ``post_run`` runs once. A back end that is not waitable (Cloud
Batch) finishes in ``run``: the work continues elsewhere. ``check_output`` runs a metadata
command of the workflow (``get ...``, ``convert ...``) where the back end can.
"""

from __future__ import annotations

import enum
import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..environments import Environment, Environments
from ..processes import GroupReaper
from ..run_request import RunRequest
from ..settings import Settings
from ..workdirs import WorkDirs, work_root
from .remote_jobs import RemoteJobs


class InvokerState(enum.Enum):
    """Where an invoker is in its lifecycle."""

    IDLE = "idle"
    RUNNING = "running"


class InvokerStateError(RuntimeError):
    """A lifecycle step was called in the wrong state."""


class WorkflowStartError(Exception):
    """The workflow could not be started at all (its outcome is a crash, not a server error)."""


@dataclass(frozen=True)
class InvokerContext:
    """The long-lived services invokers share (owned by the application).

    ``clients`` holds long-lived API clients a back end creates on first use (e.g. the Cloud
    Batch client), keyed by the back end; ``work_dirs`` the local runs' work dirs, as many kept
    for reuse as runs may run at once. ``aclose`` closes both at shutdown.
    """

    settings: Settings
    environments: Environments
    reaper: GroupReaper
    clients: dict[str, Any] = field(default_factory=dict)
    work_dirs: WorkDirs = field(init=False)

    def __post_init__(self) -> None:
        work_dirs = WorkDirs(work_root(self.settings), keep=self.settings.max_concurrent_runs)
        object.__setattr__(self, "work_dirs", work_dirs)  # (frozen)

    async def aclose(self) -> None:
        """Close every client back ends left in ``clients`` (``close()``, sync or async); remove
        the work dirs kept for reuse."""
        await self.work_dirs.close()
        for client in self.clients.values():
            closing = getattr(client, "close", None)
            if closing is not None:
                result = closing()
                if inspect.isawaitable(result):
                    await result
        self.clients.clear()


@dataclass(frozen=True)
class Completion:
    """How a waited run ended: exit code (None if it never exited), timeout, stderr tail."""

    exit_code: int | None
    timed_out: bool
    stderr_tail: str = ""


@dataclass
class Invoker(ABC):
    """Base of every back end; see the module docstring for the lifecycle."""

    waitable: ClassVar[bool] = True

    context: InvokerContext
    request: RunRequest
    state: InvokerState = field(default=InvokerState.IDLE, init=False)
    # The local environment the workflow runs in, when the back end has one.
    environment: Environment | None = field(default=None, init=False)
    # The remote job a non-waitable back end submitted (the Cloud Batch job's or the Cloud Run
    # execution's full resource name).
    job_name: str | None = field(default=None, init=False)

    def is_waitable(self) -> bool:
        """Whether ``wait`` gives the outcome (False: the run continues elsewhere)."""
        return self.waitable

    @classmethod
    def remote_jobs(cls, context: InvokerContext) -> RemoteJobs | None:
        """The status source of the jobs this back end's runs become elsewhere (the reconciler
        follows them, a cancel stops them); None for a back end whose runs stay here."""
        return None

    @abstractmethod
    async def is_installed(self) -> bool:
        """Whether the workflow is ready to run without ``install``."""

    @abstractmethod
    async def install(self) -> None:
        """Make the workflow runnable."""

    async def run(self) -> None:
        """Start the workflow (IDLE -> RUNNING); non-waitable back ends end IDLE again."""
        if self.state is InvokerState.RUNNING:
            raise InvokerStateError(f"{type(self).__name__} is already running")
        self.state = InvokerState.RUNNING
        try:
            await self.pre_run()
            await self._start()
        except BaseException:
            await self._finish()
            raise
        if not self.is_waitable():
            await self._finish()

    async def wait(self) -> Completion:
        """Wait for the run to end (RUNNING -> IDLE)."""
        if self.state is not InvokerState.RUNNING or not self.is_waitable():
            raise InvokerStateError(f"{type(self).__name__} has no run to wait for")
        try:
            return await self._wait()
        finally:
            await self._finish()

    async def _finish(self) -> None:
        try:
            await self.post_run()
        finally:
            self.state = InvokerState.IDLE

    async def check(self) -> None:
        """Hook: refuse a request this back end cannot run (raise WtrunnerError), before the
        run is recorded or anything starts; no side effects."""

    async def pre_run(self) -> None:
        """Hook: before the workflow starts (prepare files, leases)."""

    async def post_run(self) -> None:
        """Hook: after the run ended or failed to start (clean up); runs exactly once."""

    @abstractmethod
    async def _start(self) -> None:
        """Start the workflow."""

    async def _wait(self) -> Completion:
        """Wait for the workflow (waitable back ends)."""
        raise InvokerStateError(f"{type(self).__name__} is not waitable")

    async def check_output(
        self, args: Sequence[str], stdin: bytes | None = None, timeout: float = 60.0
    ) -> bytes:
        """Run ``<workflow> *args`` and return its stdout (back ends that can)."""
        raise NotImplementedError(f"{type(self).__name__} cannot run workflow commands")
