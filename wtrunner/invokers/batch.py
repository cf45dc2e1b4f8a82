"""The Cloud Batch back end: a run becomes a Batch job and the request is answered at once (202).

Nothing is resolved locally: the image named by ``docker_image_uri`` already holds the
workflow. The job has one task group of one task whose one runnable is that container, run as
``<WTRUNNER_BATCH_ENTRYPOINT_PREFIX words> <package> run --config-json <params> --execution-mode
M --mock-io|--no-mock-io [otel flags]`` (the contract of ``wtrunner/contract.py``; the words go
into the container's ``commands``, so an image's own ENTRYPOINT, if any, still runs first).

Its environment: the server's ``WT_*`` variables, the results variable, ``TRACEPARENT`` /
``TRACESTATE``, and the request's data-connection variables. A data-connection value that is a
Secret Manager reference (``projects/*/secrets/*/versions/*``) goes into ``secret_variables``:
Batch reads the secret on the VM and the value never appears in the job. Any other value is set
as a plain variable, as it must be for the workflow to see it: anyone who can read the job can
read it, so send secrets as references.

The job carries labels naming the run (``wtrunner-run-id``) and the workflow
(``wtrunner-workflow``), on the job and its VMs, so strays can be found; its logs go to Cloud
Logging; ``timeout`` becomes the task's ``max_run_duration``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shlex
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from ..contract import RESULTS_ENV_VAR_SETTING
from ..errors import RequestValidationError
from ..gcp import import_gcp
from ..run_request import RunRequest
from ..settings import Settings
from ..workflow_commands import passthrough_env
from .base import Invoker, InvokerContext
from .batch_client import FEATURE, BatchJobs, BatchNotConfiguredError, batch_client
from .batch_names import label_value, new_job_id
from .batch_options import BatchOptions, parse_batch_options
from .command import contract_env, run_arguments

log = logging.getLogger(__name__)

RUN_ID_LABEL = "wtrunner-run-id"
WORKFLOW_LABEL = "wtrunner-workflow"
SECRET_REFERENCE = re.compile(r"^projects/[^/\s]+/secrets/[^/\s]+/versions/[^/\s]+$")
# Server variables every job gets, as the earlier implementation passed them.
SERVER_PASSTHROUGH = ("WT_*",)
# A job runs on a VM of its own: results written to the pod's disk would be lost.
LOCAL_RESULT_SCHEMES = frozenset({"file"})


@dataclass
class CloudBatchInvoker(Invoker):
    """Submits the run as a Google Cloud Batch job; not waitable (see the module docstring)."""

    waitable = False

    options: BatchOptions | None = field(default=None, init=False)
    parent: str = field(default="", init=False)  # projects/P/locations/R

    @classmethod
    def remote_jobs(cls, context: InvokerContext) -> BatchJobs:
        """The Batch jobs of the application's client (GetJob to follow, DeleteJob to stop)."""
        return BatchJobs(batch_client(context))

    async def is_installed(self) -> bool:
        """Always: the job's image holds the workflow, nothing is installed here."""
        return True

    async def install(self) -> None:
        """Nothing to install locally."""

    async def check(self) -> None:
        """Check the request (422s) and the Batch settings (500 naming the variable)."""
        self.options = check_request(self.request)
        project, region = project_and_region(self.context.settings)
        self.parent = f"projects/{project}/locations/{region}"

    async def pre_run(self) -> None:
        """The checks, if :meth:`check` was not called already."""
        if self.options is None:
            await self.check()

    async def _start(self) -> None:
        assert self.options is not None
        settings = self.context.settings
        batch = import_gcp("google.cloud.batch_v1", FEATURE)
        job_id = new_job_id(self.request.workflow_run_id)
        request = batch.CreateJobRequest(
            parent=self.parent,
            job_id=job_id,
            # One id for every attempt: Batch ignores a retry of a request it has done.
            request_id=str(uuid.uuid4()),
            job=build_job(batch, self.request, settings, self.options),
        )
        job = await batch_client(self.context).create_job(request)
        self.job_name = str(job.name) or f"{self.parent}/jobs/{job_id}"
        log.info(
            "submitted Cloud Batch job %s for run %r", self.job_name, self.request.workflow_run_id
        )


def check_request(request: RunRequest) -> BatchOptions:
    """The run's Batch options, or one 422 naming every problem with the request."""
    problems: list[dict[str, Any]] = []
    if not request.workflow_run_id.strip():
        problems.append(
            {
                "type": "missing",
                "loc": ["workflow_run_id"],
                "msg": "required by CloudBatchInvoker: it names the job",
                "input": request.workflow_run_id,
            }
        )
    if urlsplit(request.results_url).scheme.lower() in LOCAL_RESULT_SCHEMES:
        problems.append(
            {
                "type": "results_url",
                "loc": ["results_url"],
                "msg": "a Cloud Batch job cannot write to this server's disk: "
                "use a URL the job can reach (gs://, s3://, ...)",
                "input": request.results_url,
            }
        )
    options = None
    try:
        options = parse_batch_options(request.invoker_options)
    except RequestValidationError as exc:
        problems += exc.detail
    if problems or options is None:
        raise RequestValidationError(problems)
    return options


