"""Sleeps as long as its params say; optionally writes its pid to a file and ignores SIGTERM
(so only the SIGKILL after the grace period ends it)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from wtrunner.workflow_kit import RunContext, Workflow
from wtrunner.workflow_kit import main as kit_main

SCHEMA = {
    "type": "object",
    "properties": {
        "sleep": {
            "type": "object",
            "properties": {
                "seconds": {"type": "number", "minimum": 0},
                "pid_file": {"type": "string"},
                "ignore_sigterm": {"type": "boolean"},
            },
            "required": ["seconds"],
        }
    },
    "required": ["sleep"],
}


def run(context: RunContext) -> dict[str, float]:
    options = context.params["sleep"]
    if options.get("ignore_sigterm"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if "pid_file" in options:
        # atomically: a test that sees the file must not read it empty
        pid_file = Path(options["pid_file"])
        partial = pid_file.with_name(pid_file.name + ".partial")
        partial.write_text(str(os.getpid()))
        partial.replace(pid_file)
    seconds = float(options["seconds"])
    time.sleep(seconds)
    return {"slept": seconds}


WORKFLOW = Workflow(name="wt-test-slow-workflow", params_schema=SCHEMA, run=run)


def main() -> int:
    return kit_main(WORKFLOW)
