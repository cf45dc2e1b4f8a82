"""Sleeps as long as its params say."""

from __future__ import annotations

import time

from wtrunner.workflow_kit import RunContext, Workflow
from wtrunner.workflow_kit import main as kit_main

SCHEMA = {
    "type": "object",
    "properties": {
        "sleep": {
            "type": "object",
            "properties": {"seconds": {"type": "number", "minimum": 0}},
            "required": ["seconds"],
        }
    },
    "required": ["sleep"],
}


def run(context: RunContext) -> dict[str, float]:
    seconds = float(context.params["sleep"]["seconds"])
    time.sleep(seconds)
    return {"slept": seconds}


WORKFLOW = Workflow(name="wt-test-slow-workflow", params_schema=SCHEMA, run=run)


def main() -> int:
    return kit_main(WORKFLOW)
