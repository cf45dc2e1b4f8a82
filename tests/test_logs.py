"""Log lines for Cloud Logging: severity, the trace and span of the current span, the run id."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from wtrunner.logs import (
    SPAN_ID_FIELD,
    TRACE_FIELD,
    JsonFormatter,
    TextFormatter,
    bind_run_id,
    configure_logging,
    current_run_id,
)

TRACE_KEY = "logging.googleapis.com/trace"
SPAN_KEY = "logging.googleapis.com/spanId"


def _record(level: int = logging.INFO, message: str = "hello") -> logging.LogRecord:
    return logging.LogRecord("wtrunner.test", level, __file__, 1, message, None, None)


def _json(formatter: logging.Formatter, level: int = logging.INFO) -> dict[str, Any]:
    entry = json.loads(formatter.format(_record(level)))
    assert isinstance(entry, dict)
    return entry


@pytest.fixture
def tracer_provider() -> TracerProvider:
    """A real SDK tracer provider of the test's own (not the process-global one)."""
    return TracerProvider()


def test_the_field_names_are_cloud_loggings() -> None:
    assert (TRACE_FIELD, SPAN_ID_FIELD) == (TRACE_KEY, SPAN_KEY)


@pytest.mark.parametrize(
    ("level", "severity"),
    [
        (logging.DEBUG, "DEBUG"),
        (logging.INFO, "INFO"),
        (logging.WARNING, "WARNING"),
        (logging.ERROR, "ERROR"),
        (logging.CRITICAL, "CRITICAL"),
    ],
)
def test_every_json_line_has_a_severity(level: int, severity: str) -> None:
    entry = _json(JsonFormatter(), level)
    assert entry["severity"] == severity
    assert entry["message"] == "hello"


def test_outside_a_span_and_a_run_there_is_no_trace_and_no_run_id() -> None:
    entry = _json(JsonFormatter(project="demo"))
    assert TRACE_KEY not in entry
    assert SPAN_KEY not in entry
    assert "run_id" not in entry


def test_inside_a_span_the_line_names_its_trace_and_span(tracer_provider: TracerProvider) -> None:
    tracer = tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("run-endpoint") as span:
        with_project = _json(JsonFormatter(project="demo-project"))
        without_project = _json(JsonFormatter())
    context = span.get_span_context()
    trace_id = f"{context.trace_id:032x}"
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)
    assert with_project[TRACE_KEY] == f"projects/demo-project/traces/{trace_id}"
    assert without_project[TRACE_KEY] == trace_id
    assert with_project[SPAN_KEY] == without_project[SPAN_KEY] == f"{context.span_id:016x}"
    assert re.fullmatch(r"[0-9a-f]{16}", with_project[SPAN_KEY])
    # the span id is the innermost current span's
    with tracer.start_as_current_span("parent"), tracer.start_as_current_span("child") as child:
        nested = _json(JsonFormatter())
    assert nested[SPAN_KEY] == f"{child.get_span_context().span_id:016x}"


def test_bind_run_id_tags_lines_inside_the_block_only() -> None:
    formatter = JsonFormatter()
    assert current_run_id.get() is None
    with bind_run_id("run-42"):
        assert current_run_id.get() == "run-42"
        assert _json(formatter)["run_id"] == "run-42"
        with bind_run_id("run-43"):
            assert _json(formatter)["run_id"] == "run-43"
        assert _json(formatter)["run_id"] == "run-42"
    assert current_run_id.get() is None
    assert "run_id" not in _json(formatter)


def test_bind_run_id_resets_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), bind_run_id("run-1"):
        raise RuntimeError("boom")
    assert current_run_id.get() is None


async def test_concurrent_runs_each_log_their_own_id() -> None:
    formatter = JsonFormatter()
    a_bound, b_bound = asyncio.Event(), asyncio.Event()

    async def one(run_id: str, mine: asyncio.Event, other: asyncio.Event) -> Any:
        with bind_run_id(run_id):
            mine.set()
            await other.wait()  # both runs are inside their blocks at the same time
            return _json(formatter)["run_id"]

    both = await asyncio.gather(one("a", a_bound, b_bound), one("b", b_bound, a_bound))
    assert list(both) == ["a", "b"]


def test_text_lines_name_the_run() -> None:
    with bind_run_id("run-7"):
        line = TextFormatter().format(_record())
    assert line.endswith("[run run-7]")
    assert "[run" not in TextFormatter().format(_record())


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging replaces the root handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_configured_json_logging_stamps_the_emitting_context(
    tracer_provider: TracerProvider, restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging("json", project="demo-project")
    log = logging.getLogger("wtrunner.runs")
    tracer = tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("run") as span, bind_run_id("run-42"):
        log.warning("the workflow is slow", extra={"seconds": 3})
    log.info("between runs")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    trace_id = f"{span.get_span_context().trace_id:032x}"
    assert first["severity"] == "WARNING"
    assert first["run_id"] == "run-42"
    assert first[TRACE_KEY] == f"projects/demo-project/traces/{trace_id}"
    assert first["seconds"] == 3
    assert not any(key.startswith("_") for key in first)
    assert second["severity"] == "INFO"
    assert "run_id" not in second and TRACE_KEY not in second
