"""OpenTelemetry: the tracer provider, server instrumentation, and W3C context helpers.

``configure_tracer()`` is process-global (OpenTelemetry allows one tracer provider and the
aiohttp instrumentation swaps ``web.Application``): ``wtrunner serve`` calls it once, before the
application is created; tests once per session. The exporter comes from
``ECOSCOPE_WORKFLOWS_OTEL_EXPORTER`` (unset: none, ``console``, ``gcp``); console spans are one
JSON object a line, on stdout or appended to ``otel_traces.jsonl`` in
``ECOSCOPE_WORKFLOWS_OTEL_CONSOLE_EXPORTER_FILE_DST_TARGET_DIR``.

Spans never carry secrets: health probes and /metrics are not traced, and query strings are
stripped from every URL attribute before a span is exported.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .settings import Settings
from .version import __version__

_PROPAGATOR = TraceContextTextMapPropagator()
TRACE_FILE = "otel_traces.jsonl"
# Server span names ("METHOD /route") of requests that are never traced.
UNTRACED_SPANS = frozenset({"GET /", "GET /livez", "GET /readyz", "GET /metrics"})
_URL_ATTRIBUTES = ("http.target", "http.url", "url.full", "url.query")

tracer = trace.get_tracer("wtrunner", __version__)


def extract_context(traceparent: str | None, tracestate: str | None = None) -> Context:
    """The context that W3C ``traceparent`` / ``tracestate`` values describe (invalid: empty)."""
    carrier = {}
    if traceparent:
        carrier["traceparent"] = traceparent
        if tracestate:
            carrier["tracestate"] = tracestate
    return _PROPAGATOR.extract(carrier)


def build_context_headers(context: Context | None = None) -> dict[str, str]:
    """W3C headers for ``context`` (default: the current one); empty when there is no trace."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=context)
    return carrier


def run_parent_context(traceparent: str | None, tracestate: str | None) -> Context:
    """The parent of a run's span: the caller's span its W3C values describe when they are
    valid (so the run is a direct child of the caller, as the earlier implementation's
    clients check), else the current context (e.g. the HTTP server span)."""
    described = extract_context(traceparent, tracestate)
    if trace.get_current_span(described).get_span_context().is_valid:
        return described
    return otel_context.get_current()


def parent_context(traceparent: str | None, tracestate: str | None) -> Context:
    """The current context when a span is active in it (e.g. the server span), else the one
    the given headers describe."""
    if trace.get_current_span().get_span_context().is_valid:
        return otel_context.get_current()
    return extract_context(traceparent, tracestate)


def otel_span_formatter(span: Any) -> str:
    """A finished span as one JSON object on one line (plus the newline)."""
    return json.dumps(json.loads(span.to_json()), separators=(",", ":")) + "\n"


def strip_query(url: str) -> str:
    """``url`` (or a path) without its query string and fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def build_tracer_provider(settings: Settings, exporters: Sequence[Any] = ()) -> Any:
    """A tracer provider for wtrunner: resource, probe-free sampling, query-free URLs, and the
    configured exporter (plus ``exporters``, e.g. an in-memory one in tests)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create({"service.name": "wtrunner", "service.version": __version__})
    provider = TracerProvider(resource=resource, sampler=_sampler())
    provider.add_span_processor(_url_scrubber())
    configured = _configured_exporter(settings)
    if configured is not None:
        provider.add_span_processor(BatchSpanProcessor(configured))
    for exporter in exporters:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def configure_tracer(settings: Settings | None = None) -> Any:
    """Set the global tracer provider and instrument the aiohttp server (once per process,
    before the application is created). Returns the provider (``shutdown()`` flushes it)."""
    from .settings import load_settings

    provider = build_tracer_provider(settings or load_settings())
    trace.set_tracer_provider(provider)
    instrument_server(provider)
    return provider


def instrument_server(provider: Any) -> None:
    """Give every ``web.Application`` created from now on a server-span middleware."""
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor

    with warnings.catch_warnings():
        # The instrumentation subclasses web.Application, which aiohttp discourages.
        warnings.filterwarnings(
            "ignore", "Inheritance class .* from web.Application", DeprecationWarning
        )
        AioHttpServerInstrumentor().instrument(tracer_provider=provider)


def _configured_exporter(settings: Settings) -> Any:
    if settings.otel_exporter == "console":
        to_file = settings.otel_console_exporter_dst == "file"
        # (the settings refuse a file destination without a target dir)
        return console_exporter(
            settings.otel_console_exporter_file_dst_target_dir if to_file else None
        )
    if settings.otel_exporter == "gcp":
        return gcp_exporter(settings)
    return None


def console_exporter(directory: Path | None) -> Any:
    """One-line JSON spans on stdout, or appended to ``otel_traces.jsonl`` in ``directory``
    (the file is closed when the exporter shuts down)."""
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    if directory is None:
        return ConsoleSpanExporter(out=sys.stdout, formatter=otel_span_formatter)

    directory.mkdir(parents=True, exist_ok=True)
    stream: IO[str] = (directory / TRACE_FILE).open("a", buffering=1)

    class FileExporter(ConsoleSpanExporter):
        def shutdown(self) -> None:
            stream.close()

    return FileExporter(out=stream, formatter=otel_span_formatter)


def gcp_exporter(settings: Settings, client: Any = None) -> Any:
    """Google Cloud Trace exporter for the settings' project (``wtrunner[gcp]``)."""
    from .gcp import import_gcp

    cloud_trace = import_gcp("opentelemetry.exporter.cloud_trace", "The gcp trace exporter")
    with warnings.catch_warnings():
        # Deprecated upstream in favour of OTLP to Cloud Trace; still the documented exporter of
        # this service's deployments (ECOSCOPE_WORKFLOWS_OTEL_EXPORTER=gcp).
        warnings.filterwarnings(
            "ignore", "CloudTraceSpanExporter is deprecated", DeprecationWarning
        )
        return cloud_trace.CloudTraceSpanExporter(
            project_id=settings.google_cloud_project or None, client=client
        )


def _sampler() -> Any:
    from opentelemetry.sdk.trace.sampling import (
        ALWAYS_ON,
        Decision,
        ParentBased,
        Sampler,
        SamplingResult,
    )

    class SkipProbes(Sampler):
        """Samples like ParentBased(ALWAYS_ON), but never health probes or /metrics."""

        _inner = ParentBased(ALWAYS_ON)

        def should_sample(self, parent_context: Any, trace_id: int, name: str,
                          kind: Any = None, attributes: Any = None, links: Any = None,
                          trace_state: Any = None) -> Any:  # fmt: skip
            if kind == trace.SpanKind.SERVER and name in UNTRACED_SPANS:
                return SamplingResult(Decision.DROP)
            return self._inner.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )

        def get_description(self) -> str:
            return "SkipProbes(ParentBased(ALWAYS_ON))"

    return SkipProbes()


def _url_scrubber() -> Any:
    from opentelemetry.sdk.trace import SpanProcessor

    class ScrubUrls(SpanProcessor):
        """Strips query strings (tokens live there) from URL attributes as spans start."""

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            attributes = span.attributes or {}
            for key in _URL_ATTRIBUTES:
                value = attributes.get(key)
                if isinstance(value, str) and ("?" in value or key == "url.query"):
                    span.set_attribute(key, "" if key == "url.query" else strip_query(value))

    return ScrubUrls()
