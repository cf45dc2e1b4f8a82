"""The execution a run becomes: the job it runs, its overrides (args, environment, secrets,
task count and timeout), from every front door (POST /, the invoker kwargs of Pub/Sub)."""

from __future__ import annotations

import json
import logging
import re
import sys

import pytest

from tests.cloudrun.fake import FakeCloudRun
from tests.cloudrun.helpers import (
    DIGEST,
    INVOKER,
    JOB,
    TOKEN_SECRET,
    cloud_run_settings,
    container_override,
    plain_env,
    push,
    read_object,
    secret_env,
    split_args,
    submit,
)
from tests.gcp_jobs_helpers import PARAMS, PROJECT, RESULTS, SECRET, SPEC, TRACEPARENT
from tests.helpers import Client, ClientFactory
from wtrunner.environments import parse_matchspec
from wtrunner.invoker_names import INVOKER_NAMES
from wtrunner.invokers import invoker_class
from wtrunner.invokers.cloudrun import CloudRunJobsSandboxInvoker
from wtrunner.keys import RUNS
from wtrunner.run_states import RunState

EXECUTION = re.compile(rf"^{re.escape(JOB)}/executions/wt-runs-[0-9a-f]{{5}}$")


def test_the_name_publishers_send_is_registered() -> None:
    assert INVOKER in INVOKER_NAMES
    assert invoker_class(INVOKER) is CloudRunJobsSandboxInvoker
    assert not CloudRunJobsSandboxInvoker.waitable


async def test_a_run_starts_one_execution_and_is_recorded_submitted(
    client: Client, fake: FakeCloudRun, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    status, body, headers = await submit(
        client,
        query={"workflow_run_id": "Run_2024-06 #7", "timeout": "3599.5"},
        headers={"traceparent": TRACEPARENT, "tracestate": "vendor=value"},
        data_connections_env_vars={"ER_PASSWORD": SECRET, "ER_TOKEN": TOKEN_SECRET},
    )
    assert (status, body) == (202, {"result": {}, "error": None, "trace": None})

    [request] = fake.run_requests
    assert request.name == JOB
    [execution] = fake.executions
    assert EXECUTION.match(execution)
    assert headers["X-Batch-Job"] == execution  # the remote job's name, as for Cloud Batch
    run = await (await client.get(f"/runs/{headers['X-Run-ID']}")).json()
    assert (run["state"], run["job_name"], run["invoker_type"]) == ("submitted", execution, INVOKER)
    record = await client.app[RUNS].get(headers["X-Run-ID"])
    assert record.state is RunState.SUBMITTED

    overrides = request.overrides
    assert overrides.task_count == 1
    assert overrides.timeout.total_seconds() == 3600  # the run's timeout, rounded up
    container = container_override(request)
    assert container.name == ""  # the job's one container
    argv, config = split_args(list(container.args))
    assert argv == [
        *("pixi", "run", "-e", "default"),
        "wt-patrols-workflow",
        *("run", "--config-json", "<config>", "--execution-mode", "sequential", "--no-mock-io"),
    ]
    assert config == PARAMS
    variables = plain_env(container)
    version, trace_id, span_id, flags = variables.pop("TRACEPARENT").split("-")
    # the execution continues the request's trace, from the run's span
    assert (version, trace_id, flags) == ("00", TRACEPARENT.split("-")[1], "01")
    assert re.fullmatch("[0-9a-f]{16}", span_id)
    assert variables == {
        "WT_RESULTS": RESULTS,
        "TRACESTATE": "vendor=value",
        "WTRUNNER_RUN_ID": headers["X-Run-ID"],
    }
    # the data connections are references Cloud Run resolves when the task starts
    assert secret_env(container) == {
        "ER_PASSWORD": ("projects/test-project/secrets/er-password", "latest"),
        "ER_TOKEN": ("projects/test-project/secrets/er-token", "3"),
    }
    # what the execution runs: the job's container, the overrides applied
    started = fake.executions[execution]
    [task_container] = started.template.containers
    assert list(task_container.args) == list(container.args)
    assert plain_env(task_container)["JOB_LEVEL"] == "kept"  # merged with the job's
    assert started.task_count == 1
    assert execution in caplog.text


async def test_deployment_settings_shape_the_execution(
    make_client: ClientFactory, fake: FakeCloudRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WT_FEATURE_FLAGS", "fast-tracks")  # the server's WT_* reach the job
    client = await make_client(
        **cloud_run_settings(
            fake,
            cloud_run_job=JOB,  # the full name: project and region are the job's
            google_cloud_project="",
            cloud_run_region="",
            cloud_run_entrypoint_prefix="micromamba run -p '/opt/wf env'",
            otel_exporter="gcp",
            results_env_var="MY_RESULTS",
        )
    )
    status, _, headers = await submit(client, mock_io=True)
    assert status == 202
    [request] = fake.run_requests
    assert request.name == JOB
    assert "timeout" not in request.overrides  # no timeout asked: the job's own
    container = container_override(request)
    argv, _ = split_args(list(container.args))
    assert argv == [
        *("micromamba", "run", "-p", "/opt/wf env"),
        "wt-patrols-workflow",
        *("run", "--config-json", "<config>", "--execution-mode", "sequential", "--mock-io"),
        *("--otel-exporter", "gcp"),
    ]
    variables = plain_env(container)
    variables.pop("TRACEPARENT", None)
    assert variables == {
        "WT_FEATURE_FLAGS": "fast-tracks",
        "MY_RESULTS": RESULTS,
        "WT_INVOKERS__RESULTS_ENV_VAR": "MY_RESULTS",
        "WTRUNNER_RUN_ID": headers["X-Run-ID"],
    }
    assert secret_env(container) == {}


async def test_plain_data_connection_values_are_refused_and_never_shown(
    client: Client, fake: FakeCloudRun, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    status, body, _ = await submit(
        client,
        data_connections_env_vars={"ER_PASSWORD": SECRET, "ER_TOKEN": "plain-token-canary"},
    )
    assert status == 422
    assert [item["loc"] for item in body["detail"]] == [
        ["body", "data_connections_env_vars", "ER_TOKEN"]
    ]
    assert "Secret Manager" in body["detail"][0]["msg"]
    assert fake.run_requests == []
    assert "plain-token-canary" not in json.dumps(body) + caplog.text


@pytest.mark.parametrize(
    ("query", "body", "loc"),
    [
        ({"docker_image_uri": "europe-docker.pkg.dev/p/r/wt:1"}, {}, ["query", "docker_image_uri"]),
        ({"cpu_milli": "4000"}, {}, ["query", "cpu_milli"]),
        ({"gpu_type": "nvidia-l4"}, {}, ["query", "gpu_type"]),
        ({}, {"results_url": "file:///data/results"}, ["body", "results_url"]),
    ],
)
async def test_what_a_job_cannot_do_is_422_and_starts_nothing(
    client: Client,
    fake: FakeCloudRun,
    query: dict[str, str],
    body: dict[str, str],
    loc: list[str],
) -> None:
    status, answer, _ = await submit(client, query=query, **body)
    assert status == 422, answer
    assert [item["loc"] for item in answer["detail"]] == [loc]
    assert fake.run_requests == []


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"cloud_run_job": ""}, "set WTRUNNER_CLOUD_RUN_JOB"),
        ({"google_cloud_project": " "}, "set GOOGLE_CLOUD_PROJECT"),
        ({"cloud_run_endpoint": "ftp://run.example"}, "WTRUNNER_CLOUD_RUN_ENDPOINT"),
    ],
)
async def test_missing_configuration_is_500_naming_the_variable(
    make_client: ClientFactory, fake: FakeCloudRun, settings: dict[str, str], named: str
) -> None:
    client = await make_client(**cloud_run_settings(fake, **settings))
    status, body, _ = await submit(client)
    assert status == 500
    assert named in body["detail"]
    assert fake.run_requests == []


