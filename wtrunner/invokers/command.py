"""The workflow command line of the contract (design §3), shared by every back end."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..run_request import RunRequest
from ..settings import Settings
from ..tracing import build_context_headers, parent_context
from ..workflow_kit import DEFAULT_RESULTS_ENV_VAR, RESULTS_ENV_VAR_SETTING


def run_arguments(request: RunRequest, settings: Settings, config: list[str]) -> list[str]:
    """``run <config> --execution-mode M --mock-io|--no-mock-io [otel flags]``.

    ``config`` is ``["--config-file", F]`` or ``["--config-json", TEXT]``.
    """
    arguments = [
        "run",
        *config,
        "--execution-mode",
        request.execution_mode,
        "--mock-io" if request.mock_io else "--no-mock-io",
    ]
    if settings.otel_exporter:
        arguments += ["--otel-exporter", settings.otel_exporter]
        if settings.otel_exporter == "console":
            destination = settings.otel_console_exporter_dst
            if destination == "file" and not request.results_url.startswith("file://"):
                # A trace file can only land next to local results; the earlier
                # implementation made every such run fail.
                destination = "stdout"
            arguments += ["--otel-console-exporter-dst", destination]
    return arguments


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


def passthrough_env(environ: Mapping[str, str], patterns: Iterable[str]) -> dict[str, str]:
    """The variables of ``environ`` named by ``patterns`` (a trailing ``*`` makes a prefix)."""
    patterns = list(patterns)
    exact = {pattern for pattern in patterns if not pattern.endswith("*")}
    prefixes = tuple(pattern[:-1] for pattern in patterns if pattern.endswith("*"))
    return {
        name: value
        for name, value in environ.items()
        if name in exact or (prefixes and name.startswith(prefixes))
    }
