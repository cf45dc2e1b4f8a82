"""Starts a grandchild that ignores SIGTERM and outlives it, then sleeps or exits.

params: {"orphan": {"pid_file": PATH, "then": "exit" | "sleep", "seconds": N}}
The grandchild's pid is written to ``pid_file`` before anything else happens.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from wtrunner.workflow_kit import RunContext, Workflow
from wtrunner.workflow_kit import main as kit_main

GRANDCHILD = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"

SCHEMA = {
    "type": "object",
    "properties": {
        "orphan": {
            "type": "object",
            "properties": {
                "pid_file": {"type": "string"},
                "then": {"enum": ["exit", "sleep"]},
                "seconds": {"type": "number"},
            },
            "required": ["pid_file"],
        }
    },
    "required": ["orphan"],
}


def run(context: RunContext) -> dict[str, int]:
    options = context.params["orphan"]
    grandchild = subprocess.Popen([sys.executable, "-c", GRANDCHILD])
    # atomically: a test that sees the file must not read it empty
    pid_file = Path(options["pid_file"])
    partial = pid_file.with_name(pid_file.name + ".partial")
    partial.write_text(str(grandchild.pid))
    partial.replace(pid_file)
    if options.get("then", "sleep") == "sleep":
        time.sleep(float(options.get("seconds", 600)))
    return {"grandchild": grandchild.pid}


WORKFLOW = Workflow(name="wt-test-orphan-workflow", params_schema=SCHEMA, run=run)


def main() -> int:
    return kit_main(WORKFLOW)