async def test_without_the_gcp_extra_the_error_names_it(
    client: Client, fake: FakeCloudRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.run_v2", None)
    status, body, _ = await submit(client)
    assert status == 500
    assert "wtrunner[gcp]" in body["detail"]
    assert fake.run_requests == []


async def test_the_same_run_id_starts_one_execution(client: Client, fake: FakeCloudRun) -> None:
    query = {"workflow_run_id": "run-once"}
    first = await submit(client, query=query)
    again = await submit(client, query=query)
    assert first[0] == again[0] == 202
    assert first[2]["X-Batch-Job"] == again[2]["X-Batch-Job"]
    assert len(fake.run_requests) == 1


# --- Pub/Sub: what existing publishers send --------------------------------------------------


async def test_pubsub_push_is_processed_with_the_publishers_job(
    client: Client, fake: FakeCloudRun
) -> None:
    other = f"projects/{PROJECT}/locations/us-east4/jobs/patrols-nightly"
    fake.deploy(other)
    answer = await push(
        client, "m-1", workflow_run_id="pushed-run", job_name="patrols-nightly",
        project_id=PROJECT, region="us-east4", timeout=7200,
    )  # fmt: skip
    assert answer == {"status": "processed"}
    [request] = fake.run_requests
    assert request.name == other
    # the Pub/Sub cap is for runs this process waits for: an execution keeps the limit it asked
    assert request.overrides.timeout.total_seconds() == 7200
    [execution] = fake.executions
    assert execution.startswith(f"{other}/executions/patrols-nightly-")


async def test_a_sandbox_job_gets_the_sandboxs_flags(client: Client, fake: FakeCloudRun) -> None:
    answer = await push(
        client, "m-2", workflow_run_id="sandboxed", results_url="file:///results",
        environment_tar_url="https://storage.example/env.tar?sig=1",
        environment_tar_digest=DIGEST, results_upload_url="https://storage.example/out?sig=2",
        mock_io=True,
    )  # fmt: skip
    assert answer["status"] == "processed", answer
    argv, config = split_args(list(container_override(fake.run_requests[0]).args))
    assert argv == [
        *("--matchspec", str(parse_matchspec(SPEC))),  # as rattler writes it
        *("--workflow-run-id", "sandboxed"),
        *("--environment-tar-url", "https://storage.example/env.tar?sig=1"),
        *("--environment-tar-digest", DIGEST),
        *("--results-url", "file:///results"),
        *("--results-upload-url", "https://storage.example/out?sig=2"),
        *("--config-json", "<config>", "--execution-mode", "sequential", "--mock-io"),
    ]
    assert config == PARAMS

    answer = await push(
        client, "m-3", workflow_run_id="sandboxed-2",
        environment_tar_url="https://storage.example/env.tar", environment_tar_digest=DIGEST,
        skip_results_archive_upload=True,
    )  # fmt: skip
    assert answer["status"] == "processed", answer
    args = list(container_override(fake.run_requests[1]).args)
    assert "--dangerously-skip-results-archive-upload" in args
    assert "--results-upload-url" not in args
    assert args[args.index("--results-url") + 1] == RESULTS


@pytest.mark.parametrize(
    ("kwargs", "located"),
    [
        ({"environment_tar_url": "https://e/env.tar", "results_upload_url": "https://e/o"},
         ["environment_tar_digest"]),
        ({"environment_tar_url": "https://e/env.tar", "environment_tar_digest": DIGEST},
         ["results_upload_url"]),
        ({"environment_tar_url": "https://e/env.tar", "environment_tar_digest": "sha256:12",
          "results_upload_url": "https://e/o"},
         ["environment_tar_digest"]),
        ({"environment_tar_url": "https://e/env.tar", "environment_tar_digest": DIGEST,
          "skip_results_archive_upload": True, "results_url": "file:///results"},
         ["results_url"]),
        ({"environment_tar_url": "https://e/env.tar", "environment_tar_digest": DIGEST,
          "skip_results_archive_upload": True, "results_upload_url": "https://e/o"},
         ["results_upload_url"]),
        ({"results_upload_url": "https://e/o"}, ["results_upload_url"]),
        ({"job_name": "Not_A_Job"}, ["job_name"]),
        ({"job_name": JOB, "region": "us-east4"}, ["region"]),
        ({"docker_image_uri": "europe-docker.pkg.dev/p/r/wt:1", "data_connections_env_vars":
          {"ER_TOKEN": "plain-token-canary"}},
         ["docker_image_uri", "data_connections_env_vars.ER_TOKEN"]),
    ],
)  # fmt: skip
async def test_a_command_the_job_would_refuse_is_an_error_written_as_its_result(
    gcs_client: Client,
    fake: FakeCloudRun,
    gcs: str,
    bucket: str,
    kwargs: dict[str, object],
    located: list[str],
) -> None:
    kwargs.setdefault("results_url", f"gs://{bucket}/runs/refused")
    answer = await push(gcs_client, "m-bad", **kwargs)
    assert answer["status"] == "error"  # acked: retrying cannot help
    for key in located:
        assert f"payload.invoker_kwargs.{key}" in answer["error"]
    assert "plain-token-canary" not in answer["error"]
    assert fake.run_requests == []
    if str(kwargs["results_url"]).startswith("gs://"):
        written = await read_object(gcs, bucket, "runs/refused/result.json")
        assert written == {"result": None, "error": answer["error"], "trace": None}


async def test_a_job_that_does_not_exist_is_an_error_naming_it(
    gcs_client: Client, fake: FakeCloudRun, gcs: str, bucket: str
) -> None:
    answer = await push(
        gcs_client, "m-missing", job_name="no-such-job", results_url=f"gs://{bucket}/runs/nojob"
    )
    assert answer["status"] == "error"
    missing = f"projects/{PROJECT}/locations/europe-west1/jobs/no-such-job"
    assert answer["error"].startswith(f"the Cloud Run Jobs API refused RunJob {missing}:")
    assert "NotFound (NOT_FOUND)" in answer["error"]
    written = await read_object(gcs, bucket, "runs/nojob/result.json")
    assert written["error"] == answer["error"]
    assert len(fake.run_requests) == 1  # not retried
