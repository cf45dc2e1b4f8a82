"""CloudBatchInvoker: runs become Cloud Batch jobs, submitted with the real client library to a
local fake of the Batch API that speaks its gRPC protocol (tests/batch_fake.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import google.auth
import grpc
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import batch_v1
from google.protobuf.json_format import MessageToDict
from hypothesis import given
from hypothesis import strategies as st

from tests.batch_fake import FakeBatch
from tests.conftest import Client, ClientFactory
from wtrunner.invokers import INVOKERS, invoker_class
from wtrunner.invokers import batch_client as batch_client_module
from wtrunner.invokers.batch import CloudBatchInvoker
from wtrunner.invokers.batch_client import (
    BatchClient,
    BatchNotConfiguredError,
    Endpoint,
    SubmitPolicy,
    parse_endpoint,
)
from wtrunner.invokers.batch_names import JOB_ID_PATTERN, job_id, label_value, new_job_id
from wtrunner.keys import RUNS, SETTINGS
from wtrunner.run_request import build_run_request
from wtrunner.settings import Settings, SettingsError, load_settings

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
LABEL_RULE = re.compile(r"^[a-z0-9_-]{0,63}$")


@pytest.fixture(autouse=True)
def _no_credentials_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may look up Google credentials (that would ask a metadata server)."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a test looked up Application Default Credentials")

    monkeypatch.setattr(google.auth, "default", refuse)


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        batch_client_module,
        "SUBMIT_POLICY",
        SubmitPolicy(attempts=4, first_delay=0.01, max_delay=0.02, attempt_timeout=10.0),
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeBatch]:
    """The fake Batch API, listening on 127.0.0.1."""
    server = FakeBatch()
    await server.start()
    yield server
    await server.stop()


def batch_settings(fake: FakeBatch, **overrides: Any) -> dict[str, Any]:
    """Settings of a server configured for Cloud Batch against ``fake``."""
    return {
        "batch_endpoint": fake.endpoint,
        "google_cloud_project": PROJECT,
        "cloud_run_region": REGION,
        "batch_service_account": SERVICE_ACCOUNT,
        **overrides,
    }


@pytest.fixture
async def client(make_client: ClientFactory, fake: FakeBatch) -> Client:
    """The real app, configured for Cloud Batch against the fake."""
    return await make_client(**batch_settings(fake))


async def submit(
    client: Client,
    query: dict[str, str | None] | None = None,
    headers: dict[str, str] | None = None,
    **body: Any,
) -> tuple[int, Any, Any]:
    """POST / with CloudBatchInvoker; (status, JSON body, response headers)."""
    all_query: dict[str, str | None] = {
        "matchspec": SPEC,
        "invoker_type": "CloudBatchInvoker",
        "workflow_run_id": "run-1",
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


# --- the job for a typical run -------------------------------------------------------------


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
    request = build_run_request(
        app[SETTINGS],
        matchspec=SPEC,
        invoker_type="CloudBatchInvoker",
        known_invokers=frozenset(INVOKERS),
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
        locs={
            name: [name]
            for name in ("matchspec", "invoker_type", "results_url", "data_connections_env_vars")
        },
    )
    outcome = await app[RUNS].run(request)
    assert (outcome.status, outcome.kind, outcome.result) == (202, "accepted", {})
    assert outcome.headers["X-Batch-Job"].startswith(f"{PARENT}/jobs/from-pubsub-")
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


# --- job ids -------------------------------------------------------------------------------


@given(st.text(max_size=300))
def test_job_ids_are_valid_for_any_run_id(run_id: str) -> None:
    first, second = new_job_id(run_id), new_job_id(run_id)
    for made in (first, second):
        assert JOB_ID_PATTERN.match(made) and len(made) <= 63, made
        assert made[0].isalpha() and made == made.lower()
    assert first != second  # every submission is a job of its own
    assert LABEL_RULE.match(label_value(run_id))


@given(st.from_regex(r"[a-z][a-z0-9-]{0,40}[a-z0-9]", fullmatch=True))
def test_valid_run_ids_stay_readable(run_id: str) -> None:
    collapsed = re.sub("-+", "-", run_id)
    assert job_id(run_id, "0123abcd") == f"{collapsed}-0123abcd"
    assert label_value(run_id) == run_id


@pytest.mark.parametrize(
    ("run_id", "expected"),
    [
        ("Run_ÄÖÜ 2024/01/01 #1", "run-aou-2024-01-01-1-"),
        ("123-starts-with-a-digit", "wt-123-starts-with-a-digit-"),
        ("---", "wt-"),
        ("😀", "wt-"),
        ("a" * 200, "a" * 54 + "-"),
        ("x" * 53 + "!!!" + "y" * 10, "x" * 53 + "-"),
    ],
)
async def test_hostile_run_ids_make_jobs_batch_accepts(
    client: Client, fake: FakeBatch, run_id: str, expected: str
) -> None:
    status, body, headers = await submit(client, query={"workflow_run_id": run_id})
    assert status == 202, body  # the fake applies Batch's rules for ids and labels
    [request] = fake.requests
    assert request.job_id.startswith(expected) and len(request.job_id) == len(expected) + 8
    assert headers["X-Batch-Job"].endswith(f"/jobs/{request.job_id}")


def test_job_id_suffix_must_be_safe() -> None:
    with pytest.raises(ValueError, match="suffix"):
        job_id("run", "NOT-SAFE")


# --- 422s ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "body", "loc"),
    [
        ({"docker_image_uri": None}, {}, ["docker_image_uri"]),
        ({"docker_image_uri": "  "}, {}, ["docker_image_uri"]),
        ({"workflow_run_id": None}, {}, ["workflow_run_id"]),
        ({"workflow_run_id": "   "}, {}, ["workflow_run_id"]),
        ({"cpu_milli": "0"}, {}, ["query", "cpu_milli"]),
        ({"cpu_milli": "eight"}, {}, ["query", "cpu_milli"]),
        ({"memory_mib": "-1"}, {}, ["query", "memory_mib"]),
        ({"gpu_type": "nvidia-l4", "gpu_count": "0"}, {}, ["query", "gpu_count"]),
        ({"gpu_type": "nvidia-l4", "gpu_count": "1.5"}, {}, ["query", "gpu_count"]),
        ({"gpu_count": "2"}, {}, ["gpu_count"]),
        ({}, {"results_url": "/data/results"}, ["results_url"]),
        ({}, {"results_url": "Memory:///results"}, ["body", "results_url"]),  # for any invoker
    ],
)
async def test_bad_requests_are_422_and_submit_nothing(
    client: Client,
    fake: FakeBatch,
    query: dict[str, str | None],
    body: dict[str, Any],
    loc: list[str],
) -> None:
    status, answer, _ = await submit(client, query=query, **body)
    assert status == 422, answer
    assert [item["loc"] for item in answer["detail"]] == [loc]
    assert fake.requests == []


async def test_every_problem_is_reported_at_once(client: Client, fake: FakeBatch) -> None:
    status, answer, _ = await submit(
        client, query={"docker_image_uri": None, "workflow_run_id": "", "gpu_count": "1"}
    )
    assert status == 422
    locs = sorted(item["loc"][-1] for item in answer["detail"])
    assert locs == ["docker_image_uri", "gpu_count", "workflow_run_id"]
    assert fake.requests == []


# --- API errors and retries ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (grpc.StatusCode.PERMISSION_DENIED, "PermissionDenied (PERMISSION_DENIED)"),
        (grpc.StatusCode.INVALID_ARGUMENT, "InvalidArgument (INVALID_ARGUMENT)"),
        (grpc.StatusCode.NOT_FOUND, "NotFound (NOT_FOUND)"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "ResourceExhausted (RESOURCE_EXHAUSTED)"),
        (grpc.StatusCode.UNAUTHENTICATED, "Unauthenticated (UNAUTHENTICATED)"),
    ],
)
async def test_api_errors_are_502_naming_them_and_not_retried(
    client: Client, fake: FakeBatch, code: grpc.StatusCode, name: str
) -> None:
    fake.fail_next(code, "the API says no", times=5)
    status, body, headers = await submit(client)
    assert status == 502
    assert body["detail"].startswith("the Cloud Batch API refused job run-1-")
    assert body["detail"].endswith(f"{name}: the API says no")
    assert "X-Batch-Job" not in headers
    assert len(fake.requests) == 1


async def test_transient_errors_are_retried_with_the_same_request(
    client: Client, fake: FakeBatch
) -> None:
    fake.fail_next(grpc.StatusCode.UNAVAILABLE, times=2)
    status, body, headers = await submit(client)
    assert (status, body) == (202, {"result": {}, "error": None, "trace": None})
    assert len(fake.requests) == 3
    assert len({(r.job_id, r.request_id) for r in fake.requests}) == 1
    assert list(fake.jobs) == [headers["X-Batch-Job"]]


async def test_a_lost_answer_is_retried_without_a_second_job(
    client: Client, fake: FakeBatch
) -> None:
    fake.fail_next(grpc.StatusCode.UNAVAILABLE, after_creating=True)
    status, _, headers = await submit(client)
    assert status == 202
    assert len(fake.requests) == 2
    assert list(fake.jobs) == [headers["X-Batch-Job"]]  # the retry found the first job


async def test_deadline_exceeded_is_retried(
    client: Client, fake: FakeBatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        batch_client_module, "SUBMIT_POLICY", SubmitPolicy(first_delay=0.01, attempt_timeout=0.3)
    )
    fake.fail_next(grpc.StatusCode.OK, hang=True)  # never answers: the client's deadline passes
    status, _, headers = await submit(client)
    assert status == 202
    assert len(fake.requests) == 2
    assert fake.requests[0].request_id == fake.requests[1].request_id
    assert list(fake.jobs) == [headers["X-Batch-Job"]]


async def test_unavailable_throughout_is_503(client: Client, fake: FakeBatch) -> None:
    fake.fail_next(grpc.StatusCode.UNAVAILABLE, "backend down", times=10)
    status, body, _ = await submit(client)
    assert status == 503
    assert "(tried 4 times)" in body["detail"]
    assert "ServiceUnavailable (UNAVAILABLE): backend down" in body["detail"]
    assert len(fake.requests) == 4
    assert fake.jobs == {}


# --- the event loop, the client's life, configuration --------------------------------------


@pytest.mark.timeout(60)  # a submission that blocked the loop would deadlock with the fake
async def test_the_event_loop_stays_responsive_while_submitting(
    client: Client, fake: FakeBatch
) -> None:
    fake.hold()
    submission = asyncio.create_task(submit(client))
    await fake.wait_for_request()
    for _ in range(20):
        started = time.perf_counter()
        response = await client.get("/")
        assert response.status == 200
        assert time.perf_counter() - started < 0.5
    assert not submission.done()  # the job is still being submitted
    fake.release()
    status, _, _ = await asyncio.wait_for(submission, 10)
    assert status == 202


async def test_one_client_is_kept_and_closed_at_shutdown(client: Client, fake: FakeBatch) -> None:
    context = client.app[RUNS].context
    assert "CloudBatchInvoker" not in context.clients  # nothing Google until a Batch run
    assert (await submit(client))[0] == 202
    kept = context.clients["CloudBatchInvoker"]
    assert isinstance(kept, BatchClient)
    api = await kept.client()
    assert (await submit(client))[0] == 202
    assert context.clients["CloudBatchInvoker"] is kept and await kept.client() is api
    channel = api.transport.grpc_channel

    await client.close()  # application shutdown
    assert context.clients == {}
    assert channel.get_state() is grpc.ChannelConnectivity.SHUTDOWN
    assert len(fake.requests) == 2


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"google_cloud_project": ""}, "set GOOGLE_CLOUD_PROJECT"),
        ({"cloud_run_region": " "}, "set CLOUD_RUN_REGION"),
        (
            {"google_cloud_project": "", "cloud_run_region": ""},
            "set GOOGLE_CLOUD_PROJECT and CLOUD_RUN_REGION",
        ),
        ({"batch_endpoint": "ftp://batch.example"}, "WTRUNNER_BATCH_ENDPOINT"),
    ],
)
async def test_missing_configuration_is_500_naming_the_variable(
    make_client: ClientFactory, fake: FakeBatch, settings: dict[str, str], named: str
) -> None:
    client = await make_client(**batch_settings(fake, **settings))
    status, body, _ = await submit(client)
    assert status == 500
    assert named in body["detail"]
    assert fake.requests == []


async def test_without_the_gcp_extra_the_error_names_it(
    client: Client, fake: FakeBatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.batch_v1", None)
    status, body, _ = await submit(client)
    assert status == 500
    assert "wtrunner[gcp]" in body["detail"]
    assert fake.requests == []


@pytest.mark.parametrize(
    ("value", "endpoint"),
    [
        ("", Endpoint("", plain=False)),
        ("http://127.0.0.1:8790", Endpoint("127.0.0.1:8790", plain=True)),
        ("https://batch.example.org", Endpoint("batch.example.org", plain=False)),
        ("batch.example.org:8443/", Endpoint("batch.example.org:8443", plain=False)),
    ],
)
def test_endpoint_setting(value: str, endpoint: Endpoint) -> None:
    assert parse_endpoint(value) == endpoint


@pytest.mark.parametrize(
    "value", ["http://127.0.0.1", "grpc://h:1", "https://h/v1", "http://", "h:port", "u@h:1"]
)
def test_unusable_endpoint_names_the_setting(value: str) -> None:
    with pytest.raises(BatchNotConfiguredError, match="WTRUNNER_BATCH_ENDPOINT"):
        parse_endpoint(value)


async def test_a_google_endpoint_uses_default_credentials_looked_up_off_the_loop(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[tuple[int, list[str]]] = []

    def default(scopes: list[str]) -> tuple[Any, str]:
        lookups.append((threading.get_ident(), scopes))
        return AnonymousCredentials(), PROJECT  # type: ignore[no-untyped-call]

    monkeypatch.setattr(google.auth, "default", default)
    settings = make_settings(batch_endpoint="https://batch.example.org:8443")
    batch = BatchClient(settings)
    api = await batch.client()  # nothing is contacted until a call is made
    try:
        assert api.api_endpoint == "batch.example.org:8443"
        assert [scopes for _, scopes in lookups] == [
            ["https://www.googleapis.com/auth/cloud-platform"]
        ]
        assert lookups[0][0] != threading.get_ident()  # not on the event loop's thread
    finally:
        await batch.close()


def test_registry_names_the_batch_invoker() -> None:
    assert invoker_class("CloudBatchInvoker") is CloudBatchInvoker
    assert not CloudBatchInvoker.waitable


async def test_a_plain_endpoint_needs_no_credentials(fake: FakeBatch, tmp_path: Path) -> None:
    # The autouse fixture makes any credentials lookup fail: the plain connection makes none.
    batch = BatchClient(Settings(cache_dir=tmp_path, batch_endpoint=fake.endpoint))
    try:
        api = await batch.client()
        assert api.transport.grpc_channel is not None
    finally:
        await batch.close()


def test_batch_settings_defaults_and_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings()
    assert (defaults.batch_cpu_milli, defaults.batch_memory_mib) == (8000, 32768)
    assert defaults.batch_entrypoint_prefix == "pixi run -e default"
    assert not (defaults.batch_machine_type or defaults.batch_network or defaults.batch_subnetwork)
    assert defaults.batch_no_external_ip is False
    for variable, value in {
        "WTRUNNER_BATCH_CPU_MILLI": "2000",
        "WTRUNNER_BATCH_MEMORY_MIB": "4096",
        "WTRUNNER_BATCH_MACHINE_TYPE": "e2-standard-2",
        "WTRUNNER_BATCH_NETWORK": "global/networks/batch",
        "WTRUNNER_BATCH_SUBNETWORK": "regions/europe-west1/subnetworks/batch",
        "WTRUNNER_BATCH_NO_EXTERNAL_IP": "true",
    }.items():
        monkeypatch.setenv(variable, value)
    settings = load_settings()
    assert (settings.batch_cpu_milli, settings.batch_memory_mib) == (2000, 4096)
    assert settings.batch_machine_type == "e2-standard-2"
    assert settings.batch_network == "global/networks/batch"
    assert settings.batch_subnetwork == "regions/europe-west1/subnetworks/batch"
    assert settings.batch_no_external_ip is True


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WTRUNNER_BATCH_CPU_MILLI", "0"),
        ("WTRUNNER_BATCH_MEMORY_MIB", "lots"),
        ("WTRUNNER_BATCH_NO_EXTERNAL_IP", "perhaps"),
        ("WTRUNNER_BATCH_ENTRYPOINT_PREFIX", "pixi run -e 'default"),
    ],
)
def test_invalid_batch_settings_stop_start_up_naming_them(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()
