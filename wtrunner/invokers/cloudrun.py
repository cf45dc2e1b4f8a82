"""The Cloud Run Jobs back end: a run becomes an execution of an existing Cloud Run job, and the
request is answered at once (202), as with Cloud Batch.

The job (``WTRUNNER_CLOUD_RUN_JOB``, or the run's ``job_name``, ``project_id``, ``region``: see
``cloudrun_options``) is deployed beforehand with its image, resources, service account and
network; a run only overrides, for its one execution (``RunJob`` overrides), the container's
args, adds to its environment, sets one task and the task timeout (the run's ``timeout``).
Nothing is resolved locally. The args are either

- the workflow's command line, as a Cloud Batch job's: ``<WTRUNNER_CLOUD_RUN_ENTRYPOINT_PREFIX
  words> <package> run --config-json <params> --execution-mode M --mock-io|--no-mock-io [otel
  flags]`` (after the image's ENTRYPOINT, if it has one): the job's image holds the workflow; or
- for a sandbox job (the run names ``environment_tar_url``): the sandbox's flags
  ``--matchspec S --workflow-run-id ID --environment-tar-url U --environment-tar-digest D
  --results-url R (--results-upload-url X | --dangerously-skip-results-archive-upload)
  --config-json <params> --execution-mode M --mock-io|--no-mock-io [otel flags]``: the image's
  ENTRYPOINT is the sandbox, which unpacks the environment and runs the workflow in it.

Its environment: the server's ``WT_*`` variables, the results variable, ``TRACEPARENT`` /
``TRACESTATE``, ``WTRUNNER_RUN_ID`` (the run's id: finds the execution again, and strays), and
the data-connection variables, each as a Secret Manager reference (``value_source.
secret_key_ref``): Cloud Run reads the secret when the task starts, and the value never appears
in the execution. A data-connection value that is not a reference
(``projects/*/secrets/*/versions/*``) is refused (422): it would be readable by anyone who can
view the execution.

The run's record keeps the execution's full name (``projects/P/locations/L/jobs/J/executions/E``,
the job's name included) as its ``job_name``; the reconciler follows it with GetExecution and a
cancel cancels it (``CloudRunExecutions``).
"""

from __future__ import annotations

import json
import logging
import math
import shlex
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ..errors import RequestValidationError
from ..gcp import import_gcp
from ..processes import RUN_ID_VARIABLE
from ..run_request import RunRequest
from ..settings import CLOUD_RUN_JOB_NAME, Settings
from .base import Invoker, InvokerContext
from .batch import SECRET_REFERENCE, job_environment
from .cloudrun_client import (
    FEATURE,
    CloudRunExecutions,
    CloudRunNotConfiguredError,
    cloud_run_client,
)
from .cloudrun_options import INVOKER, CloudRunOptions, parse_cloud_run_options
from .command import run_arguments

log = logging.getLogger(__name__)


@dataclass
class CloudRunJobsSandboxInvoker(Invoker):
    """Runs the workflow as an execution of a Cloud Run job; not waitable (see the module
    docstring)."""

    waitable = False

    options: CloudRunOptions | None = field(default=None, init=False)
    job: str = field(default="", init=False)  # projects/P/locations/L/jobs/J

    @classmethod
    def remote_jobs(cls, context: InvokerContext) -> CloudRunExecutions:
        """The executions of the application's Cloud Run client (GetExecution to follow,
        CancelExecution to stop)."""
        return CloudRunExecutions(cloud_run_client(context))

    async def is_installed(self) -> bool:
        """Always: the job's image holds the workflow (or the sandbox fetches it)."""
        return True

    async def install(self) -> None:
        """Nothing to install locally."""

    async def check(self) -> None:
        """Check the request (one 422 naming every problem) and the settings (500 naming the
        variable)."""
        problems: list[dict[str, Any]] = []
        options = None
        try:
            options = parse_cloud_run_options(
                self.request.invoker_options, self.request.results_url
            )
        except RequestValidationError as exc:
            problems += exc.detail
        problems += secret_problems(self.request)
        if problems or options is None:
            raise RequestValidationError(problems)
        self.job = job_resource(self.context.settings, options)
        self.options = options

    async def pre_run(self) -> None:
        """The checks, if :meth:`check` was not called already."""
        if self.options is None:
            await self.check()

    async def _start(self) -> None:
        assert self.options is not None
        run_v2 = import_gcp("google.cloud.run_v2", FEATURE)
        request = build_run_job_request(
            run_v2, self.request, self.context.settings, self.options, self.job
        )
        execution = await cloud_run_client(self.context).run_job(request, self.request.run_id)
        self.job_name = str(execution.name)
        log.info(
            "started Cloud Run execution %s for run %r", self.job_name, self.request.workflow_run_id
        )


