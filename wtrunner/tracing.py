"""W3C trace context: from a request's headers into a workflow's TRACEPARENT / TRACESTATE."""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()


def extract_context(traceparent: str | None, tracestate: str | None = None) -> Context:
    """The context that W3C ``traceparent`` / ``tracestate`` values describe (invalid: empty)."""
    carrier = {}
    if traceparent:
        carrier["traceparent"] = traceparent
        if tracestate:
            carrier["tracestate"] = tracestate
    return _PROPAGATOR.extract(carrier)


def attach_context(traceparent: str | None, tracestate: str | None = None) -> object:
    """Make the described context current; returns the token for ``detach_context``."""
    return otel_context.attach(extract_context(traceparent, tracestate))


def detach_context(token: object) -> None:
    """Undo :func:`attach_context`."""
    otel_context.detach(token)  # type: ignore[arg-type]


def build_context_headers(context: Context | None = None) -> dict[str, str]:
    """W3C headers for ``context`` (default: the current one); empty when there is no trace."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=context)
    return carrier
