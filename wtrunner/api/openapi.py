"""Build the OpenAPI 3.1 document from the route table's pydantic models."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from ..text import first_line
from ..version import __version__
from .operations import Operation

REF_TEMPLATE = "#/components/schemas/{model}"


def build_openapi(operations: Iterable[Operation]) -> dict[str, Any]:
    """An OpenAPI 3.1 document describing every operation, with shared component schemas."""
    operations = list(operations)
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for op in operations:
        if op.body is not None:
            models.append((op.body, "validation"))
        for response_models in op.responses.values():
            models.extend((model, "serialization") for model in response_models)
    refs, definitions = models_json_schema(_unique(models), ref_template=REF_TEMPLATE)

    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "wtrunner",
            "version": __version__,
            "description": "Runs compiled workflow packages named by a conda MatchSpec.",
        },
        "paths": paths,
        "components": {"schemas": definitions.get("$defs", {})},
    }


def _unique(
    models: list[tuple[type[BaseModel], JsonSchemaMode]],
) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    return list(dict.fromkeys(models))


def _operation(op: Operation, refs: Mapping[Any, dict[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {
        "operationId": f"{op.handler.__name__}",
        "summary": op.summary,
        "responses": {},
    }
    if op.tags:
        document["tags"] = list(op.tags)
    parameters = (
        _parameters(op.path_params, "path")
        + _parameters(op.query, "query")
        + _parameters(op.headers, "header")
    )
    if parameters:
        document["parameters"] = parameters
    if op.body is not None:
        document["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
        }
    for status, response_models in sorted(op.responses.items()):
        schemas = [refs[(model, "serialization")] for model in response_models]
        schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
        description = first_line(response_models[0].__doc__ or "") or str(status)
        if status == 204:  # no body
            document["responses"]["204"] = {"description": description}
            continue
        media_type = op.success_content_type if status == 200 else "application/json"
        document["responses"][str(status)] = {
            "description": description,
            "content": {media_type: {"schema": schema}},
        }
    return document


def _parameters(model: type[BaseModel] | None, location: str) -> list[dict[str, Any]]:
    if model is None:
        return []
    schema = model.model_json_schema(ref_template=REF_TEMPLATE)
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        description = prop.pop("description", None)
        parameter: dict[str, Any] = {
            "name": name,
            "in": location,
            "required": name in required or location == "path",
            "schema": prop,
        }
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters
