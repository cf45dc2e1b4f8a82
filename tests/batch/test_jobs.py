"""The job a run becomes: its command, environment, resources, GPUs and labels, from every front
door (POST /, the invoker kwargs of Pub/Sub)."""

from __future__ import annotations

import base64
import json
import logging
import re
import uuid

import pytest

from tests.batch.fake import FakeBatch
from tests.batch.helpers import (
    IMAGE,
    PARENT,
    SERVICE_ACCOUNT,
    batch_settings,
    job_json,
    split_command,
    submit,
)
from tests.gcp_jobs_helpers import PARAMS, RESULTS, SECRET, SPEC, TRACEPARENT
from tests.helpers import Client, ClientFactory
from wtrunner.keys import RUNS, SETTINGS
from wtrunner.run_request import OutcomeKind, RunInput, build_run_request


async def test_typical_run_submits_exactly_this_job(
    client: Client, fake: FakeBatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    status, body, headers = await submit(
        client,
        query={
            "workflow_run_id": "Run_2024-06 #7",
            "timeout": "3599.5",
            "cpu_milli": "4000",
            "memory_mib": "16384",
            "machine_type": "e2-standard-4",
        },
        headers={"traceparent": TRACEPARENT, "tracestate": "vendor=value"},
        data_connections_env_vars={
            "ER_PASSWORD": SECRET,
            "ER_SERVER": "https://er.example.org",
            "ER_TOKEN": "plain-token-canary",
        },
    )
    assert status == 202
    assert body == {"result": {}, "error": None, "trace": None}

    [request] = fake.requests
    assert request.parent == PARENT
    assert re.fullmatch(r"run-2024-06-7-[0-9a-f]{8}", request.job_id)
    assert uuid.UUID(request.request_id).version == 4
    assert headers["X-Batch-Job"] == f"{PARENT}/jobs/{request.job_id}"
    assert list(fake.jobs) == [headers["X-Batch-Job"]]

    job = job_json(request)
    argv, config = split_command(job)
    variables = job["taskGroups"][0]["taskSpec"]["environment"]["variables"]
    # the job continues the request's trace (from the run's span when one is recording)
    version, trace_id, span_id, flags = variables.pop("TRACEPARENT").split("-")
    assert (version, trace_id, flags) == ("00", TRACEPARENT.split("-")[1], "01")
    assert re.fullmatch("[0-9a-f]{16}", span_id)
    assert argv == [
        *("pixi", "run", "-e", "default"),
        "wt-patrols-workflow",
        *("run", "--config-json", "<config>", "--execution-mode", "sequential", "--no-mock-io"),
    ]
    assert config == PARAMS
    labels = {"wtrunner-run-id": "run_2024-06-7", "wtrunner-workflow": "wt-patrols-workflow"}
    assert job == {
        "taskGroups": [
            {
                "taskCount": "1",
                "taskSpec": {
                    "runnables": [{"container": {"imageUri": IMAGE}}],
                    "computeResource": {"cpuMilli": "4000", "memoryMib": "16384"},
                    "maxRunDuration": "3600s",
                    "environment": {
                        "variables": {
                            "WT_RESULTS": RESULTS,
                            "TRACESTATE": "vendor=value",
                            "ER_SERVER": "https://er.example.org",
                            "ER_TOKEN": "plain-token-canary",
                        },
                        "secretVariables": {"ER_PASSWORD": SECRET},
                    },
                },
            }
        ],
        "allocationPolicy": {
            "instances": [{"policy": {"machineType": "e2-standard-4"}}],
            "serviceAccount": {"email": SERVICE_ACCOUNT},
            "labels": labels,
        },
        "labels": labels,
        "logsPolicy": {"destination": "CLOUD_LOGGING"},
    }
    # values are never echoed or logged
    assert "plain-token-canary" not in json.dumps(body) + str(dict(headers))
    assert "plain-token-canary" not in caplog.text
    assert request.job_id in caplog.text


async def test_deployment_settings_shape_the_job(
    make_client: ClientFactory, fake: FakeBatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WT_FEATURE_FLAGS", "fast-tracks")  # the server's WT_* reach the job
    client = await make_client(
        **batch_settings(
            fake,
            batch_service_account="",
            batch_entrypoint_prefix="",
            batch_cpu_milli=2000,
            batch_memory_mib=8192,
            batch_machine_type="n2-highmem-8",
            batch_network="projects/net-host/global/networks/batch",
            batch_subnetwork="projects/net-host/regions/europe-west1/subnetworks/batch-eu",
            batch_no_external_ip=True,
            otel_exporter="gcp",
            results_env_var="MY_RESULTS",
        )
    )
    status, _, _ = await submit(client, query={"workflow_run_id": "nightly"}, mock_io=True)
    assert status == 202
    job = job_json(fake.requests[0])
    argv, _ = split_command(job)
    assert argv == [
        "wt-patrols-workflow",
        *("run", "--config-json", "<config>", "--execution-mode", "sequential", "--mock-io"),
        *("--otel-exporter", "gcp"),
    ]
    task = job["taskGroups"][0]["taskSpec"]
    assert task["computeResource"] == {"cpuMilli": "2000", "memoryMib": "8192"}
    assert "maxRunDuration" not in task  # no timeout asked: Batch's own limit
    # No trace header was sent: the job continues wtrunner's own trace if tracing is on.
    task["environment"]["variables"].pop("TRACEPARENT", None)
    assert task["environment"] == {
        "variables": {
            "WT_FEATURE_FLAGS": "fast-tracks",
            "MY_RESULTS": RESULTS,
            "WT_INVOKERS__RESULTS_ENV_VAR": "MY_RESULTS",
        }
    }
    assert job["allocationPolicy"] == {
        "instances": [{"policy": {"machineType": "n2-highmem-8"}}],
        "network": {
            "networkInterfaces": [
                {
                    "network": "projects/net-host/global/networks/batch",
                    "subnetwork": "projects/net-host/regions/europe-west1/subnetworks/batch-eu",
                    "noExternalIpAddress": True,
                }
            ]
        },
        "labels": {"wtrunner-run-id": "nightly", "wtrunner-workflow": "wt-patrols-workflow"},
    }


async def test_entrypoint_prefix_is_split_into_words(
    make_client: ClientFactory, fake: FakeBatch
) -> None:
    client = await make_client(
        **batch_settings(fake, batch_entrypoint_prefix="micromamba run -p '/opt/wf env'")
    )
    assert (await submit(client))[0] == 202
    argv, _ = split_command(job_json(fake.requests[0]))
    assert argv[:5] == ["micromamba", "run", "-p", "/opt/wf env", "wt-patrols-workflow"]


# --- GPUs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "accelerator"),
    [
        (
            {"gpu_type": "nvidia-tesla-t4", "gpu_count": "4"},
            {"type": "nvidia-tesla-t4", "count": "4"},
        ),
        ({"gpu_type": "nvidia-l4"}, {"type": "nvidia-l4", "count": "1"}),
    ],
)
async def test_gpu_type_and_count_are_honoured(
    client: Client, fake: FakeBatch, query: dict[str, str], accelerator: dict[str, str]
) -> None:
    assert (await submit(client, query={**query, "machine_type": "n1-standard-8"}))[0] == 202
    [instances] = job_json(fake.requests[0])["allocationPolicy"]["instances"]
    assert instances == {
        "policy": {"machineType": "n1-standard-8", "accelerators": [accelerator]},
        "installGpuDrivers": True,
    }


async def test_invoker_kwargs_choose_the_same_options(client: Client, fake: FakeBatch) -> None:
    # What the Pub/Sub front doors hand over: the invoker_kwargs keys, JSON-typed.
    app = client.app
    given = RunInput(
        matchspec=SPEC,
        invoker_type="CloudBatchInvoker",
        workflow_run_id="from-pubsub",
        params=PARAMS,
        execution_mode="sequential",
        mock_io=False,
        results_url=RESULTS,
        invoker_options={
            "docker_image_uri": IMAGE,
            "cpu_milli": "16000",
            "memory_mib": 65536,
            "gpu_type": "nvidia-l4",
            "gpu_count": 2,
            "unrelated": "ignored",
        },
    )
    outcome = await app[RUNS].run(build_run_request(app[SETTINGS], given))
    assert (outcome.kind, outcome.result) == (OutcomeKind.ACCEPTED, {})
    assert outcome.job_name is not None
    assert outcome.job_name.startswith(f"{PARENT}/jobs/from-pubsub-")
    job = job_json(fake.requests[0])
    task = job["taskGroups"][0]["taskSpec"]
    assert task["computeResource"] == {"cpuMilli": "16000", "memoryMib": "65536"}
    assert job["allocationPolicy"]["instances"][0]["policy"]["accelerators"] == [
        {"type": "nvidia-l4", "count": "2"}
    ]


async def test_pubsub_push_treats_the_submission_as_done(client: Client, fake: FakeBatch) -> None:
    command = {
        "schema_version": "v1",
        "payload": {
            "command": "run",
            "match_spec": SPEC,
            "invoker_type": "CloudBatchInvoker",
            "invoker_kwargs": {
                "workflow_run_id": "pushed-run",
                "results_url": RESULTS,
                "params": PARAMS,
                "docker_image_uri": IMAGE,
                "gpu_type": "nvidia-tesla-t4",
                "gpu_count": 2,
            },
        },
    }
    message = {
        "data": base64.b64encode(json.dumps(command).encode()).decode(),
        "messageId": "m-1",
        "publishTime": "2026-01-01T00:00:00Z",
        "attributes": {},
    }
    response = await client.post(
        "/run-from-pubsub", json={"message": message, "subscription": "projects/p/subscriptions/s"}
    )
    assert response.status == 200
    assert (await response.json())["status"] == "processed"
    [request] = fake.requests
    assert request.job_id.startswith("pushed-run-")
    job = job_json(request)
    assert job["allocationPolicy"]["instances"][0]["policy"]["accelerators"] == [
        {"type": "nvidia-tesla-t4", "count": "2"}
    ]
    # the Pub/Sub cap is for runs this process waits for: a job keeps the limit it asked for
    assert "maxRunDuration" not in job["taskGroups"][0]["taskSpec"]
    command["payload"]["invoker_kwargs"].update(workflow_run_id="timed", timeout=7200)
    message["data"] = base64.b64encode(json.dumps(command).encode()).decode()
    message["messageId"] = "m-2"
    response = await client.post("/run-from-pubsub", json={"message": message})
    assert (await response.json())["status"] == "processed"
    assert job_json(fake.requests[-1])["taskGroups"][0]["taskSpec"]["maxRunDuration"] == "7200s"


async def test_the_same_run_id_submits_one_job(client: Client, fake: FakeBatch) -> None:
    query = {"workflow_run_id": "batch-once"}
    first = await submit(client, query=query)
    again = await submit(client, query=query)
    assert first[0] == again[0] == 202
    assert first[2]["X-Batch-Job"] == again[2]["X-Batch-Job"]
    assert first[2]["X-Run-ID"] == again[2]["X-Run-ID"]
    assert len(fake.requests) == 1
    run = await (await client.get(f"/runs/{first[2]['X-Run-ID']}")).json()
    assert (run["state"], run["job_name"]) == ("submitted", first[2]["X-Batch-Job"])
