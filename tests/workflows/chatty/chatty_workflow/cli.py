"""Writes megabytes to stdout and stderr before finishing (a pipe nobody drains deadlocks).

``chatter``: ``megabytes`` (10) of filler on each stream; ``lines`` numbered lines on stdout,
one every ``interval`` seconds, each waiting for ``go_file`` to exist when given (so a test can
read them while the run lasts); ``secret_env``: names of variables whose values it prints to
both streams (the run's logs must mask them).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from wtrunner.workflow_kit import RunContext, Workflow
from wtrunner.workflow_kit import main as kit_main

SCHEMA = {
    "type": "object",
    "properties": {
        "chatter": {
            "type": "object",
            "properties": {
                "megabytes": {"type": "number"},
                "lines": {"type": "integer", "minimum": 0},
                "interval": {"type": "number", "minimum": 0},
                "go_file": {"type": "string"},
                "secret_env": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}


def run(context: RunContext) -> dict[str, int]:
    options = context.task_params("chatter")
    for name in options.get("secret_env", []):
        for stream in (sys.stdout, sys.stderr):
            stream.write(f"the value of {name} is {os.environ.get(name, '')}!\n")
            stream.flush()
    for index in range(options.get("lines", 0)):
        if "go_file" in options and index > 0:
            while not Path(options["go_file"]).exists():
                time.sleep(0.01)
        print(f"line {index}", flush=True)
        time.sleep(options.get("interval", 0))
    megabytes = options.get("megabytes", 10)
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