def project_and_region(settings: Settings) -> tuple[str, str]:
    """``GOOGLE_CLOUD_PROJECT`` (BatchNotConfiguredError when unset) and ``CLOUD_RUN_REGION``
    (the settings default it to ``us-central1``, as the earlier implementation did)."""
    if not settings.google_cloud_project.strip():
        name = settings.env_var_name("google_cloud_project")
        raise BatchNotConfiguredError(
            f"CloudBatchInvoker is not configured on this server: set {name}"
        )
    return settings.google_cloud_project.strip(), settings.cloud_run_region


def job_command(request: RunRequest, settings: Settings) -> list[str]:
    """The container's command: prefix words, package name, then the contract's ``run ...``."""
    config = ["--config-json", json.dumps(request.params)]
    return [
        *shlex.split(settings.batch_entrypoint_prefix),
        request.package_name,
        *run_arguments(request, settings, config),
    ]


def job_environment(
    request: RunRequest, settings: Settings
) -> tuple[dict[str, str], dict[str, str]]:
    """``(variables, secret_variables)`` of the job (see the module docstring)."""
    variables = passthrough_env(os.environ, SERVER_PASSTHROUGH)
    for name in ("TRACEPARENT", "TRACESTATE", RESULTS_ENV_VAR_SETTING):
        variables.pop(name, None)  # only what this run says
    variables.update(contract_env(request, settings))
    secret_variables: dict[str, str] = {}
    for name, secret in request.data_connections_env_vars.items():
        value = secret.get_secret_value()
        if SECRET_REFERENCE.match(value):
            variables.pop(name, None)
            secret_variables[name] = value
        else:
            variables[name] = value
    return variables, secret_variables


def job_labels(request: RunRequest) -> dict[str, str]:
    """Labels that tie the job (and its VMs) to the run and the workflow."""
    return {
        RUN_ID_LABEL: label_value(request.workflow_run_id),
        WORKFLOW_LABEL: label_value(request.package_name),
    }


def build_job(batch: Any, request: RunRequest, settings: Settings, options: BatchOptions) -> Any:
    """The ``Job`` message for ``request`` (``batch`` is ``google.cloud.batch_v1``).

    Messages are built inside out: proto-plus copies a message when it is assigned to a field.
    """
    variables, secret_variables = job_environment(request, settings)
    container = batch.Runnable.Container(
        image_uri=options.docker_image_uri, commands=job_command(request, settings)
    )
    task = batch.TaskSpec(
        runnables=[batch.Runnable(container=container)],
        compute_resource=batch.ComputeResource(
            cpu_milli=options.cpu_milli or settings.batch_cpu_milli,
            memory_mib=options.memory_mib or settings.batch_memory_mib,
        ),
        environment=batch.Environment(variables=variables, secret_variables=secret_variables),
    )
    if request.timeout is not None:
        task.max_run_duration = timedelta(seconds=max(1, math.ceil(request.timeout)))

    policy = batch.AllocationPolicy.InstancePolicy(
        machine_type=options.machine_type or settings.batch_machine_type
    )
    install_gpu_drivers = False
    if options.gpu_type:
        accelerator = batch.AllocationPolicy.Accelerator(
            type_=options.gpu_type, count=options.gpu_count or 1
        )
        policy.accelerators = [accelerator]
        install_gpu_drivers = True
    labels = job_labels(request)
    allocation = batch.AllocationPolicy(
        instances=[
            batch.AllocationPolicy.InstancePolicyOrTemplate(
                policy=policy, install_gpu_drivers=install_gpu_drivers
            )
        ],
        labels=labels,
    )
    if settings.batch_service_account:
        allocation.service_account = batch.ServiceAccount(email=settings.batch_service_account)
    if settings.batch_network or settings.batch_subnetwork or settings.batch_no_external_ip:
        interface = batch.AllocationPolicy.NetworkInterface(
            network=settings.batch_network,
            subnetwork=settings.batch_subnetwork,
            no_external_ip_address=settings.batch_no_external_ip,
        )
        allocation.network = batch.AllocationPolicy.NetworkPolicy(network_interfaces=[interface])
    return batch.Job(
        task_groups=[batch.TaskGroup(task_count=1, task_spec=task)],
        allocation_policy=allocation,
        labels=labels,
        logs_policy=batch.LogsPolicy(destination=batch.LogsPolicy.Destination.CLOUD_LOGGING),
    )
