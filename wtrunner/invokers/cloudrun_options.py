"""The per-run options of a Cloud Run Jobs execution, as existing publishers send them.

Publishers of ``CloudRunJobsSandboxInvoker`` put them in Pub/Sub ``invoker_kwargs`` (they reach
the invoker in ``RunRequest.invoker_options``); ``POST /`` has none, so its runs use the
server's job (``WTRUNNER_CLOUD_RUN_JOB``) and run the workflow's command line. The keys:

- ``job_name`` (an id, or ``projects/P/locations/L/jobs/J``), ``project_id``, ``region``: the
  job to execute instead of the server's (``project_id`` and ``region`` default to
  ``GOOGLE_CLOUD_PROJECT`` and ``CLOUD_RUN_REGION``, and qualify an id only);
- ``environment_tar_url``, ``environment_tar_digest`` (``sha256:<64 hex>``),
  ``results_upload_url`` or ``skip_results_archive_upload``: the job is a *sandbox* whose
  container downloads the workflow's packed environment, checks its digest, runs the workflow
  and uploads its results as an archive (required together, as the sandbox requires them).

The image and resources are the job's: the Cloud Batch keys (``docker_image_uri``,
``cpu_milli``, ...) cannot choose them and are refused. This module imports nothing from Google.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from ..errors import RequestValidationError
from ..settings import CLOUD_RUN_JOB_ID, CLOUD_RUN_JOB_NAME
from .batch_options import BATCH_OPTION_KEYS, blank_is_unset

INVOKER = "CloudRunJobsSandboxInvoker"
DIGEST = r"^sha256:[0-9a-fA-F]{64}$"
PROJECT = r"^[^/\s]+$"
REGION = r"^[a-z0-9-]+$"
SANDBOX_KEYS = (
    "environment_tar_url",
    "environment_tar_digest",
    "results_upload_url",
    "skip_results_archive_upload",
)


Text = Annotated[str | None, BeforeValidator(blank_is_unset)]


class CloudRunOptions(BaseModel):
    """What one run may choose about its execution (see the module docstring)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    job_name: Text = None
    project_id: Text = Field(None, pattern=PROJECT)
    region: Text = Field(None, pattern=REGION)
    environment_tar_url: Text = None
    environment_tar_digest: Text = Field(None, pattern=DIGEST)
    results_upload_url: Text = None
    skip_results_archive_upload: bool = False

    @property
    def sandbox(self) -> bool:
        """Whether the job is a sandbox (it unpacks the environment the run names)."""
        return self.environment_tar_url is not None


def _problem(key: str, kind: str, msg: str, given: Any) -> dict[str, Any]:
    return {"type": kind, "loc": [key], "msg": msg, "input": given}


def parse_cloud_run_options(options: Mapping[str, Any], results_url: str) -> CloudRunOptions:
    """Validate ``options`` for an execution whose results go to ``results_url``, or raise one
    422 naming every problem."""
    problems: list[dict[str, Any]] = []
    for key in BATCH_OPTION_KEYS:
        if options.get(key) is not None:
            msg = (
                f"{INVOKER} runs the image and resources of its Cloud Run job: a run cannot "
                f"choose {key}"
            )
            problems.append(_problem(key, "unsupported", msg, options[key]))
    try:
        parsed = CloudRunOptions.model_validate(dict(options))
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_context=False):
            loc = [str(part) for part in error["loc"]]
            problems.append({"type": error["type"], "loc": loc, "msg": error["msg"],
                             "input": error.get("input")})  # fmt: skip
        raise RequestValidationError(problems) from None
    if parsed.job_name is not None and not _is_job(parsed.job_name):
        msg = "not a Cloud Run job's id or full name (projects/P/locations/L/jobs/J)"
        problems.append(_problem("job_name", "value_error", msg, parsed.job_name))
    local_results = urlsplit(results_url).scheme.lower() == "file"
    if parsed.sandbox:
        problems += _sandbox_problems(parsed, options, local_results)
    else:
        for key in SANDBOX_KEYS[1:]:
            if key in options and options[key] not in (None, "", False):
                msg = "only for a sandbox job, which needs environment_tar_url"
                problems.append(_problem(key, "value_error", msg, options[key]))
        if local_results:
            msg = (
                "a Cloud Run execution cannot write to this server's disk: use a URL the job "
                "can reach (gs://, s3://, ...)"
            )
            problems.append(_problem("results_url", "results_url", msg, results_url))
    if problems:
        raise RequestValidationError(problems)
    return parsed


def _sandbox_problems(
    parsed: CloudRunOptions, options: Mapping[str, Any], local_results: bool
) -> list[dict[str, Any]]:
    """What a sandbox job would refuse: it needs the digest, and exactly one of an upload URL
    for the results archive or skipping it (then the results URL must reach off the job)."""
    problems = []
    if parsed.environment_tar_digest is None:
        msg = "required with environment_tar_url: the sandbox checks the download against it"
        problems.append(_problem("environment_tar_digest", "missing", msg, None))
    if parsed.skip_results_archive_upload:
        if parsed.results_upload_url is not None:
            msg = "not with skip_results_archive_upload (no archive is uploaded)"
            problems.append(_problem("results_upload_url", "value_error", msg, None))
        if local_results:
            msg = (
                "with skip_results_archive_upload the results stay where results_url says: "
                "use a URL the job can reach (gs://, s3://, ...)"
            )
            problems.append(_problem("results_url", "results_url", msg, None))
    elif parsed.results_upload_url is None:
        msg = "required unless skip_results_archive_upload: where the sandbox uploads the results"
        problems.append(_problem("results_upload_url", "missing", msg, None))
    return problems


def _is_job(name: str) -> bool:
    match = CLOUD_RUN_JOB_NAME.match(name)
    return bool(CLOUD_RUN_JOB_ID.match(match.group("job") if match else name))
