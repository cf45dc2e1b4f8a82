"""What the Cloud Run suites share: the deployment they configure and the runs they start (what
they share with the Batch suites is in tests/gcp_jobs_helpers.py)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import aiohttp

from tests.cloudrun.fake import FakeCloudRun
from tests.gcp_jobs_helpers import PARAMS, PROJECT, REGION, RESULTS, SPEC, run_submitter
from tests.helpers import NOWHERE_STORES, Client

JOB = f"projects/{PROJECT}/locations/{REGION}/jobs/wt-runs"
TOKEN_SECRET = "projects/test-project/secrets/er-token/versions/3"
INVOKER = "CloudRunJobsSandboxInvoker"
DIGEST = "sha256:" + "ab12" * 16


def cloud_run_settings(fake: FakeCloudRun, **overrides: Any) -> dict[str, Any]:
    """Settings of a server configured for Cloud Run Jobs against ``fake`` (job ``wt-runs``,
    named by its id in the project and region); cloud results stores point at a closed local
    port unless ``object_store_options`` says otherwise."""
    return {
        "object_store_options": json.dumps(NOWHERE_STORES),
        "cloud_run_endpoint": fake.endpoint,
        "cloud_run_job": "wt-runs",
        "google_cloud_project": PROJECT,
        "cloud_run_region": REGION,
        **overrides,
    }


submit = run_submitter({"invoker_type": INVOKER})
"""POST / with CloudRunJobsSandboxInvoker (see :func:`tests.gcp_jobs_helpers.run_submitter`)."""


async def push(client: Client, message_id: str, **kwargs: Any) -> dict[str, Any]:
    """POST /run-from-pubsub a RunWorkflow command naming CloudRunJobsSandboxInvoker, with
    ``kwargs`` as its invoker_kwargs (results and params by default); the JSON answer of a
    message that is done with (200: acked)."""
    status, answer = await push_answer(client, message_id, **kwargs)
    assert status == 200, answer
    return answer


async def push_answer(client: Client, message_id: str, **kwargs: Any) -> tuple[int, Any]:
    """:func:`push`, whatever the answer: (status, JSON body); not 2xx = redelivered."""
    command = {
        "schema_version": "v1",
        "payload": {
            "command": "run",
            "match_spec": SPEC,
            "invoker_type": INVOKER,
            "invoker_kwargs": {"results_url": RESULTS, "params": PARAMS, **kwargs},
        },
    }
    message = {
        "data": base64.b64encode(json.dumps(command).encode()).decode(),
        "messageId": message_id,
        "publishTime": "2026-01-01T00:00:00Z",
        "attributes": {},
    }
    response = await client.post(
        "/run-from-pubsub", json={"message": message, "subscription": "projects/p/subscriptions/s"}
    )
    return response.status, await response.json()


def container_override(request: Any) -> Any:
    """The one container override of a RunJobRequest."""
    [container] = request.overrides.container_overrides
    return container


def plain_env(container: Any) -> dict[str, str]:
    """The variables of an override (or container) that carry their value."""
    return {v.name: v.value for v in container.env if "value_source" not in v}


def secret_env(container: Any) -> dict[str, tuple[str, str]]:
    """The variables of an override (or container) that are Secret Manager references:
    name -> (secret, version)."""
    return {
        v.name: (v.value_source.secret_key_ref.secret, v.value_source.secret_key_ref.version)
        for v in container.env
        if "value_source" in v
    }


def split_args(args: list[str]) -> tuple[list[str], Any]:
    """``args`` with the ``--config-json`` value replaced by ``<config>``, and that config."""
    argv = list(args)
    at = argv.index("--config-json") + 1
    config = json.loads(argv[at])
    argv[at] = "<config>"
    return argv, config


async def read_object(gcs: str, bucket: str, name: str) -> Any:
    """The JSON document ``name`` in the emulator's ``bucket`` (None when there is none)."""
    url = f"{gcs}/download/storage/v1/b/{bucket}/o/{quote(name, safe='')}?alt=media"
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        if answer.status == 404:
            return None
        assert answer.status == 200, await answer.text()
        return json.loads(await answer.read())
