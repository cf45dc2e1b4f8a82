"""The workflow command line of the contract (``wtrunner/contract.py``), for every back end."""

from __future__ import annotations

from ..contract import DEFAULT_RESULTS_ENV_VAR, RESULTS_ENV_VAR_SETTING, run_argv
from ..run_request import RunRequest
from ..settings import Settings
from ..tracing import build_context_headers, parent_context


def run_arguments(request: RunRequest, settings: Settings, config: list[str]) -> list[str]:
    """``run <config> --execution-mode M --mock-io|--no-mock-io [otel flags]``.

    ``config`` is ``["--config-file", F]`` or ``["--config-json", TEXT]``.
    """
    destination = None
    if settings.otel_exporter == "console":
        destination = settings.otel_console_exporter_dst
        if destination == "file" and not request.results_url.startswith("file://"):
            # A trace file can only land next to local results; the earlier implementation
            # made every such run fail.
            destination = "stdout"
    return run_argv(
        config, request.execution_mode, request.mock_io, settings.otel_exporter, destination
    )


def contract_env(request: RunRequest, settings: Settings) -> dict[str, str]:
    """What the contract tells every workflow: the results URL (and the variable's name when it
    is not ``WT_RESULTS``) and the W3C context of the current span (the run's) or the request."""
    env = {settings.results_env_var: request.results_url}
    if settings.results_env_var != DEFAULT_RESULTS_ENV_VAR:
        env[RESULTS_ENV_VAR_SETTING] = settings.results_env_var
    headers = build_context_headers(parent_context(request.traceparent, request.tracestate))
    for header, variable in (("traceparent", "TRACEPARENT"), ("tracestate", "TRACESTATE")):
        if header in headers:
            env[variable] = headers[header]
    return env
