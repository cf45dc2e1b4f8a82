"""A local fake of the Cloud Run Admin API v2 (Jobs.RunJob; Executions.GetExecution,
ListExecutions, CancelExecution) speaking its real gRPC protocol.

An in-process ``grpc.aio`` server on 127.0.0.1 registers the methods of
``google.cloud.run.v2.Jobs`` and ``google.cloud.run.v2.Executions`` with the library's own
(de)serialisers, so the real ``JobsAsyncClient`` and ``ExecutionsAsyncClient`` talk to it exactly
as to Google (wtrunner reaches it with ``WTRUNNER_CLOUD_RUN_ENDPOINT=http://127.0.0.1:PORT``).

- Jobs exist only when a test deploys one (:meth:`FakeCloudRun.deploy`), as a job must exist
  before it can be executed.
- RunJob: like the real API it answers NOT_FOUND for a job that does not exist, checks the
  overrides (INVALID_ARGUMENT: an unknown container, an environment variable that is neither
  a value nor a secret reference, a reserved name, a negative task count), and starts an
  execution whose task template is the job's with the overrides applied (args replaced,
  variables merged, task count and timeout set). Its answer is a ``google.longrunning``
  Operation that is not done, with the new ``Execution`` as metadata.
- GetExecution: the execution as it is now (NOT_FOUND once deleted or never started).
  ListExecutions: a job's executions, newest first, a page at a time. Tests script an
  execution's progress with :meth:`start`, :meth:`complete` and :meth:`delete`.
- CancelExecution: an execution still running becomes *cancelling* (its ``Completed``
  condition reconciling, reason CANCELLING) and :meth:`finish_cancellations` ends it
  cancelled; one that ended already is FAILED_PRECONDITION, as Cloud Run answers.

Tests script failures of any method with :meth:`FakeCloudRun.fail_next` and hold answers with
:meth:`FakeCloudRun.hold` (the machinery of tests/grpc_fake.py); ``run_requests``,
``get_calls``, ``list_calls`` and ``cancel_requests`` record what arrived.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import grpc
from google.cloud import run_v2
from google.longrunning import operations_pb2

from tests.grpc_fake import Context, GrpcFake, now, pending_operation, unary

JOBS = "google.cloud.run.v2.Jobs"
EXECUTIONS = "google.cloud.run.v2.Executions"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
RESERVED_ENV = re.compile(r"^(CLOUD_RUN_(JOB|EXECUTION|TASK_INDEX|TASK_ATTEMPT|TASK_COUNT)|PORT)$")
Condition = run_v2.Condition
State = Condition.State
Reason = Condition.ExecutionReason


def completed(
    state: Any, reason: Any = Reason.EXECUTION_REASON_UNDEFINED, message: str = ""
) -> Any:
    """The ``Completed`` condition Cloud Run reports an execution's end (or not yet) in."""
    return Condition(
        type_="Completed",
        state=state,
        execution_reason=reason,
        message=message,
        last_transition_time=now(),
    )


class FakeCloudRun(GrpcFake):
    """The fake service (see the module docstring); ``jobs`` and ``executions`` by name."""

    default_method = "RunJob"

    def __init__(self) -> None:
        super().__init__()
        self.run_requests: list[Any] = []  # every RunJobRequest received
        self.get_calls: list[str] = []  # the name of every GetExecution received
        self.list_calls: list[str] = []  # the parent of every ListExecutions received
        self.cancel_requests: list[Any] = []  # every CancelExecutionRequest received
        self.jobs: dict[str, Any] = {}
        self.executions: dict[str, Any] = {}  # oldest first

    def handlers(self) -> Sequence[grpc.GenericRpcHandler]:
        """The Jobs and Executions methods the fake serves."""
        operation = operations_pb2.Operation.SerializeToString
        jobs = {"RunJob": unary(self._run_job, run_v2.RunJobRequest, operation)}
        executions = {
            "GetExecution": unary(
                self._get_execution, run_v2.GetExecutionRequest, run_v2.Execution.serialize
            ),
            "ListExecutions": unary(
                self._list_executions,
                run_v2.ListExecutionsRequest,
                run_v2.ListExecutionsResponse.serialize,
            ),
            "CancelExecution": unary(
                self._cancel_execution, run_v2.CancelExecutionRequest, operation
            ),
        }
        return [
            grpc.method_handlers_generic_handler(JOBS, jobs),
            grpc.method_handlers_generic_handler(EXECUTIONS, executions),
        ]

    # --- scripting ---------------------------------------------------------------------------

    def deploy(
        self,
        name: str,
        *,
        image: str = "europe-docker.pkg.dev/p/workflows/runner:1",
        args: Iterable[str] = (),
        env: dict[str, str] | None = None,
        task_count: int = 1,
        timeout: dt.timedelta = dt.timedelta(minutes=10),
        containers: Iterable[str] = ("runner",),
    ) -> Any:
        """Deploy job ``name`` (``projects/P/locations/L/jobs/J``): its template, one or more
        containers (the first runs ``image``), as ``gcloud run jobs deploy`` would; the Job."""
        variables = [run_v2.EnvVar(name=k, value=v) for k, v in (env or {}).items()]
        built = [
            run_v2.Container(
                name=container,
                image=image,
                args=list(args) if index == 0 else [],
                env=variables if index == 0 else [],
            )
            for index, container in enumerate(containers)
        ]
        job = run_v2.Job(
            name=name,
            uid=uuid.uuid4().hex,
            template=run_v2.ExecutionTemplate(
                task_count=task_count,
                template=run_v2.TaskTemplate(
                    containers=built, timeout=timeout, max_retries=0,
                    service_account="runner@p.iam.gserviceaccount.com",
                ),
            ),
        )  # fmt: skip
        self.jobs[name] = job
        return job

    def start_tasks(self, name: str) -> Any:
        """Execution ``name`` starts its task, as Cloud Run would; the execution."""

        def started(execution: Any) -> None:
            execution.start_time = now()
            execution.running_count = 1

        return self._update(name, started, completed(State.CONDITION_RECONCILING))

    def complete(
        self,
        name: str,
        state: Any,
        reason: Any = Reason.EXECUTION_REASON_UNDEFINED,
        message: str = "",
    ) -> Any:
        """End execution ``name``: its ``Completed`` condition in ``state`` (with ``reason`` and
        ``message``), its counts and completion time set; the execution."""

        def end(execution: Any) -> None:
            execution.running_count = 0
            execution.completion_time = now()
            if state == State.CONDITION_SUCCEEDED:
                execution.succeeded_count = execution.task_count
            elif reason == Reason.CANCELLED:
                execution.cancelled_count = execution.task_count
            else:
                execution.failed_count = execution.task_count

        return self._update(name, end, completed(state, reason, message))

    def delete(self, name: str) -> None:
        """Delete execution ``name`` (GetExecution answers NOT_FOUND from now on)."""
        del self.executions[name]

    def finish_cancellations(self) -> list[str]:
        """End every cancelling execution cancelled (Cloud Run is done); their names."""
        cancelling = [
            name for name, execution in self.executions.items()
            if _completed_of(execution).execution_reason == Reason.CANCELLING
        ]  # fmt: skip
        for name in cancelling:
            self.complete(name, State.CONDITION_FAILED, Reason.CANCELLED, "cancelled")
        return cancelling

    def _update(self, name: str, change: Callable[[Any], object], condition: Any) -> Any:
        execution = self.executions[name]
        change(execution)
        others = [c for c in execution.conditions if c.type_ != "Completed"]
        execution.conditions = [*others, condition]
        execution.update_time = now()
        return execution

    # --- the API -----------------------------------------------------------------------------

    async def _run_job(self, request: Any, context: Context) -> Any:
        self.run_requests.append(request)
        failure = await self._enter("RunJob", context)
        job = self.jobs.get(request.name)
        if job is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Job {request.name} not found")
        problems = invalid_overrides(job, request.overrides)
        if problems:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "; ".join(problems))
        execution = self._execution_of(job, request.overrides)
        self.executions[execution.name] = execution
        await self._lose_answer(failure, context)  # started, but the answer is lost
        return operation(execution)

    def _execution_of(self, job: Any, overrides: Any) -> Any:
        """A new execution of ``job``: its task template with ``overrides`` applied."""
        job_id = job.name.rsplit("/", 1)[1]
        template = run_v2.TaskTemplate(job.template.template)
        containers = list(template.containers)
        for override in overrides.container_overrides:
            index = _container_index(containers, override.name)
            assert index is not None
            container = containers[index]
            if override.args or override.clear_args:
                container.args = list(override.args)
            merged = {variable.name: variable for variable in container.env}
            merged.update({variable.name: variable for variable in override.env})
            container.env = list(merged.values())
            containers[index] = container
        template.containers = containers
        if "timeout" in overrides:
            template.timeout = overrides.timeout
        task_count = overrides.task_count or job.template.task_count
        return run_v2.Execution(
            name=f"{job.name}/executions/{job_id}-{secrets.token_hex(3)[:5]}",
            uid=str(uuid.uuid4()),
            job=job_id,
            task_count=task_count,
            parallelism=task_count,
            template=template,
            create_time=now(),
            update_time=now(),
            conditions=[completed(State.CONDITION_PENDING)],
        )

    async def _get_execution(self, request: Any, context: Context) -> Any:
        self.get_calls.append(request.name)
        failure = await self._enter("GetExecution", context)
        execution = self.executions.get(request.name)
        if execution is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Execution {request.name} not found")
        await self._lose_answer(failure, context)
        return execution

    async def _list_executions(self, request: Any, context: Context) -> Any:
        self.list_calls.append(request.parent)
        failure = await self._enter("ListExecutions", context)
        if request.parent not in self.jobs:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Job {request.parent} not found")
        await self._lose_answer(failure, context)
        newest_first = [
            execution for name, execution in reversed(self.executions.items())
            if name.startswith(f"{request.parent}/executions/")
        ]  # fmt: skip
        start = int(request.page_token or 0)
        size = request.page_size or 100
        page = newest_first[start : start + size]
        token = str(start + size) if start + size < len(newest_first) else ""
        return run_v2.ListExecutionsResponse(executions=page, next_page_token=token)

    async def _cancel_execution(self, request: Any, context: Context) -> Any:
        self.cancel_requests.append(request)
        failure = await self._enter("CancelExecution", context)
        execution = self.executions.get(request.name)
        if execution is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Execution {request.name} not found")
        condition = _completed_of(execution)
        if condition.state in (State.CONDITION_SUCCEEDED, State.CONDITION_FAILED):
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, f"Execution {request.name} has completed"
            )
        self._update(
            request.name, lambda e: None, completed(State.CONDITION_RECONCILING, Reason.CANCELLING)
        )
        await self._lose_answer(failure, context)  # cancelling, but the answer is lost
        return operation(execution)


