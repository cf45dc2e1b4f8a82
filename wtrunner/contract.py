"""The workflow command-line contract, shared by the service and the workflow kit.

wtrunner talks to a workflow package only through its executable's command line; both sides of
that line — the invokers that build a command and ``workflow_kit`` that parses it — take the
argument names, choices and variable names from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

ExecutionMode = Literal["sequential", "async"]
EXECUTION_MODES: tuple[str, ...] = get_args(ExecutionMode)
OtelExporter = Literal["console", "gcp"]
OTEL_EXPORTERS: tuple[str, ...] = get_args(OtelExporter)
OtelConsoleDestination = Literal["stdout", "file"]
OTEL_CONSOLE_DESTINATIONS: tuple[str, ...] = get_args(OtelConsoleDestination)
MetadataDocument = Literal["rjsf", "params", "data-connection-property-names"]
METADATA_DOCUMENTS: tuple[str, ...] = get_args(MetadataDocument)
FormKind = Literal["formdata", "params"]
FORM_KINDS: tuple[str, ...] = get_args(FormKind)

# The results URL reaches the workflow in this variable, unless RESULTS_ENV_VAR_SETTING names
# another one.
DEFAULT_RESULTS_ENV_VAR = "WT_RESULTS"
RESULTS_ENV_VAR_SETTING = "WT_INVOKERS__RESULTS_ENV_VAR"
RESULT_FILE = "result.json"

# ``run`` exits 0 once result.json is written, this for bad arguments or params (no result).
EXIT_BAD_INPUT = 2


def run_argv(
    config: Sequence[str],
    execution_mode: ExecutionMode,
    mock_io: bool,
    otel_exporter: str | None = None,
    otel_console_destination: str | None = None,
) -> list[str]:
    """``run <config> --execution-mode M --mock-io|--no-mock-io [otel flags]``.

    ``config`` is ``["--config-file", F]`` or ``["--config-json", TEXT]``.
    """
    argv = [
        "run",
        *config,
        "--execution-mode",
        execution_mode,
        "--mock-io" if mock_io else "--no-mock-io",
    ]
    if otel_exporter:
        argv += ["--otel-exporter", otel_exporter]
        if otel_console_destination:
            argv += ["--otel-console-exporter-dst", otel_console_destination]
    return argv


def get_argv(what: MetadataDocument) -> list[str]:
    """``get <what>``: print a metadata document as JSON."""
    return ["get", what]


def convert_argv(source: FormKind) -> list[str]:
    """``convert --from <source> --to <the other>``: JSON object on stdin, answer on stdout."""
    target = "params" if source == "formdata" else "formdata"
    return ["convert", "--from", source, "--to", target]
