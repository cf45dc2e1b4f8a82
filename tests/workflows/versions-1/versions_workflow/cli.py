"""Returns the version of the package that ran."""

from wtrunner.workflow_kit import Workflow
from wtrunner.workflow_kit import main as kit_main

VERSION = "1.0.0"

WORKFLOW = Workflow(
    name="wt-test-versions-workflow",
    params_schema={"type": "object"},
    run=lambda context: {"version": VERSION, "params": context.params},
)


def main() -> int:
    return kit_main(WORKFLOW)