def operation(execution: Any) -> operations_pb2.Operation:
    """The long-running operation Cloud Run answers with: not done, the execution its
    metadata."""
    parent = execution.name.split("/jobs/", 1)[0]
    return pending_operation(f"{parent}/operations/{uuid.uuid4()}", run_v2.Execution.pb(execution))


def invalid_overrides(job: Any, overrides: Any) -> list[str]:
    """What the real API would refuse in RunJob ``overrides`` of ``job`` (a subset)."""
    problems = []
    containers = list(job.template.template.containers)
    if overrides.task_count < 0:
        problems.append("task_count must not be negative")
    if "timeout" in overrides and overrides.timeout.total_seconds() <= 0:
        problems.append("timeout must be positive")
    for override in overrides.container_overrides:
        if _container_index(containers, override.name) is None:
            problems.append(f"no container {override.name!r} to override")
        for variable in override.env:
            if not ENV_NAME.match(variable.name) or RESERVED_ENV.match(variable.name):
                problems.append(f"environment variable {variable.name!r} is invalid or reserved")
            has_source = "value_source" in variable
            if has_source == bool(variable.value):
                problems.append(f"{variable.name} needs exactly one of value and value_source")
            if has_source:
                reference = variable.value_source.secret_key_ref
                if not reference.secret or not reference.version:
                    problems.append(f"{variable.name}: a secret reference needs secret and version")
    return problems


def _container_index(containers: list[Any], name: str) -> int | None:
    """Which container an override names: by name, or the only one when it names none."""
    if not name:
        return 0 if len(containers) == 1 else None
    return next((i for i, c in enumerate(containers) if c.name == name), None)


def _completed_of(execution: Any) -> Any:
    return next(c for c in execution.conditions if c.type_ == "Completed")
