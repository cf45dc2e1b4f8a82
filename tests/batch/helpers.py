"""What the Batch suites share: the deployment they configure and the run they submit."""

from __future__ import annotations

import itertools
import json
from typing import Any

from google.cloud import batch_v1
from google.protobuf.json_format import MessageToDict

from tests.batch.fake import FakeBatch
from tests.helpers import Client

PROJECT = "test-project"
REGION = "europe-west1"
SERVICE_ACCOUNT = "runner@test-project.iam.gserviceaccount.com"
SECRET = "projects/test-project/secrets/er-password/versions/latest"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
IMAGE = "europe-docker.pkg.dev/test-project/workflows/patrols:2.1.0"
# Not in any channel: a Batch run resolves nothing locally, the image holds the workflow.
SPEC = "wt-patrols-workflow>=2.1"
PARAMS = {"workflow_details": {"name": "Patrols, week 1"}, "get_patrols": {"days": 7}}
RESULTS = "gs://results-bucket/runs/run-1"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def batch_settings(fake: FakeBatch, **overrides: Any) -> dict[str, Any]:
    """Settings of a server configured for Cloud Batch against ``fake``."""
    return {
        "batch_endpoint": fake.endpoint,
        "google_cloud_project": PROJECT,
        "cloud_run_region": REGION,
        "batch_service_account": SERVICE_ACCOUNT,
        **overrides,
    }


_RUN_NUMBERS = itertools.count(1)


async def submit(
    client: Client,
    query: dict[str, str | None] | None = None,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> tuple[int, Any, Any]:
    """POST / with CloudBatchInvoker; (status, JSON body, response headers).

    Each call is a run of its own (``run-1-<n>``): the same run id again would name the run
    submitted before, and submit nothing.
    """
    all_query: dict[str, str | None] = {
        "matchspec": SPEC,
        "invoker_type": "CloudBatchInvoker",
        "workflow_run_id": f"run-1-{next(_RUN_NUMBERS)}",
        "docker_image_uri": IMAGE,
    }
    all_query.update(query or {})
    sent = {key: value for key, value in all_query.items() if value is not None}
    payload = {
        "params": PARAMS,
        "execution_mode": "sequential",
        "mock_io": False,
        "results_url": RESULTS,
        **body,
    }
    response = await client.post("/", params=sent, json=payload, headers=headers)
    assert response.content_type == "application/json"
    return response.status, await response.json(), response.headers


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
