"""Its result is a list, not an object."""

from wtrunner.workflow_kit import Workflow
from wtrunner.workflow_kit import main as kit_main

WORKFLOW = Workflow(
    name="wt-test-list-workflow",
    params_schema={"type": "object"},
    run=lambda context: [1, "two", {"three": 3}],
)


def main() -> int:
    return kit_main(WORKFLOW)
