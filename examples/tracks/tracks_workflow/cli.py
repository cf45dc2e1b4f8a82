"""The command line of wt-example-tracks-workflow (the contract of `wtrunner/contract.py`)."""

from __future__ import annotations

import os
from importlib import resources
from typing import Any

from wtrunner.workflow_kit import RunContext, Workflow
from wtrunner.workflow_kit import main as kit_main

from .summaries import read_fixes_csv, summarize

FIX = {
    "type": "object",
    "title": "GPS fix",
    "properties": {
        "animal_id": {"type": "string", "minLength": 1},
        "time": {"type": "string", "format": "date-time", "description": "ISO 8601"},
        "lat": {"type": "number", "minimum": -90, "maximum": 90},
        "lon": {"type": "number", "minimum": -180, "maximum": 180},
    },
    "required": ["animal_id", "time", "lat", "lon"],
    "additionalProperties": False,
}

PARAMS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Movement summaries",
    "type": "object",
    "properties": {
        "workflow_details": {
            "type": "object",
            "title": "Workflow details",
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "description": {"type": "string", "default": ""},
            },
            "required": ["name"],
            "additionalProperties": False,
        },
        "get_fixes": {
            "type": "object",
            "title": "GPS fixes",
            "description": "Fixes given inline, or read through a tracks data connection.",
            "properties": {
                "connection": {
                    "type": "object",
                    "title": "Data connection",
                    "properties": {"name": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"}},
                    "required": ["name"],
                    "additionalProperties": False,
                },
                "fixes": {"type": "array", "items": {"$ref": "#/$defs/Fix"}},
            },
            "additionalProperties": False,
        },
        "summarize": {
            "type": "object",
            "title": "Summaries",
            "properties": {
                "speed_unit": {"enum": ["km/h", "m/s"], "default": "km/h"},
                "max_speed_kmh": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "default": 120,
                    "description": "Faster steps are dropped as GPS errors.",
                },
            },
            "additionalProperties": False,
        },
    },
    "required": ["workflow_details", "get_fixes"],
    "additionalProperties": False,
    "$defs": {"Fix": FIX},
}


def connection_env_prefix(name: str) -> str:
    """Variables of the tracks connection ``name``: ``<prefix>URL`` and ``<prefix>TOKEN``."""
    return f"WT_CONNECTIONS__TRACKS__{name.upper()}__"


def _read_connection(name: str) -> tuple[list[dict[str, Any]], str]:
    import obstore
    from obstore.store import from_url

    prefix = connection_env_prefix(name)
    url = os.environ.get(f"{prefix}URL")
    if not url:
        raise RuntimeError(f"data connection {name!r} is not configured: {prefix}URL is not set")
    token = os.environ.get(f"{prefix}TOKEN")
    directory, _, filename = url.rpartition("/")
    options = {"bearer_token": token} if token and not url.startswith("file://") else {}
    store = from_url(directory, **options)
    text = bytes(obstore.get(store, filename).bytes()).decode()
    return read_fixes_csv(text), f"connection {name}"


def run(context: RunContext) -> dict[str, Any]:
    """Load the fixes (sample data under --mock-io) and summarize them per animal."""
    get_fixes = context.task_params("get_fixes")
    if context.mock_io:
        sample = resources.files(__package__).joinpath("sample_fixes.csv").read_text()
        fixes, source = read_fixes_csv(sample), "sample data"
    elif "fixes" in get_fixes:
        fixes, source = get_fixes["fixes"], "params"
    elif "connection" in get_fixes:
        fixes, source = _read_connection(get_fixes["connection"]["name"])
    else:
        raise ValueError("get_fixes needs 'fixes' or a 'connection' (or run with --mock-io)")
    if not fixes:
        raise ValueError("no GPS fixes to summarize")
    options = context.task_params("summarize")
    summary = summarize(
        fixes,
        speed_unit=options.get("speed_unit", "km/h"),
        max_speed_kmh=options.get("max_speed_kmh", 120.0),
    )
    details = context.task_params("workflow_details")
    return {"workflow": details.get("name"), "source": source, **summary}


WORKFLOW = Workflow(
    name="wt-example-tracks-workflow",
    title="Movement summaries",
    description="Per-animal distance and speed from GPS fixes.",
    params_schema=PARAMS_SCHEMA,
    run=run,
    form_sections={
        "Workflow Details": ["workflow_details"],
        "Data": ["get_fixes"],
        "Analysis": ["summarize"],
    },
    ui_schema={"ui:order": ["Workflow Details", "Data", "Analysis"]},
    data_connections={"TracksConnection": ["get_fixes"]},
)


def main() -> int:
    """Entry point of bin/wt-example-tracks-workflow."""
    return kit_main(WORKFLOW)
