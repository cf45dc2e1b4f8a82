"""Writes megabytes to stdout and stderr before finishing (a pipe nobody drains deadlocks)."""

from __future__ import annotations

import sys

from wtrunner.workflow_kit import RunContext, Workflow
from wtrunner.workflow_kit import main as kit_main

SCHEMA = {
    "type": "object",
    "properties": {
        "chatter": {"type": "object", "properties": {"megabytes": {"type": "number"}}},
    },
}


def run(context: RunContext) -> dict[str, int]:
    megabytes = context.task_params("chatter").get("megabytes", 10)
    line = "x" * 1023 + "\n"
    lines = int(megabytes * 1024)
    for _ in range(lines):
        sys.stdout.write(line)
        sys.stderr.write(line)
    sys.stdout.flush()
    sys.stderr.flush()
    return {"bytes_per_stream": lines * 1024}


WORKFLOW = Workflow(name="wt-test-chatty-workflow", params_schema=SCHEMA, run=run)


def main() -> int:
    return kit_main(WORKFLOW)
