"""Build the OpenAPI 3.1 document from the route table's pydantic models."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from ..text import first_line
from ..version import __version__
from .models import ErrorResponse
from .operations import Access, Operation, ResponseModels

REF_TEMPLATE = "#/components/schemas/{model}"
SECURITY_SCHEME = "bearerAuth"
# The scope each access rule needs (OpenAPI 3.1 lets an http scheme's requirement name roles).
_SCOPE = {Access.READ: "read", Access.RUN: "run", Access.METRICS: "read", Access.PUSH: "run"}
_BEARER = {
    "type": "http",
    "scheme": "bearer",
    "description": "A token of WTRUNNER_AUTH_TOKENS_FILE, a JWT of an issuer of "
    "WTRUNNER_OIDC_ISSUERS, or on /run-from-pubsub a Google-signed Pub/Sub push token. Only "
    "required when authentication is configured; each operation names the scope it needs "
    "(run, read; admin has both, on everyone's runs).",
}
_REFUSALS = {
    401: "Authentication required, or the token presented was refused",
    403: "The caller lacks the scope this needs, or is not a caller of this server",
    415: "The body is not JSON (Content-Type: application/json)",
    421: "A Host this server does not answer to (it listens on loopback: DNS rebinding)",
}
_CHALLENGE = {
    "WWW-Authenticate": {
        "description": 'Bearer realm="wtrunner", with error="invalid_token" when the token '
        "presented was refused",
        "schema": {"type": "string"},
    }
}


def build_openapi(operations: Iterable[Operation]) -> dict[str, Any]:
    """An OpenAPI 3.1 document describing every operation, with shared component schemas."""
    operations = list(operations)
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for op in operations:
        if op.body is not None:
            models.append((op.body, "validation"))
        for response_models in responses_of(op).values():
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
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {SECURITY_SCHEME: _BEARER},
        },
    }


def responses_of(op: Operation) -> dict[int, ResponseModels]:
    """Every answer ``op`` can give: its own, and the refusals of the guards in front of it
    (415 for a POST body that is not JSON; 401, 403 and 421 for a guarded operation)."""
    refusals: dict[int, ResponseModels] = {}
    if op.method == "POST":
        refusals[415] = (ErrorResponse,)
    if op.access is not Access.OPEN:
        refusals.update({401: (ErrorResponse,), 403: (ErrorResponse,), 421: (ErrorResponse,)})
    return {**refusals, **op.responses}


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
    if op.access is not Access.OPEN:
        requirement = {SECURITY_SCHEME: [_SCOPE[op.access]]}
        # /metrics is open unless WTRUNNER_METRICS_AUTH is set
        document["security"] = [{}, requirement] if op.access is Access.METRICS else [requirement]
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
    for status, response_models in sorted(responses_of(op).items()):
        schemas = [refs[(model, "serialization")] for model in response_models]
        schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
        description = first_line(response_models[0].__doc__ or "") or str(status)
        if status in _REFUSALS and status not in op.responses:
            description = _REFUSALS[status]
        if status == 204:  # no body
            document["responses"]["204"] = {"description": description}
            continue
        media_type = op.success_content_type if status == 200 else "application/json"
        document["responses"][str(status)] = {
            "description": description,
            "content": {media_type: {"schema": schema}},
        }
        if status == 401:
            document["responses"]["401"]["headers"] = _CHALLENGE
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
