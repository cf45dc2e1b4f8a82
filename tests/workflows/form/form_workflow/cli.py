"""A form for the web console's tests: a required field, an enum, a number with a minimum, a
uiSchema widget, an optional model in ``$defs`` (``anyOf`` of a ``$ref`` and null, the shape
pydantic gives ``Optional[Model]``), a field asked for only in a wetland (``if``/``then``),
and one rule its form does not show: ``get rjsf`` leaves out the pattern of the site code that
``convert`` enforces (as a package whose form is looser than its checks), so only the server
finds that mistake."""

from __future__ import annotations

import copy
from typing import Any

from wtrunner.workflow_kit import RunContext, Workflow
from wtrunner.workflow_kit import main as kit_main

SITE_PATTERN = "^[A-Z]{3}$"
SECTION = "Field survey"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "survey": {
            "type": "object",
            "title": "Survey",
            "properties": {
                "site": {
                    "type": "string",
                    "title": "Site code",
                    "description": "three capital letters",
                    "pattern": SITE_PATTERN,
                },
                "habitat": {
                    "type": "string",
                    "title": "Habitat",
                    "enum": ["forest", "savanna", "wetland"],
                },
                "count": {"type": "integer", "title": "Animals counted", "minimum": 0},
                "notes": {"type": "string", "title": "Notes"},
                "observer": {
                    "anyOf": [{"$ref": "#/$defs/Observer"}, {"type": "null"}],
                    "title": "Observer",
                    "default": None,
                },
            },
            "required": ["site", "habitat", "count"],
            # no additionalProperties: False here, which would refuse the depth "then" adds
            "if": {"properties": {"habitat": {"const": "wetland"}}, "required": ["habitat"]},
            "then": {
                "properties": {
                    "depth": {"type": "number", "title": "Water depth (m)", "minimum": 0},
                },
                "required": ["depth"],
            },
        },
    },
    "required": ["survey"],
    "additionalProperties": False,
    "$defs": {
        "Observer": {
            "type": "object",
            "title": "Observer",
            "properties": {"name": {"type": "string", "title": "Observer name", "minLength": 2}},
            "required": ["name"],
        },
    },
}


class LooseFormWorkflow(Workflow):
    """Its form (``get rjsf``) lacks the site code's pattern; ``convert`` still checks it."""

    def rjsf(self) -> dict[str, Any]:
        document = copy.deepcopy(super().rjsf())
        survey = document["properties"][SECTION]["properties"]["survey"]
        del survey["properties"]["site"]["pattern"]
        return document

    def form_schema(self) -> dict[str, Any]:
        strict = Workflow.rjsf(self)
        return {key: value for key, value in strict.items() if key != "uiSchema"}


def run(context: RunContext) -> dict[str, Any]:
    survey = context.task_params("survey")
    return {"survey": survey, "mock_io": context.mock_io}


WORKFLOW = LooseFormWorkflow(
    name="wt-test-form-workflow",
    title="Survey counts",
    description="Counts of one site",
    params_schema=SCHEMA,
    run=run,
    form_sections={SECTION: ["survey"]},
    ui_schema={
        SECTION: {
            "survey": {
                "ui:order": ["site", "habitat", "*", "notes", "observer"],
                "notes": {"ui:widget": "textarea"},
            }
        }
    },
)


def main() -> int:
    return kit_main(WORKFLOW)
