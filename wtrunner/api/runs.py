"""``POST /``: run a workflow and answer with its result (the spec's main endpoint)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ..contract import ExecutionMode
from ..errors import Location, RequestValidationError
from ..invoker_names import DEFAULT_INVOKER
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
from ..run_request import (
    LithopsConfig,
    OutcomeKind,
    RunInput,
    RunOutcome,
    RunRequest,
    build_run_request,
)
from .parsing import parse_json_body, parse_mapping

log = logging.getLogger(__name__)

JOB_HEADER = "X-Batch-Job"
RUN_ID_HEADER = "X-Run-ID"
Placer = Callable[[Location], Location]
# Fields existing clients send in the query string that may come in the body too (both places
# with different values: 422); the first three are required in one of them.
_REQUIRED_EITHER_PLACE = ("execution_mode", "mock_io", "results_url")
_EITHER_PLACE = (
    *_REQUIRED_EITHER_PLACE, "timeout", "invoker_type", "workflow_run_id", "docker_image_uri"
)  # fmt: skip
_STATUS = {OutcomeKind.OK: 200, OutcomeKind.ACCEPTED: 202}
# Unknown body keys already logged (old clients send extras: accepted, noted once per key).
_logged_extra_keys: set[str] = set()


class RunQuery(BaseModel):
    """Query parameters of ``POST /``."""

    model_config = ConfigDict(extra="ignore")

    matchspec: str | None = Field(
        None, description="conda MatchSpec of the workflow package (required unless overridden)"
    )
    invoker_type: str | None = Field(
        None, description=f"invoker back end (default {DEFAULT_INVOKER}); also in the body"
    )
    workflow_run_id: str | None = Field(
        None, description="identifier of this run; also in the body"
    )
    timeout: float | None = Field(
        None, gt=0, description="maximum run time in seconds; also in the body"
    )
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
    """W3C trace context headers, and the key that names a run without a workflow_run_id."""

    model_config = ConfigDict(populate_by_name=True)

    traceparent: str | None = Field(None, description="W3C trace context parent")
    tracestate: str | None = Field(None, description="W3C trace context state")
    idempotency_key: str | None = Field(
        None,
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="names the run (when workflow_run_id is empty): the same key again "
        "returns that run instead of starting another",
    )


class RunBody(BaseModel):
    """JSON body of ``POST /``."""

    model_config = ConfigDict(extra="allow")

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
    timeout: float | None = Field(None, gt=0, description="also accepted in the query")
    invoker_type: str | None = Field(None, description="also accepted in the query")
    workflow_run_id: str | None = Field(None, description="also accepted in the query")
    docker_image_uri: ImageUri = None


def _merge(query: RunQuery, body: RunBody) -> tuple[dict[str, Any], dict[str, str]]:
    """Each field that may come in either place, from wherever it was given, once; and where
    each came from (``query`` or ``body``) to place errors about it."""
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
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
        elif in_query is None and in_body is None and name in _REQUIRED_EITHER_PLACE:
            problems.append({"type": "missing", "loc": ["body", name], "msg": "Field required"})
        merged[name] = in_body if in_body is not None else in_query
        origin[name] = "query" if in_body is None else "body"
    if problems:
        raise RequestValidationError(problems)
    return merged, origin


def _log_extra_keys(body: RunBody) -> None:
    for key in sorted((body.model_extra or {}).keys() - _logged_extra_keys):
        _logged_extra_keys.add(key)
        log.info("POST / body key %r is not part of the API and is ignored", key)


def _placer(origin: dict[str, str]) -> Placer:
    def place(loc: Location) -> Location:
        if loc and loc[0] in ("query", "body", "header"):
            return loc
        name = str(loc[0]) if loc else ""
        return [origin.get(name, "query" if name in RunQuery.model_fields else "body"), *loc]

    return place


async def _parse(request: web.Request) -> tuple[RunInput, dict[str, str]]:
    """Query, headers and body of ``POST /`` as one RunInput (every problem in one 422), and
    where each field came from."""
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
    _log_extra_keys(body)
    merged, origin = _merge(query, body)
    options = {key: getattr(query, key) for key in BATCH_OPTION_KEYS}
    options["docker_image_uri"] = merged["docker_image_uri"]
    given = RunInput(
        matchspec=query.matchspec,
        invoker_type=merged["invoker_type"] or DEFAULT_INVOKER,
        workflow_run_id=merged["workflow_run_id"] or "",
        params=body.params,
        execution_mode=merged["execution_mode"],
        mock_io=merged["mock_io"],
        results_url=merged["results_url"],
        data_connections_env_vars=body.data_connections_env_vars or {},
        lithops_config=body.lithops_config,
        timeout=merged["timeout"],
        traceparent=headers.traceparent,
        tracestate=headers.tracestate,
        idempotency_key=headers.idempotency_key,
        invoker_options={key: value for key, value in options.items() if value is not None},
    )
    return given, origin


def _trace_headers(request: web.Request) -> dict[str, str]:
    return {
        name: request.headers[name]
        for name in ("traceparent", "tracestate", "Idempotency-Key")
        if name in request.headers
    }


def outcome_status(outcome: RunOutcome) -> int:
    """The spec's status for an outcome: 200 with a result, 202 accepted elsewhere, else 500."""
    return _STATUS.get(outcome.kind, 500)


