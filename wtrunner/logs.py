"""Logging: text or JSON lines, a request id on every record, an access log without probes.

JSON lines follow Cloud Logging's structured-logging fields: ``severity``, and, when an
OpenTelemetry span is current (inside a request or a run), ``logging.googleapis.com/trace``,
``logging.googleapis.com/spanId`` and ``logging.googleapis.com/trace_sampled``, so a log line
links to its trace. ``run_id`` is on every line emitted while a run is processed: the run path
wraps the run in :func:`bind_run_id`; ``client``, the authenticated caller's name, on every line
of its requests and runs.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from opentelemetry import trace

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

current_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_run_id", default=None
)
"""The id of the run being processed in this context (None outside runs)."""

current_client: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_client", default=None
)
"""The name of the authenticated caller whose request (or run) this is; None: anonymous."""

# Probes are polled every few seconds by Kubernetes and load balancers: logging them drowns
# every other line. GET / is the spec's health check.
PROBE_PATHS = frozenset({"/", "/livez", "/readyz"})

TRACE_FIELD = "logging.googleapis.com/trace"
SPAN_ID_FIELD = "logging.googleapis.com/spanId"
TRACE_SAMPLED_FIELD = "logging.googleapis.com/trace_sampled"

# Attributes stamped on a record when it is emitted (the context is the emitter's then).
_STAMPED = "_wtrunner_stamped"
_TRACE_ID = "_wtrunner_trace_id"
_SPAN_ID = "_wtrunner_span_id"
_SAMPLED = "_wtrunner_trace_sampled"


@contextlib.contextmanager
def bind_run_id(run_id: str) -> Iterator[None]:
    """Tag every log record emitted inside the block (and the tasks it starts) with ``run_id``."""
    token = current_run_id.set(run_id)
    try:
        yield
    finally:
        current_run_id.reset(token)


def severity(levelno: int) -> str:
    """Cloud Logging's severity name for a :mod:`logging` level number."""
    if levelno >= logging.CRITICAL:
        return "CRITICAL"
    if levelno >= logging.ERROR:
        return "ERROR"
    if levelno >= logging.WARNING:
        return "WARNING"
    if levelno >= logging.INFO:
        return "INFO"
    return "DEBUG" if levelno > logging.NOTSET else "DEFAULT"


def _stamp(record: logging.LogRecord) -> None:
    """Copy the request id, run id and current span onto ``record``, once."""
    if getattr(record, _STAMPED, False):
        return
    setattr(record, _STAMPED, True)
    if not getattr(record, "request_id", ""):
        record.request_id = request_id_var.get()
    if not getattr(record, "run_id", None):
        record.run_id = current_run_id.get()
    if not getattr(record, "client", None):
        record.client = current_client.get()
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        setattr(record, _TRACE_ID, trace.format_trace_id(span_context.trace_id))
        setattr(record, _SPAN_ID, trace.format_span_id(span_context.span_id))
        setattr(record, _SAMPLED, span_context.trace_flags.sampled)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        _stamp(record)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, severity, logger, message, request and run ids, the
    trace and span of the current OpenTelemetry span, and extras.

    ``project`` (``GOOGLE_CLOUD_PROJECT``) makes the trace field the full resource name Cloud
    Logging links to Cloud Trace: ``projects/<project>/traces/<trace id>``.
    """

    _standard = frozenset(logging.makeLogRecord({}).__dict__) | {
        "message",
        "request_id",
        "run_id",
        "client",
    }

    def __init__(self, project: str = "") -> None:
        super().__init__()
        self.project = project

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        _stamp(record)
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(),
            "severity": severity(record.levelno),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "")
        if request_id:
            entry["request_id"] = request_id
        run_id = getattr(record, "run_id", None)
        if run_id:
            entry["run_id"] = run_id
        client = getattr(record, "client", None)
        if client:
            entry["client"] = client
        trace_id = getattr(record, _TRACE_ID, None)
        if trace_id:
            entry[TRACE_FIELD] = (
                f"projects/{self.project}/traces/{trace_id}" if self.project else trace_id
            )
            entry[SPAN_ID_FIELD] = getattr(record, _SPAN_ID)
            entry[TRACE_SAMPLED_FIELD] = bool(getattr(record, _SAMPLED, False))
        for key, value in record.__dict__.items():
            if key not in self._standard and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines with the request id when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line, with ``[request ID]`` and ``[run ID]`` when known."""
        _stamp(record)
        line = super().format(record)
        request_id = getattr(record, "request_id", "")
        if request_id:
            line += f" [request {request_id}]"
        run_id = getattr(record, "run_id", None)
        if run_id:
            line += f" [run {run_id}]"
        client = getattr(record, "client", None)
        if client:
            line += f" [client {client}]"
        return line


def configure_logging(log_format: str, level: int = logging.INFO, project: str = "") -> None:
    """Send wtrunner's and aiohttp's logs to stderr in ``text`` or ``json`` format.

    ``project`` (``GOOGLE_CLOUD_PROJECT``) qualifies the trace field of JSON lines.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(project) if log_format == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class AccessLogger(AbstractAccessLogger):
    """aiohttp access log: one record per request, health probes skipped."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """Log one finished request unless it was a probe."""
        if request.method == "GET" and request.path in PROBE_PATHS:
            return
        self.logger.info(
            "%s %s %s %.1fms",
            request.method,
            request.path,
            response.status,
            time * 1000,
            extra={
                "request_id": response.headers.get("X-Request-ID", ""),
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "duration_ms": round(time * 1000, 3),
                "remote": request.remote,
            },
        )
