"""Tracing (request -> run -> workflow process) and Prometheus metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import Client, ClientFactory, post_run
from tests.processes import free_port, start_server
from tests.pubsub_helpers import push_body, run_command
from wtrunner.settings import Settings
from wtrunner.tracing import (
    build_context_headers,
    build_tracer_provider,
    extract_context,
    gcp_exporter,
    otel_span_formatter,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
ECHO = "wt-test-echo-workflow"


def _in_trace(spans: InMemorySpanExporter, trace_id: str = TRACE_ID) -> dict[str, Any]:
    return {
        span.name: span
        for span in spans.get_finished_spans()
        if format(span.context.trace_id, "032x") == trace_id
    }


def _outcome(run: Any) -> Any:
    """The outcome the run span's ``wtrunner.outcome`` event records."""
    (event,) = [event for event in run.events if event.name == "wtrunner.outcome"]
    return event.attributes["wtrunner.outcome"]


async def test_request_run_and_workflow_share_one_trace(
    client: Client, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    spans.clear()
    status, body = await post_run(
        client,
        ECHO,
        {"echo": {"env": ["TRACEPARENT"]}},
        tmp_path / "r",
        query={"workflow_run_id": "run-42"},
        headers={"traceparent": TRACEPARENT},
    )
    assert status == 200
    in_trace = _in_trace(spans)
    server, run = in_trace["POST /"], in_trace["run-endpoint"]
    # both children of the caller's span (the run's parent is what the caller sent)
    assert format(server.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert format(run.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert run.attributes["workflow_run_id"] == "run-42"
    assert run.attributes["invoker_type"] == "LocalSubprocessInvoker"
    assert _outcome(run) == "ok"
    for child in ("resolve-environment", "workflow-process"):
        assert in_trace[child].parent.span_id == run.context.span_id
    assert in_trace["resolve-environment"].attributes["wtrunner.resolution"] in (
        "installed",
        "solved",
        "hit",
    )

    version, trace_id, parent_id, _ = body["result"]["env"]["TRACEPARENT"].split("-")
    assert (version, trace_id) == ("00", TRACE_ID)
    assert parent_id == format(run.context.span_id, "016x"), "the workflow's parent is the run"


async def test_outcomes_are_recorded_on_the_run_span(
    client: Client, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    cases = [
        (ECHO, {"echo": {"raise": "x"}}, {}, "workflow_error"),
        ("wt-test-crash-workflow", {}, {}, "crash"),
        ("wt-test-slow-workflow", {"sleep": {"seconds": 30}}, {"timeout": "0.3"}, "timeout"),
        (f"{ECHO}==9", {}, {}, "rejected"),
    ]
    for index, (spec, params, query, outcome) in enumerate(cases):
        spans.clear()
        trace_id = f"{index + 1:032x}"
        await post_run(
            client, spec, params, tmp_path / str(index), query=query,
            headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
        )  # fmt: skip
        run = _in_trace(spans, trace_id)["run-endpoint"]
        assert _outcome(run) == outcome
        assert run.status.status_code.name == "ERROR"


async def test_health_probes_and_metrics_are_not_traced(
    client: Client, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    for path in ("/", "/livez", "/readyz", "/metrics"):
        assert (await client.get(path)).status == 200
    assert spans.get_finished_spans() == ()
    await client.get("/openapi.json")
    assert [span.name for span in spans.get_finished_spans()] == ["GET /openapi.json"]


async def test_no_secret_reaches_any_span(
    client: Client, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    canary = "span-canary-5d2c"
    spans.clear()
    for params in ({"echo": {}}, {"echo": {"raise": f"failed with {canary}"}}):
        response = await client.post(
            "/",
            params={"matchspec": ECHO, "token": canary, "api_key": canary},
            json={
                "params": params,
                "execution_mode": "sequential",
                "mock_io": True,
                "results_url": str(tmp_path / "r"),
                "data_connections_env_vars": {"ER_TOKEN": canary},
            },
            headers={"Authorization": f"Bearer {canary}", "traceparent": TRACEPARENT},
        )
        assert response.status in (200, 500)
    command = run_command(
        ECHO, {"echo": {}}, tmp_path / "p", data_connections_env_vars={"X_SECRET": canary}
    )
    await client.post("/run-from-pubsub", json=push_body(command))
    exported = "".join(span.to_json() for span in spans.get_finished_spans())
    assert "run-endpoint" in exported and "run-from-pubsub-endpoint" in exported
    assert canary not in exported


async def test_pubsub_runs_are_traced_under_the_message_context(
    client: Client, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    spans.clear()
    trace_id = "abcdef0123456789abcdef0123456789"
    command = run_command(
        ECHO, {"echo": {}}, tmp_path / "r", run_id="ps-7",
        trace_context={"traceparent": f"00-{trace_id}-1111111111111111-01"},
    )  # fmt: skip
    response = await client.post("/run-from-pubsub", json=push_body(command))
    assert (await response.json())["status"] == "processed"
    run = _in_trace(spans, trace_id)["run-from-pubsub-endpoint"]
    assert format(run.parent.span_id, "016x") == "1111111111111111"
    assert run.attributes["workflow_run_id"] == "ps-7"
    assert _outcome(run) == "ok"


def test_console_exporter_to_file_writes_one_json_object_per_line(tmp_path: Path) -> None:
    settings = Settings(
        otel_exporter="console",
        otel_console_exporter_dst="file",
        otel_console_exporter_file_dst_target_dir=tmp_path / "traces",
    )
    provider = build_tracer_provider(settings)
    tracer = provider.get_tracer("test")
    for name in ("first", "second\nwith a newline"):
        with tracer.start_as_current_span(name):
            pass
    provider.shutdown()
    lines = (tmp_path / "traces" / "otel_traces.jsonl").read_text().splitlines()
    assert [json.loads(line)["name"] for line in lines] == ["first", "second\nwith a newline"]


def test_span_formatter_is_one_line() -> None:
    provider = build_tracer_provider(Settings())
    exporter = InMemorySpanExporter()
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("s", attributes={"k": "a\nb"}):
        pass
    (span,) = exporter.get_finished_spans()
    line = otel_span_formatter(span)
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line)["attributes"] == {"k": "a\nb"}


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"ECOSCOPE_WORKFLOWS_OTEL_EXPORTER": "console"},
         "ECOSCOPE_WORKFLOWS_OTEL_CONSOLE_EXPORTER_FILE_DST_TARGET_DIR"),
        ({"ECOSCOPE_WORKFLOWS_OTEL_EXPORTER": "jaeger"}, "'console' or 'gcp'"),
        ({"ECOSCOPE_WORKFLOWS_OTEL_EXPORTER": "console",
          "ECOSCOPE_WORKFLOWS_OTEL_CONSOLE_EXPORTER_DST": "printer"}, "'stdout' or 'file'"),
    ],
)  # fmt: skip
def test_bad_tracing_settings_stop_start_up(
    tmp_path: Path, env: dict[str, str], words: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wtrunner", "serve", "--port", str(free_port())],
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert words in done.stderr and "Traceback" not in done.stderr


def test_gcp_exporter_is_built_for_the_project_without_credentials() -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.trace_v2 import TraceServiceClient

    client = TraceServiceClient(credentials=AnonymousCredentials())
    exporter = gcp_exporter(Settings(google_cloud_project="conservation-prod"), client=client)
    assert exporter.project_id == "conservation-prod"


def test_a_trace_file_shows_the_whole_chain(tmp_path: Path, channel: Path) -> None:
    traces = tmp_path / "traces"
    server, url = start_server(
        tmp_path,
        WTRUNNER_CHANNELS=channel.as_uri(),
        ECOSCOPE_WORKFLOWS_OTEL_EXPORTER="console",
        ECOSCOPE_WORKFLOWS_OTEL_CONSOLE_EXPORTER_FILE_DST_TARGET_DIR=str(traces),
    )
    try:
        body = {
            "params": {"workflow_details": {"name": "traced"}, "get_fixes": {}},
            "execution_mode": "sequential",
            "mock_io": True,
            "results_url": str(tmp_path / "results"),
        }
        request = urllib.request.Request(
            f"{url}/?matchspec=wt-example-tracks-workflow",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "traceparent": TRACEPARENT},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    finally:
        server.kill()
    records = [json.loads(line) for line in (traces / "otel_traces.jsonl").read_text().splitlines()]
    chain = {r["name"]: r for r in records if r["context"]["trace_id"] == f"0x{TRACE_ID}"}
    assert {"POST /", "run-endpoint", "wt-example-tracks-workflow run"} <= set(chain)
    assert (
        chain["wt-example-tracks-workflow run"]["parent_id"]
        == chain["run-endpoint"]["context"]["span_id"]
    )
    assert chain["wt-example-tracks-workflow run"]["resource"]["attributes"]["service.name"] == (
        "wt-example-tracks-workflow"
    )


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_metrics_parse_and_move_with_runs_of_each_outcome(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_client(kill_grace_seconds=0.3)
    invoker = ("invoker", "BlockingLocalSubprocessInvoker")
    runs = [
        (ECHO, {"echo": {}}, {}, "ok"),
        (ECHO, {"echo": {"raise": "x"}}, {}, "workflow_error"),
        ("wt-test-crash-workflow", {}, {}, "crash"),
        ("wt-test-slow-workflow", {"sleep": {"seconds": 30}}, {"timeout": "0.3"}, "timeout"),
        (ECHO, {"echo": {"message": 5}}, {}, "rejected"),
    ]
    for index, (spec, params, query, outcome) in enumerate(runs):
        before = _samples(await (await client.get("/metrics")).text())
        await post_run(client, spec, params, tmp_path / str(index), query=query)
        after = _samples(await (await client.get("/metrics")).text())
        key = ("wtrunner_runs_finished_total", tuple(sorted([invoker, ("outcome", outcome)])))
        assert after[key] == before.get(key, 0) + 1, outcome

    text = await (await client.get("/metrics")).text()
    samples = _samples(text)
    started = samples[("wtrunner_runs_started_total", (invoker,))]
    assert started == 4  # the rejected run never started
    post = ("wtrunner_http_requests_total", (("method", "POST"), ("route", "/"), ("status", "200")))
    assert samples[post] == 1
    assert not [
        name for name, labels in samples if dict(labels).get("route") in ("/livez", "/metrics")
    ]
    assert samples[("wtrunner_environment_resolutions_total", (("result", "hit"),))] >= 1
    assert samples[("wtrunner_runs_in_flight", ())] == 0
    for _, labels in samples:  # bounded label values: no run ids, no MatchSpecs
        assert not any("wt-test" in value or "==" in value for _, value in labels)


async def test_unknown_routes_are_counted_under_one_label(client: Client) -> None:
    for path in ("/a", "/b/c", "/d?e=f"):
        await client.get(path)
    samples = _samples(await (await client.get("/metrics")).text())
    key = (
        "wtrunner_http_requests_total",
        (("method", "GET"), ("route", "unmatched"), ("status", "404")),
    )
    assert samples[key] == 3


def test_w3c_headers_round_trip() -> None:
    context = extract_context(TRACEPARENT, "vendor=1")
    assert build_context_headers(context) == {"traceparent": TRACEPARENT, "tracestate": "vendor=1"}
    assert "traceparent" not in build_context_headers()
    assert build_context_headers(extract_context("not-a-traceparent")) == {}
