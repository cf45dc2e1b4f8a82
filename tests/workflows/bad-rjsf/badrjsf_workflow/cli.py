"""Its `get rjsf` prints something that is not JSON; everything else is fine."""

from __future__ import annotations

import sys

from wtrunner.workflow_kit import Workflow
from wtrunner.workflow_kit import main as kit_main

WORKFLOW = Workflow(
    name="wt-test-badrjsf-workflow",
    params_schema={"type": "object"},
    run=lambda context: {"ok": True},
)


def main() -> int:
    if sys.argv[1:3] == ["get", "rjsf"]:
        print("{'this': is not JSON")
        return 0
    return kit_main(WORKFLOW)