def outcome_response(outcome: RunOutcome) -> web.Response:
    """The spec's answer for an outcome: its status and ``{"result", "error", "trace"}``, with
    the remote job's name (a Cloud Batch job's, a Cloud Run execution's) in ``X-Batch-Job``
    when it was accepted there."""
    headers = {JOB_HEADER: outcome.job_name} if outcome.job_name else {}
    return web.json_response(outcome.body(), status=outcome_status(outcome), headers=headers)


async def parse_run(request: web.Request) -> tuple[RunRequest, Placer]:
    """``POST /`` or ``POST /runs``: the checked RunRequest, and the placer for later errors."""
    given, origin = await _parse(request)
    place = _placer(origin)
    try:
        return build_run_request(request.app[SETTINGS], given), place
    except RequestValidationError as exc:
        raise exc.placed(place) from None


def wants_async(request: web.Request) -> bool:
    """Whether the client asked for an answer before the run ends (``Prefer: respond-async``)."""
    preferences = ",".join(request.headers.getall("Prefer", []))
    return any(item.strip().lower() == "respond-async" for item in preferences.split(","))


async def submit_run(request: web.Request) -> web.Response:
    """``POST /runs`` (and ``POST /`` with ``Prefer: respond-async``): check and record the run,
    start it in the background, answer 202 with the run and ``Location: /runs/{id}``."""
    run_request, place = await parse_run(request)
    try:
        record, created = await request.app[RUNS].submit(run_request, "run-endpoint", "http")
    except RequestValidationError as exc:
        raise exc.placed(place) from None
    location = f"/runs/{record.id}"
    return web.json_response(
        record.model_dump(mode="json"),
        status=202 if created else 200,
        headers={"Location": location, RUN_ID_HEADER: record.id},
    )


async def run_workflow(request: web.Request) -> web.Response:
    """``POST /``: run the workflow; 200 with its result, 202 when accepted elsewhere, 500 when
    it failed (its error and trace in the body), or the errors of the README's table. The run is
    recorded: its id is in ``X-Run-ID``. With ``Prefer: respond-async``: as ``POST /runs``."""
    if wants_async(request):
        return await submit_run(request)
    run_request, place = await parse_run(request)
    try:
        outcome = await request.app[RUNS].run(run_request, "run-endpoint", front_door="http")
    except RequestValidationError as exc:
        raise exc.placed(place) from None
    response = outcome_response(outcome)
    response.headers[RUN_ID_HEADER] = outcome.run_id or run_request.run_id
    return response
