"""Existing clients keep working, and nothing they send is silently ignored (issue: clean core).

Each test is one behaviour of the earlier service, of its own test suite's request shapes, or of
the tests its workflow compiler generates into released workflows.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.helpers import Client, post_run
from tests.pubsub_helpers import push_body, run_command
from wtrunner.run_request import TIMEOUT_MESSAGE

ECHO = "wt-test-echo-workflow"
SLOW = "wt-test-slow-workflow"
ASYNC_LOCAL = "AsyncLocalSubprocessInvoker"
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


def _spans_named(spans: InMemorySpanExporter, name: str, trace_id: str) -> list[Any]:
    return [
        span
        for span in spans.get_finished_spans()
        if span.name == name and format(span.context.trace_id, "032x") == trace_id
    ]


# --- B. no silently ignored input ------------------------------------------------------------


async def test_timeout_in_the_body_ends_the_run(client: Client, tmp_path: Path) -> None:
    status, body = await post_run(
        client, SLOW, {"sleep": {"seconds": 30}}, tmp_path / "r", timeout=0.5
    )
    assert status == 500
    assert body["error"] == TIMEOUT_MESSAGE


async def test_body_and_query_run_options_conflict_with_a_422(
    client: Client, tmp_path: Path
) -> None:
    status, body = await post_run(
        client, ECHO, {"echo": {}}, tmp_path / "r",
        query={"timeout": "5", "workflow_run_id": "a", "invoker_type": ASYNC_LOCAL},
        timeout=6, workflow_run_id="b", invoker_type="BlockingLocalSubprocessInvoker",
    )  # fmt: skip
    assert status == 422
    locations = sorted(item["loc"] for item in body["detail"])
    assert locations == [
        ["query", "invoker_type"],
        ["query", "timeout"],
        ["query", "workflow_run_id"],
    ]


async def test_the_same_value_in_both_places_is_fine(client: Client, tmp_path: Path) -> None:
    status, _ = await post_run(
        client, ECHO, {"echo": {}}, tmp_path / "r", query={"timeout": "30"}, timeout=30
    )
    assert status == 200


async def test_invoker_type_in_the_body_is_checked_there(client: Client, tmp_path: Path) -> None:
    status, body = await post_run(client, ECHO, {"echo": {}}, tmp_path / "r", invoker_type="Nope")
    assert status == 422
    assert [item["loc"] for item in body["detail"]] == [["body", "invoker_type"]]


async def test_body_run_options_reach_the_run(
    client: Client, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    spans.clear()
    status, _ = await post_run(
        client, ECHO, {"echo": {}}, tmp_path / "r",
        headers={"traceparent": TRACEPARENT}, workflow_run_id="from-body",
        invoker_type="AsyncLocalSubprocessInvoker",
    )  # fmt: skip
    assert status == 200
    (run,) = _spans_named(spans, "run-endpoint", CALLER_TRACE)
    assert run.attributes["workflow_run_id"] == "from-body"


async def test_docker_image_uri_in_the_body_reaches_the_batch_options(
    client: Client, tmp_path: Path
) -> None:
    batch = {"invoker_type": "CloudBatchInvoker", "workflow_run_id": "b-1"}
    image = "europe-docker.pkg.dev/p/r/wt:1"
    # Without an image anywhere, the Batch checks name it; with the body's, only the (local,
    # unusable for Batch) results URL is left to complain about.
    status, body = await post_run(client, ECHO, {}, tmp_path / "r", query=batch)
    assert status == 422
    assert ["query", "docker_image_uri"] in [item["loc"] for item in body["detail"]]
    status, body = await post_run(
        client, ECHO, {}, tmp_path / "r", query=batch, docker_image_uri=image
    )
    assert status == 422
    assert [item["loc"] for item in body["detail"]] == [["body", "results_url"]]
    status, body = await post_run(
        client, ECHO, {}, tmp_path / "r", query={**batch, "docker_image_uri": "other:2"},
        docker_image_uri=image,
    )  # fmt: skip
    assert (status, body["detail"][0]["loc"]) == (422, ["query", "docker_image_uri"])


async def test_unknown_body_keys_are_accepted_and_logged_once_each(
    client: Client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wtrunner.api.runs")
    for _ in range(2):
        status, _ = await post_run(
            client, ECHO, {"echo": {}}, tmp_path / "r", legacy_flag_7f3=True, other_extra_7f3=1
        )
        assert status == 200
    logged = [record.getMessage() for record in caplog.records if "_7f3" in record.getMessage()]
    assert len(logged) == 2
    assert any("legacy_flag_7f3" in line for line in logged)
    assert any("other_extra_7f3" in line for line in logged)


# --- C. existing clients keep working --------------------------------------------------------


async def test_a_missing_local_results_directory_is_created(client: Client, tmp_path: Path) -> None:
    results = tmp_path / "not" / "yet" / "there"
    status, body = await post_run(client, ECHO, {"echo": {"message": "hi"}}, results)
    assert (status, body["error"]) == (200, None)
    assert json.loads((results / "result.json").read_text())["error"] is None


async def test_a_missing_results_directory_is_created_for_pubsub_too(
    client: Client, tmp_path: Path
) -> None:
    results = tmp_path / "pushed" / "deep"
    command = run_command(ECHO, {"echo": {}}, results, run_id="mkdir-1")
    response = await client.post("/run-from-pubsub", json=push_body(command))
    assert await response.json() == {"status": "processed"}
    assert (results / "result.json").is_file()


async def test_a_results_path_that_is_a_file_is_refused(client: Client, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    status, body = await post_run(client, ECHO, {"echo": {}}, blocker / "below")
    assert status == 422
    assert body["detail"][0]["loc"] == ["body", "results_url"]


async def test_run_endpoint_span_is_a_child_of_the_caller_with_exact_attributes(
    client: Client, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    spans.clear()
    status, body = await post_run(
        client, ECHO, {"echo": {"env": ["TRACEPARENT"]}}, tmp_path / "r",
        query={"workflow_run_id": "gen-1"}, headers={"traceparent": TRACEPARENT},
    )  # fmt: skip
    assert status == 200
    (run,) = _spans_named(spans, "run-endpoint", CALLER_TRACE)
    assert format(run.parent.span_id, "016x") == CALLER_SPAN
    assert dict(run.attributes) == {
        "workflow_run_id": "gen-1",
        "invoker_type": "LocalSubprocessInvoker",
    }
    (server,) = _spans_named(spans, "POST /", CALLER_TRACE)
    assert format(server.parent.span_id, "016x") == CALLER_SPAN  # a sibling, not the parent
    assert "http.response.status_code" not in run.attributes
    events = {event.name: dict(event.attributes) for event in run.events}
    assert events["wtrunner.outcome"]["wtrunner.outcome"] == "ok"
    parent = body["result"]["env"]["TRACEPARENT"].split("-")[2]
    assert parent == format(run.context.span_id, "016x")


async def test_run_from_pubsub_endpoint_span_has_exact_attributes(
    client: Client, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    spans.clear()
    command = run_command(
        ECHO,
        {"echo": {}},
        tmp_path / "r",
        run_id="gen-2",
        trace_context={"traceparent": TRACEPARENT},
    )
    response = await client.post("/run-from-pubsub", json=push_body(command))
    assert await response.json() == {"status": "processed"}
    (run,) = _spans_named(spans, "run-from-pubsub-endpoint", CALLER_TRACE)
    assert format(run.parent.span_id, "016x") == CALLER_SPAN
    assert dict(run.attributes) == {
        "workflow_run_id": "gen-2",
        "invoker_type": "LocalSubprocessInvoker",
    }


async def test_convert_items_without_input_are_422_items(client: Client) -> None:
    response = await client.post(
        "/params-to-formdata",
        params={"matchspec": "wt-test-badrjsf-workflow"},
        json={"workflow_details": {}},
    )
    assert response.status == 422
    (item,) = (await response.json())["detail"]
    assert item["input"] is None
    assert item["validator"] == "required" and item["path"] == ["workflow_details"]


async def test_push_answers_are_exactly_the_documented_bodies(
    client: Client, tmp_path: Path
) -> None:
    command = run_command(ECHO, {"echo": {}}, tmp_path / "r", run_id="exact-1")
    first = await client.post("/run-from-pubsub", json=push_body(command))
    assert await first.json() == {"status": "processed"}
    again = await client.post("/run-from-pubsub", json=push_body(command))
    assert await again.json() == {"status": "duplicate"}
    failing = run_command(ECHO, {"echo": {"raise": "boom"}}, tmp_path / "f", run_id="exact-2")
    body = await (await client.post("/run-from-pubsub", json=push_body(failing))).json()
    assert body["status"] == "error" and "boom" in body["error"] and "trace" in body


# --- D. the timeout's explanation ------------------------------------------------------------


async def test_timeout_trace_states_the_limit_and_how_to_raise_it(
    client: Client, tmp_path: Path
) -> None:
    status, body = await post_run(
        client, SLOW, {"sleep": {"seconds": 30}}, tmp_path / "r", query={"timeout": "1"}
    )
    assert (status, body["error"]) == (500, TIMEOUT_MESSAGE)
    first = body["trace"].splitlines()[0]
    assert first == "The workflow timed out after 1 s; raise `timeout` or reduce the data."


# --- E. logs of a run ------------------------------------------------------------------------


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_a_run_logs_with_its_run_id_and_trace(client: Client, tmp_path: Path) -> None:
    from wtrunner.logs import JsonFormatter

    handler = _Lines()
    handler.setFormatter(JsonFormatter(project="conservation-p"))
    logger = logging.getLogger("wtrunner")
    logger.addHandler(handler)
    try:
        # The trivial package has no `get params`: the run path logs that once, mid-run.
        status, _ = await post_run(
            client, "wt-test-trivial-workflow", {}, tmp_path / "r",
            headers={"traceparent": TRACEPARENT},
        )  # fmt: skip
    finally:
        logger.removeHandler(handler)
    assert status == 200
    entries = [json.loads(line) for line in handler.lines]
    (entry,) = [e for e in entries if "no params schema" in e["message"]]
    assert entry["severity"] == "WARNING"
    assert entry["run_id"]
    assert entry["logging.googleapis.com/trace"] == f"projects/conservation-p/traces/{CALLER_TRACE}"
    assert len(entry["logging.googleapis.com/spanId"]) == 16