def secret_problems(request: RunRequest) -> list[dict[str, Any]]:
    """The data-connection variables whose value is not a Secret Manager reference (never the
    value itself)."""
    return [
        {
            "type": "secret_reference",
            "loc": ["data_connections_env_vars", name],
            "msg": f"{INVOKER} takes data-connection values only as Secret Manager references "
            "(projects/P/secrets/S/versions/V): a plain value would be readable by anyone who "
            "can view the execution",
            "input": name,
        }
        for name, value in request.data_connections_env_vars.items()
        if not SECRET_REFERENCE.match(value.get_secret_value())
    ]


def job_resource(settings: Settings, options: CloudRunOptions) -> str:
    """The full name of the job to execute: the run's ``job_name``, else
    ``WTRUNNER_CLOUD_RUN_JOB`` (CloudRunNotConfiguredError when neither is set); an id is
    qualified by the run's ``project_id`` and ``region``, else ``GOOGLE_CLOUD_PROJECT``
    (CloudRunNotConfiguredError when unset) and ``CLOUD_RUN_REGION``. A full name that
    ``project_id`` or ``region`` contradict is a 422."""
    job = options.job_name or settings.cloud_run_job
    if not job:
        raise CloudRunNotConfiguredError(
            f"{INVOKER} is not configured on this server: set "
            f"{settings.env_var_name('cloud_run_job')} (or send job_name)"
        )
    full = CLOUD_RUN_JOB_NAME.match(job)
    if full is not None:
        contradicted = []
        for key, part, given in (
            ("project_id", "project", options.project_id),
            ("region", "region", options.region),
        ):
            if given is not None and given != full.group(part):
                msg = f"the job {job} is in {part} {full.group(part)}"
                contradicted.append(
                    {"type": "value_error", "loc": [key], "msg": msg, "input": given}
                )
        if contradicted:
            raise RequestValidationError(contradicted)
        return job
    project = options.project_id or settings.google_cloud_project.strip()
    if not project:
        raise CloudRunNotConfiguredError(
            f"{INVOKER} is not configured on this server: set "
            f"{settings.env_var_name('google_cloud_project')} (or send project_id)"
        )
    return f"projects/{project}/locations/{options.region or settings.cloud_run_region}/jobs/{job}"


def execution_args(request: RunRequest, settings: Settings, options: CloudRunOptions) -> list[str]:
    """The container's args for this run (see the module docstring)."""
    workflow = run_arguments(request, settings, ["--config-json", json.dumps(request.params)])
    if not options.sandbox:
        return [*shlex.split(settings.cloud_run_entrypoint_prefix), request.package_name, *workflow]
    assert options.environment_tar_url is not None and options.environment_tar_digest is not None
    upload = (
        ["--dangerously-skip-results-archive-upload"]
        if options.skip_results_archive_upload
        else ["--results-upload-url", str(options.results_upload_url)]
    )
    return [
        *("--matchspec", str(request.spec)),
        *("--workflow-run-id", request.workflow_run_id or request.run_id),
        *("--environment-tar-url", options.environment_tar_url),
        *("--environment-tar-digest", options.environment_tar_digest),
        *("--results-url", request.results_url),
        *upload,
        *workflow[1:],  # the contract's flags without its ``run`` subcommand
    ]


def execution_env(run_v2: Any, request: RunRequest, settings: Settings) -> list[Any]:
    """The ``EnvVar`` messages the execution adds to the job's environment: the values of the
    contract, ``WTRUNNER_RUN_ID``, and the data connections as secret references."""
    variables, secrets = job_environment(request, settings)
    leaked = set(request.data_connections_env_vars) & set(variables)
    if leaked:  # check() refuses these; never send a plain value
        raise RequestValidationError(secret_problems(request))
    variables[RUN_ID_VARIABLE] = request.run_id
    env = [run_v2.EnvVar(name=name, value=value) for name, value in variables.items()]
    for name, reference in secrets.items():
        secret, _, version = reference.rpartition("/versions/")
        selector = run_v2.SecretKeySelector(secret=secret, version=version)
        source = run_v2.EnvVarSource(secret_key_ref=selector)
        env.append(run_v2.EnvVar(name=name, value_source=source))
    return env


def build_run_job_request(
    run_v2: Any, request: RunRequest, settings: Settings, options: CloudRunOptions, job: str
) -> Any:
    """The ``RunJobRequest`` of ``request`` (``run_v2`` is ``google.cloud.run_v2``): one task,
    the container's args and environment, and the run's timeout as the task timeout."""
    container = run_v2.RunJobRequest.Overrides.ContainerOverride(
        args=execution_args(request, settings, options),
        env=execution_env(run_v2, request, settings),
    )
    overrides = run_v2.RunJobRequest.Overrides(container_overrides=[container], task_count=1)
    if request.timeout is not None:
        overrides.timeout = timedelta(seconds=max(1, math.ceil(request.timeout)))
    return run_v2.RunJobRequest(name=job, overrides=overrides)
