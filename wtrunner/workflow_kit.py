"""A small kit for writing workflow packages that keep the command-line contract
(``wtrunner/contract.py``).

wtrunner itself talks to a workflow only through its command line; this module is for the
*workflow* side (the examples, the test workflows, and anyone writing a package by hand)::

    from wtrunner.workflow_kit import Workflow, main

    WORKFLOW = Workflow(name="wt-hello-workflow", params_schema={...}, run=say_hello)

    def cli() -> int:
        return main(WORKFLOW)

It implements ``run`` (params validated with jsonschema, exit 2 on bad arguments or params,
``result.json`` written to the results URL through obstore, exit 0 once it is written, also when
the workflow failed inside), ``get rjsf|params|data-connection-property-names`` and ``convert``
both ways with jsonschema-native validation errors. Form data groups the flat params
``{task id: kwargs}`` into sections: ``{section: {task id: kwargs}}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from .contract import (
    DEFAULT_RESULTS_ENV_VAR,
    EXECUTION_MODES,
    EXIT_BAD_INPUT,
    FORM_KINDS,
    METADATA_DOCUMENTS,
    OTEL_CONSOLE_DESTINATIONS,
    OTEL_EXPORTERS,
    RESULT_FILE,
    RESULTS_ENV_VAR_SETTING,
)
from .schemas import validation_errors


class BadInput(Exception):
    """Arguments or params the workflow cannot run with (exit code 2, no result.json)."""


@dataclass(frozen=True)
class RunContext:
    """What a workflow's ``run`` function receives."""

    params: dict[str, Any]
    mock_io: bool
    execution_mode: str
    results_url: str
    otel_exporter: str | None = None
    otel_console_exporter_dst: str | None = None

    def task_params(self, task_id: str) -> dict[str, Any]:
        """The kwargs of one task (empty when the params do not mention it)."""
        value = self.params.get(task_id) or {}
        return dict(value)


@dataclass(frozen=True)
class Workflow:
    """A workflow: its params schema, its form layout, and the function that runs it."""

    name: str
    params_schema: Mapping[str, Any]
    run: Callable[[RunContext], Any]
    title: str = ""
    description: str = ""
    form_sections: Mapping[str, Sequence[str]] = field(default_factory=dict)
    ui_schema: Mapping[str, Any] = field(default_factory=dict)
    data_connections: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def section_of(self, task_id: str) -> str | None:
        """The form section that holds ``task_id`` (None: the task sits at the top level)."""
        for section, tasks in self.form_sections.items():
            if task_id in tasks:
                return section
        return None

    def rjsf(self) -> dict[str, Any]:
        """The React JSON Schema Form document: the params grouped into sections, plus uiSchema."""
        task_schemas: Mapping[str, Any] = self.params_schema.get("properties", {})
        required = set(self.params_schema.get("required", []))
        properties: dict[str, Any] = {}
        top_required: list[str] = []
        for section, tasks in self.form_sections.items():
            properties[section] = {
                "type": "object",
                "title": section,
                "properties": {task: task_schemas[task] for task in tasks},
                "required": [task for task in tasks if task in required],
                "additionalProperties": False,
            }
            if any(task in required for task in tasks):
                top_required.append(section)
        for task, schema in task_schemas.items():
            if self.section_of(task) is None:
                properties[task] = schema
                if task in required:
                    top_required.append(task)
        document: dict[str, Any] = {
            "title": self.title or self.name,
            "description": self.description,
            "type": "object",
            "properties": properties,
            "required": top_required,
            "additionalProperties": False,
            "uiSchema": dict(self.ui_schema),
        }
        if "$defs" in self.params_schema:
            document["$defs"] = self.params_schema["$defs"]
        return document

    def form_schema(self) -> dict[str, Any]:
        """The JSON Schema form data must satisfy (the RJSF document without its uiSchema)."""
        return {key: value for key, value in self.rjsf().items() if key != "uiSchema"}

    def formdata_to_params(self, formdata: Mapping[str, Any]) -> dict[str, Any]:
        """Flatten ``{section: {task: kwargs}}`` into ``{task: kwargs}``."""
        params: dict[str, Any] = {}
        for key, value in formdata.items():
            if key in self.form_sections:
                params.update(value)
            else:
                params[key] = value
        return params

    def params_to_formdata(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Group ``{task: kwargs}`` into ``{section: {task: kwargs}}``."""
        formdata: dict[str, Any] = {}
        for task, kwargs in params.items():
            section = self.section_of(task)
            if section is None:
                formdata[task] = kwargs
            else:
                formdata.setdefault(section, {})[task] = kwargs
        return formdata


def results_url_from_env() -> str:
    """The results URL the runner gave this process (``WT_RESULTS`` unless renamed)."""
    name = os.environ.get(RESULTS_ENV_VAR_SETTING) or DEFAULT_RESULTS_ENV_VAR
    url = os.environ.get(name, "")
    if not url:
        raise RuntimeError(f"the results URL variable {name} is not set")
    return url


def write_result(results_url: str, document: Mapping[str, Any]) -> None:
    """Write ``result.json`` under ``results_url`` (file://, gs://, s3://, memory://).

    Like compiled workflows, a local results directory is not created here: it must exist
    (wtrunner creates it before the run starts).
    """
    import obstore
    from obstore.store import from_url

    store = from_url(results_url)
    obstore.put(store, RESULT_FILE, json.dumps(document, default=str).encode())


def _parser(workflow: Workflow) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=workflow.name, description=workflow.description)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the workflow")
    config = run.add_mutually_exclusive_group(required=True)
    config.add_argument("--config-file", help="YAML/JSON file: task id -> kwargs")
    config.add_argument("--config-json", help="the same, inline")
    run.add_argument("--execution-mode", choices=EXECUTION_MODES, default="sequential")
    run.add_argument("--mock-io", action=argparse.BooleanOptionalAction, default=False)
    run.add_argument("--otel-exporter", choices=OTEL_EXPORTERS)
    run.add_argument("--otel-console-exporter-dst", choices=OTEL_CONSOLE_DESTINATIONS)

    get = commands.add_parser("get", help="print metadata as JSON")
    get.add_argument("what", choices=METADATA_DOCUMENTS)

    convert = commands.add_parser("convert", help="convert form data <-> params (stdin JSON)")
    convert.add_argument("--from", dest="source", choices=FORM_KINDS, required=True)
    convert.add_argument("--to", dest="target", choices=FORM_KINDS, required=True)
    return parser


def main(workflow: Workflow, argv: Sequence[str] | None = None) -> int:
    """Run the command line of ``workflow``; returns the exit code of the contract."""
    try:
        args = _parser(workflow).parse_args(argv)
    except SystemExit as exc:  # argparse: 2 for bad arguments, 0 for --help
        return int(exc.code or 0)
    try:
        if args.command == "get":
            return _get(workflow, args.what)
        if args.command == "convert":
            return _convert(workflow, args.source, args.target)
        return _run(workflow, args)
    except BadInput as exc:
        print(f"{workflow.name}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _get(workflow: Workflow, what: str) -> int:
    document: Any
    if what == "rjsf":
        document = workflow.rjsf()
    elif what == "params":
        document = dict(workflow.params_schema)
    else:
        document = {name: list(tasks) for name, tasks in workflow.data_connections.items()}
    print(json.dumps(document))
    return 0


def _convert(workflow: Workflow, source: str, target: str) -> int:
    if source == target:
        raise BadInput("--from and --to must differ")
    try:
        data = json.load(sys.stdin)
    except ValueError as exc:
        raise BadInput(f"stdin is not JSON: {exc}") from None
    if source == "formdata":
        errors = validation_errors(workflow.form_schema(), data)
        converted = None if errors else workflow.formdata_to_params(data)
    else:
        errors = validation_errors(workflow.params_schema, data)
        converted = None if errors else workflow.params_to_formdata(data)
    print(json.dumps({"validation_errors": errors} if errors else {"result": converted}))
    return 0


def _load_config(args: argparse.Namespace) -> dict[str, Any]:
    try:
        if args.config_file:
            with open(args.config_file) as file:
                params = yaml.safe_load(file)
        else:
            params = yaml.safe_load(args.config_json)
    except OSError as exc:
        raise BadInput(f"cannot read the config file: {exc}") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"the config is not YAML/JSON: {exc}") from None
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise BadInput("the config must be a mapping of task id to kwargs")
    return params


def _run(workflow: Workflow, args: argparse.Namespace) -> int:
    params = _load_config(args)
    errors = validation_errors(workflow.params_schema, params)
    if errors:
        for error in errors:
            location = "/".join(map(str, error["path"])) or "(params)"
            print(f"invalid params at {location}: {error['message']}", file=sys.stderr)
        return EXIT_BAD_INPUT
    results_url = results_url_from_env()
    context = RunContext(
        params=params,
        mock_io=args.mock_io,
        execution_mode=args.execution_mode,
        results_url=results_url,
        otel_exporter=args.otel_exporter,
        otel_console_exporter_dst=args.otel_console_exporter_dst,
    )
    try:
        with _traced(workflow, context):
            document = {"result": workflow.run(context), "error": None, "trace": None}
    except Exception as exc:
        document = {
            "result": None,
            "error": str(exc) or type(exc).__name__,
            "trace": traceback.format_exc(),
        }
    write_result(results_url, document)
    return 0


@contextlib.contextmanager
def _traced(workflow: Workflow, context: RunContext) -> Iterator[None]:
    """A span around the run, child of TRACEPARENT, exported as ``--otel-exporter`` says.

    Console spans go to stdout, or with ``--otel-console-exporter-dst file`` are appended to
    ``otel_traces.jsonl`` in ECOSCOPE_WORKFLOWS_OTEL_CONSOLE_EXPORTER_FILE_DST_TARGET_DIR (or
    in the results directory when that is local).
    """
    if not context.otel_exporter:
        yield
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from .settings import load_settings
    from .tracing import console_exporter, extract_context, gcp_exporter

    provider = TracerProvider(resource=Resource.create({"service.name": workflow.name}))
    if context.otel_exporter == "console":
        to_file = context.otel_console_exporter_dst == "file"
        exporter = console_exporter(_trace_directory(context) if to_file else None)
    else:
        exporter = gcp_exporter(load_settings())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    parent = extract_context(os.environ.get("TRACEPARENT"), os.environ.get("TRACESTATE"))
    tracer = provider.get_tracer(workflow.name)
    try:
        with tracer.start_as_current_span(f"{workflow.name} run", context=parent) as span:
            span.set_attribute("wt.execution_mode", context.execution_mode)
            span.set_attribute("wt.mock_io", context.mock_io)
            yield
    finally:
        provider.shutdown()


def _trace_directory(context: RunContext) -> Path | None:
    target = os.environ.get("ECOSCOPE_WORKFLOWS_OTEL_CONSOLE_EXPORTER_FILE_DST_TARGET_DIR")
    if target:
        return Path(target)
    if context.results_url.startswith("file://"):
        return Path(unquote(urlsplit(context.results_url).path))
    return None
