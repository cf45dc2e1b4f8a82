"""An old-style package: its `get rjsf` prints something that is not JSON, and its `convert`
prints validation error items without an `input` key (as packages built before that key
existed do); `run` and `get params` are fine."""

from __future__ import annotations

import json
import sys

from wtrunner.workflow_kit import Workflow
from wtrunner.workflow_kit import main as kit_main

WORKFLOW = Workflow(
    name="wt-test-badrjsf-workflow",
    params_schema={"type": "object"},
    run=lambda context: {"ok": True},
)
OLD_STYLE_ITEM = {
    "message": "'name' is a required property",
    "path": ["workflow_details"],
    "schema_path": ["properties", "workflow_details", "required"],
    "validator": "required",
}


def main() -> int:
    if sys.argv[1:3] == ["get", "rjsf"]:
        print("{'this': is not JSON")
        return 0
    if sys.argv[1:2] == ["convert"]:
        json.load(sys.stdin)
        print(json.dumps({"validation_errors": [OLD_STYLE_ITEM]}))
        return 0
    return kit_main(WORKFLOW)
