"""``POST /``: run a workflow and answer with its result (the spec's main endpoint)."""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ..errors import RequestValidationError
from ..invokers import INVOKERS
from ..invokers.batch_options import (
    BATCH_OPTION_KEYS,
    CpuMilli,
    GpuCount,
    GpuType,
    ImageUri,
    MachineType,
    MemoryMib,
)
from ..keys import RUNS, SETTINGS
from ..run_request import LithopsConfig, RunRequest, build_run_request
from ..tracing import parent_context
from .parsing import parse_json_body, parse_mapping

ExecutionMode = Literal["async", "sequential"]
# Fields existing clients send in the query string and the spec puts in the body.
_EITHER_PLACE = ("execution_mode", "mock_io", "results_url")


class RunQuery(BaseModel):
    """Query parameters of ``POST /``."""

    model_config = ConfigDict(extra="ignore")

    matchspec: str | None = Field(
        None, description="conda MatchSpec of the workflow package (required unless overridden)"
    )
    invoker_type: str = Field("BlockingLocalSubprocessInvoker", description="invoker back end")
    workflow_run_id: str = Field("", description="identifier of this run")
    timeout: float | None = Field(None, gt=0, description="maximum run time in seconds")
    docker_image_uri: ImageUri = None
    cpu_milli: CpuMilli = None
    memory_mib: MemoryMib = None
    machine_type: MachineType = None
    gpu_type: GpuType = None
    gpu_count: GpuCount = None
    execution_mode: ExecutionMode | None = Field(None, description="also accepted in the body")
    mock_io: bool | None = Field(None, description="also accepted in the body")
    results_url: str | None = Field(None, description="also accepted in the body")


class TraceHeaders(BaseModel):
    """W3C trace context headers."""

    traceparent: str | None = Field(None, description="W3C trace context parent")
    tracestate: str | None = Field(None, description="W3C trace context state")


class RunBody(BaseModel):
    """JSON body of ``POST /``."""

    model_config = ConfigDict(extra="ignore")

    params: dict[str, Any] = Field(description="task parameters keyed by task instance id")
    execution_mode: ExecutionMode | None = None
    mock_io: bool | None = None
    results_url: str | None = Field(
        None, description="where result.json is written: an absolute path or a URL"
    )
    data_connections_env_vars: dict[str, SecretStr] | None = Field(
        None, description="environment variables for data connections (secrets)"
    )
    lithops_config: LithopsConfig | None = None


def _merge(query: RunQuery, body: RunBody) -> dict[str, Any]:
    """Each of execution_mode, mock_io, results_url from wherever it was given, once."""
    merged: dict[str, Any] = {}
    problems = []
    for name in _EITHER_PLACE:
        in_query, in_body = getattr(query, name), getattr(body, name)
        if in_query is not None and in_body is not None and in_query != in_body:
            problems.append(
                {
                    "type": "conflict",
                    "loc": ["query", name],
                    "msg": f"differs from body.{name}; give it once",
                    "input": in_query,
                }
            )
        elif in_query is None and in_body is None:
            problems.append({"type": "missing", "loc": ["body", name], "msg": "Field required"})
        merged[name] = in_body if in_body is not None else in_query
    if problems:
        raise RequestValidationError(problems)
    return merged


async def parse_run_request(request: web.Request) -> RunRequest:
    """Query, headers and body of ``POST /`` as one RunRequest (every problem in one 422)."""
    problems: list[dict[str, Any]] = []
    parsed: dict[str, Any] = {}
    for name, parse in (
        ("query", lambda: parse_mapping(request.query, RunQuery, "query")),
        ("headers", lambda: parse_mapping(_trace_headers(request), TraceHeaders, "header")),
    ):
        try:
            parsed[name] = parse()
        except RequestValidationError as exc:
            problems += exc.detail
    try:
        parsed["body"] = await parse_json_body(request, RunBody)
    except RequestValidationError as exc:
        problems += exc.detail
    if problems:
        raise RequestValidationError(problems)
    query: RunQuery = parsed["query"]
    body: RunBody = parsed["body"]
    headers: TraceHeaders = parsed["headers"]
    merged = _merge(query, body)
    options = {
        key: getattr(query, key) for key in BATCH_OPTION_KEYS if getattr(query, key) is not None
    }
    return build_run_request(
        request.app[SETTINGS],
        matchspec=query.matchspec,
        invoker_type=query.invoker_type,
        known_invokers=frozenset(INVOKERS),
        workflow_run_id=query.workflow_run_id,
        params=body.params,
        execution_mode=merged["execution_mode"],
        mock_io=merged["mock_io"],
        results_url=merged["results_url"],
        data_connections_env_vars=body.data_connections_env_vars,
        lithops_config=body.lithops_config,
        timeout=query.timeout,
        traceparent=headers.traceparent,
        tracestate=headers.tracestate,
        invoker_options=options,
        locs={
            "matchspec": ["query", "matchspec"],
            "invoker_type": ["query", "invoker_type"],
            "results_url": ["query" if body.results_url is None else "body", "results_url"],
            "data_connections_env_vars": ["body", "data_connections_env_vars"],
        },
    )


def _trace_headers(request: web.Request) -> dict[str, str]:
    return {
        name: request.headers[name]
        for name in ("traceparent", "tracestate")
        if name in request.headers
    }


async def run_workflow(request: web.Request) -> web.Response:
    """``POST /``: run the workflow; 200 with its result, 202 when accepted elsewhere, 500 when
    it failed (its error and trace in the body), or the error of design §8."""
    run_request = await parse_run_request(request)
    parent = parent_context(run_request.traceparent, run_request.tracestate)
    outcome = await request.app[RUNS].run(run_request, "run-endpoint", parent)
    return web.json_response(outcome.body(), status=outcome.status, headers=outcome.headers)
