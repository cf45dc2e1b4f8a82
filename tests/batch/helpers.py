"""What the Batch suites share: the deployment they configure and the run they submit (what
they share with the Cloud Run suites is in tests/gcp_jobs_helpers.py)."""

from __future__ import annotations

import json
from typing import Any

from google.cloud import batch_v1
from google.protobuf.json_format import MessageToDict

from tests.batch.fake import FakeBatch
from tests.gcp_jobs_helpers import PROJECT, REGION, run_submitter

SERVICE_ACCOUNT = "runner@test-project.iam.gserviceaccount.com"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
IMAGE = "europe-docker.pkg.dev/test-project/workflows/patrols:2.1.0"


def batch_settings(fake: FakeBatch, **overrides: Any) -> dict[str, Any]:
    """Settings of a server configured for Cloud Batch against ``fake``."""
    return {
        "batch_endpoint": fake.endpoint,
        "google_cloud_project": PROJECT,
        "cloud_run_region": REGION,
        "batch_service_account": SERVICE_ACCOUNT,
        **overrides,
    }


submit = run_submitter({"invoker_type": "CloudBatchInvoker", "docker_image_uri": IMAGE})
"""POST / with CloudBatchInvoker and IMAGE (see :func:`tests.gcp_jobs_helpers.run_submitter`)."""


def job_json(request: Any) -> dict[str, Any]:
    """The job of a CreateJobRequest as the REST API shows it (camelCase, defaults omitted)."""
    job: dict[str, Any] = MessageToDict(batch_v1.Job.pb(request.job))
    return job


def split_command(job: dict[str, Any]) -> tuple[list[str], Any]:
    """Remove the container's commands from ``job``; (argv with the config replaced, config)."""
    container = job["taskGroups"][0]["taskSpec"]["runnables"][0]["container"]
    argv = container.pop("commands")
    at = argv.index("--config-json") + 1
    config = json.loads(argv[at])
    argv[at] = "<config>"
    return argv, config
