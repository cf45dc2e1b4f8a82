"""The route table: every operation wtrunner serves, registered in one place."""

from __future__ import annotations

import functools
from typing import Any

import aiohttp_cors
from aiohttp import web

from ..keys import SETTINGS
from ..pubsub.messages import PushEnvelope, PushResponse
from ..runstore import RunRecord
from . import catalogue, console, health, metadata, pubsub, run_resources, runs
from .cors import cors_options
from .models import (
    ErrorResponse,
    MetricsText,
    NoContent,
    OpenAPIDocument,
    ReadinessResponse,
    RequestErrorResponse,
    ResponseModel,
    StatusResponse,
    ValidationErrorResponse,
)
from .openapi import build_openapi
from .operations import Access, Operation, ResponseModels, error_responses


async def openapi_document(request: web.Request) -> web.Response:
    """``GET /openapi.json``: the OpenAPI 3.1 document of this service."""
    return web.json_response(_openapi())


_SCHEMA_422: dict[int, ResponseModels] = {422: (RequestErrorResponse, ValidationErrorResponse)}
_METADATA_RESPONSES: dict[int, ResponseModels] = {
    200: (metadata.JsonObject,),
    **error_responses(404, 422, 500, 502, 503),
}
_CONVERSION_RESPONSES: dict[int, ResponseModels] = {
    200: (metadata.JsonObject,),
    **error_responses(404, 413, 500, 502, 503),
    **_SCHEMA_422,
}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "POST",
        "/",
        runs.run_workflow,
        "Run a workflow and answer with its result",
        {
            200: (ResponseModel,),
            202: (ResponseModel, RunRecord),
            **error_responses(404, 409, 413, 502, 503),
            **_SCHEMA_422,
            500: (ResponseModel, ErrorResponse),
        },
        query=runs.RunQuery,
        headers=runs.TraceHeaders,
        body=runs.RunBody,
        tags=("runs",),
        access=Access.RUN,
    ),
    Operation(
        "POST",
        "/runs",
        runs.submit_run,
        "Start a run in the background; 202 with the run and its Location",
        {
            200: (RunRecord,),
            202: (RunRecord,),
            **error_responses(404, 409, 413, 500, 502, 503),
            **_SCHEMA_422,
        },
        query=runs.RunQuery,
        headers=runs.TraceHeaders,
        body=runs.RunBody,
        tags=("runs",),
        access=Access.RUN,
    ),
    Operation(
        "GET",
        "/runs",
        run_resources.list_runs,
        "Recorded runs, newest first, filtered, a page at a time",
        {200: (run_resources.RunList,), **error_responses(422, 500)},
        query=run_resources.RunListQuery,
        tags=("runs",),
    ),
    Operation(
        "GET",
        "/runs/{run_id}",
        run_resources.get_run,
        "One run; with wait=S, once it has ended or S seconds passed",
        {200: (RunRecord,), **error_responses(404, 422, 500)},
        path_params=run_resources.RunPath,
        query=run_resources.RunQuery,
        tags=("runs",),
    ),
    Operation(
        "GET",
        "/runs/{run_id}/logs",
        run_resources.get_logs,
        "The workflow's stdout and stderr as text; follow=1 streams them while the run lasts",
        {200: (run_resources.LogsText,), **error_responses(404, 422, 500)},
        path_params=run_resources.RunPath,
        query=run_resources.LogsQuery,
        tags=("runs",),
        success_content_type="text/plain",
    ),
    Operation(
        "POST",
        "/runs/{run_id}/cancel",
        run_resources.cancel_run,
        "Cancel a run (its process group is ended); 409 once it has ended",
        {202: (RunRecord,), **error_responses(404, 409, 500)},
        path_params=run_resources.RunPath,
        tags=("runs",),
        access=Access.RUN,
    ),
    Operation(
        "DELETE",
        "/runs/{run_id}",
        run_resources.delete_run,
        "Forget a finished run: its record and logs",
        {204: (NoContent,), **error_responses(404, 409, 500)},
        path_params=run_resources.RunPath,
        tags=("runs",),
        access=Access.RUN,
    ),
    Operation(
        "POST",
        "/run-from-pubsub",
        pubsub.run_from_pubsub,
        "Run a RunWorkflow command pushed by Pub/Sub",
        {200: (PushResponse,), **error_responses(413, 500, 503)},
        body=PushEnvelope,
        tags=("runs",),
        access=Access.PUSH,
    ),
    Operation(
        "GET",
        "/workflows",
        catalogue.list_workflows,
        "The workflow packages this server can run, newest version first",
        {200: (catalogue.WorkflowList,), **error_responses(500)},
        tags=("workflows",),
    ),
    Operation(
        "GET",
        "/workflows/{name}",
        catalogue.get_workflow,
        "Every version and build of one workflow package",
        {200: (catalogue.WorkflowDetail,), **error_responses(404, 422, 500, 503)},
        path_params=catalogue.WorkflowPath,
        tags=("workflows",),
    ),
    Operation(
        "GET",
        "/rjsf",
        metadata.get_rjsf,
        "The workflow's React JSON Schema Form",
        _METADATA_RESPONSES,
        query=metadata.MetadataQuery,
        tags=("metadata",),
    ),
    Operation(
        "GET",
        "/params",
        metadata.get_params_schema,
        "The JSON Schema of the workflow's params",
        _METADATA_RESPONSES,
        query=metadata.MetadataQuery,
        tags=("metadata",),
    ),
    Operation(
        "GET",
        "/data-connection-property-names",
        metadata.get_data_connection_property_names,
        "The workflow's data connection properties",
        _METADATA_RESPONSES,
        query=metadata.MetadataQuery,
        tags=("metadata",),
    ),
    Operation(
        "POST",
        "/formdata-to-params",
        metadata.formdata_to_params,
        "Convert hierarchical form data to flat params",
        _CONVERSION_RESPONSES,
        query=metadata.MetadataQuery,
        body=metadata.JsonObject,
        tags=("metadata",),
    ),
    Operation(
        "POST",
        "/params-to-formdata",
        metadata.params_to_formdata,
        "Convert flat params to hierarchical form data",
        _CONVERSION_RESPONSES,
        query=metadata.MetadataQuery,
        body=metadata.JsonObject,
        tags=("metadata",),
    ),
    Operation(
        "GET",
        "/",
        health.health,
        "Health check",
        {200: (StatusResponse,)},
        tags=("health",),
        access=Access.OPEN,
    ),
    Operation(
        "GET",
        "/livez",
        health.livez,
        "Liveness probe",
        {200: (StatusResponse,)},
        tags=("health",),
        access=Access.OPEN,
    ),
    Operation(
        "GET",
        "/readyz",
        health.readyz,
        "Readiness probe (503 once shutdown has begun)",
        {200: (ReadinessResponse,), 503: (ReadinessResponse,)},
        tags=("health",),
        access=Access.OPEN,
    ),
    Operation(
        "GET",
        "/metrics",
        health.metrics,
        "Prometheus metrics",
        {200: (MetricsText,)},
        tags=("health",),
        success_content_type="text/plain",
        access=Access.METRICS,
    ),
    Operation(
        "GET",
        "/openapi.json",
        openapi_document,
        "This OpenAPI document",
        {200: (OpenAPIDocument,), **error_responses(500)},
        tags=("meta",),
        access=Access.OPEN,
    ),
)


@functools.cache
def _openapi() -> dict[str, Any]:
    return build_openapi(OPERATIONS)


def setup_routes(app: web.Application) -> None:
    """Register every operation, with CORS for the allowed origins (see :mod:`.cors`)."""
    cors = aiohttp_cors.setup(app, defaults=cors_options(app[SETTINGS]))
    for op in OPERATIONS:
        cors.add(app.router.add_route(op.method, op.path, op.handler, name=op.handler.__name__))
    console.setup_console(app)  # the web console's pages: same origin only, not in the API
