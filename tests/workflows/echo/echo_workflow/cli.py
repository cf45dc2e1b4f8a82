"""Echoes what it was given: params, flags, working directory, chosen variables and the
contents of files named by chosen variables."""

from __future__ import annotations

import os
from typing import Any

from wtrunner.workflow_kit import RunContext, Workflow
from wtrunner.workflow_kit import main as kit_main

SCHEMA = {
    "type": "object",
    "properties": {
        "echo": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "env": {"type": "array", "items": {"type": "string"}},
                "files": {"type": "array", "items": {"type": "string"}},
                "append": {"type": "string", "description": "a file to add one line to per run"},
                "raise": {"type": "string"},
                "count": {"type": "integer", "minimum": 0},
            },
            "additionalProperties": False,
        },
        "extra": {"type": "object"},
    },
    "required": ["echo"],
    "additionalProperties": False,
}


def run(context: RunContext) -> dict[str, Any]:
    echo = context.task_params("echo")
    if "append" in echo:
        with open(echo["append"], "a") as file:
            file.write(f"{os.getpid()}\n")
    if "raise" in echo:
        raise RuntimeError(echo["raise"])
    return {
        "params": context.params,
        "mock_io": context.mock_io,
        "execution_mode": context.execution_mode,
        "otel_exporter": context.otel_exporter,
        "otel_console_exporter_dst": context.otel_console_exporter_dst,
        "cwd": os.getcwd(),
        "env": {name: os.environ.get(name) for name in echo.get("env", [])},
        "files": {name: _read(os.environ.get(name)) for name in echo.get("files", [])},
        "env_names": sorted(os.environ),
    }


def _read(path: str | None) -> str | None:
    if not path or not os.path.isfile(path):
        return None
    with open(path) as file:
        return file.read()


WORKFLOW = Workflow(
    name="wt-test-echo-workflow",
    params_schema=SCHEMA,
    run=run,
    form_sections={"Echo": ["echo"]},
    data_connections={"EchoConnection": ["echo"]},
)


def main() -> int:
    return kit_main(WORKFLOW)
