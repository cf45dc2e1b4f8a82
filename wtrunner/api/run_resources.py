"""Runs as resources: ``/runs`` lists them, ``/runs/{id}`` is one (long-poll with ``wait``),
``POST /runs/{id}/cancel`` ends one, ``DELETE /runs/{id}`` forgets a finished one.

With authentication on, a caller without the admin scope sees and acts on its own runs only
(the runs recorded with its name as ``client``); another's run is a 404 as if it did not exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import anyio.to_thread
from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, RootModel

from ..auth.identity import may_see, visible_client
from ..errors import RequestValidationError
from ..keys import RUNS, SETTINGS
from ..run_states import InvalidTransition, RunState
from ..runlogs import STREAMS, Stream, log_path, logs_dir, read_tail_lines
from ..runs import RunService
from ..runstore import RunNotFound, RunRecord
from .log_proxy import PROXIED_HEADER, proxy_logs
from .parsing import parse_mapping

MAX_WAIT_SECONDS = 60.0
FOLLOW_POLL_SECONDS = 0.25
FOLLOW_CHUNK_BYTES = 1024 * 1024
MAX_LIMIT = 500


class RunPath(BaseModel):
    """Path parameters of ``/runs/{run_id}``."""

    run_id: str = Field(description="the run's id (from POST /runs or X-Run-ID)")


class RunQuery(BaseModel):
    """Query parameters of ``GET /runs/{run_id}``."""

    model_config = ConfigDict(extra="ignore")

    wait: float | None = Field(
        None, ge=0, le=MAX_WAIT_SECONDS,
        description=f"wait up to this many seconds (≤ {MAX_WAIT_SECONDS:g}) for a final state",
    )  # fmt: skip


class RunListQuery(BaseModel):
    """Query parameters of ``GET /runs``: filters and cursor pagination, newest first."""

    model_config = ConfigDict(extra="ignore")

    state: RunState | None = Field(None, description="only runs in this state")
    package: str | None = Field(None, description="only runs of this workflow package")
    workflow_run_id: str | None = Field(None, description="only runs with this client run id")
    since: AwareDatetime | None = Field(
        None, description="only runs created at or after this time (with its time zone)"
    )
    limit: int = Field(100, ge=1, le=MAX_LIMIT, description=f"page size (≤ {MAX_LIMIT})")
    cursor: str | None = Field(None, description="the page after the one that gave this cursor")


class LogsQuery(BaseModel):
    """Query parameters of ``GET /runs/{run_id}/logs``."""

    model_config = ConfigDict(extra="ignore")

    stream: Literal["stdout", "stderr", "both"] = Field(
        "both", description="which output (both: stdout, then stderr)"
    )
    tail: int | None = Field(None, ge=0, description="only the last N lines of each stream")
    follow: bool = Field(False, description="keep streaming new output until the run ends")


class LogsText(RootModel[str]):
    """The workflow's output as text (secrets masked)."""


class RunList(BaseModel):
    """A page of runs, newest first; ``next`` is the URL of the next page (null at the end)."""

    runs: list[RunRecord]
    next: str | None = None


def _record(record: RunRecord, status: int = 200) -> web.Response:
    return web.json_response(record.model_dump(mode="json"), status=status)


def _run_id(request: web.Request) -> str:
    return parse_mapping(request.match_info, RunPath, "path").run_id


async def _visible_run(runs: RunService, run_id: str) -> RunRecord:
    """The run, if the caller may see it: without the admin scope, a run of another client
    is a 404 like a run that does not exist (its id tells nothing)."""
    record = await runs.get(run_id)
    if not may_see(record.client):
        raise RunNotFound(f"no run {run_id}")
    return record


async def get_run(request: web.Request) -> web.Response:
    """``GET /runs/{run_id}``: the run; with ``wait=S``, once it is final or S seconds passed."""
    run_id = _run_id(request)
    query = parse_mapping(request.query, RunQuery, "query")
    runs = request.app[RUNS]
    record = await _visible_run(runs, run_id)
    if query.wait:
        return _record(await runs.wait_final(run_id, query.wait))
    return _record(record)


async def list_runs(request: web.Request) -> web.Response:
    """``GET /runs``: recorded runs, newest first, filtered, a page at a time (with
    authentication on and without the admin scope, the caller's own runs only)."""
    query = parse_mapping(request.query, RunListQuery, "query")
    runs = request.app[RUNS]
    await runs.settled()
    try:
        page = await runs.store.list(
            state=query.state, package=query.package, workflow_run_id=query.workflow_run_id,
            since=query.since, limit=query.limit, cursor=query.cursor, client=visible_client(),
        )  # fmt: skip
    except ValueError as exc:
        raise RequestValidationError.single(
            ["query", "cursor"], f"not a cursor of this list: {exc}", query.cursor
        ) from None
    next_url = None
    if page.next_cursor is not None:
        next_url = str(request.rel_url.update_query(cursor=page.next_cursor))
    body = RunList(runs=page.runs, next=next_url)
    headers = {"Link": f'<{next_url}>; rel="next"'} if next_url else {}
    return web.json_response(body.model_dump(mode="json"), headers=headers)


async def get_logs(request: web.Request) -> web.StreamResponse:
    """``GET /runs/{run_id}/logs``: the workflow's output as text; with ``follow=1`` new output
    is streamed while the run lasts and the answer ends when the run ends."""
    run_id = _run_id(request)
    query = parse_mapping(request.query, LogsQuery, "query")
    runs = request.app[RUNS]
    record = await _visible_run(runs, run_id)
    cache_dir = request.app[SETTINGS].cache_dir
    kept_here = await anyio.to_thread.run_sync(logs_dir(cache_dir, run_id).is_dir)
    if not kept_here and record.replica != runs.replica and PROXIED_HEADER not in request.headers:
        return await proxy_logs(request, runs.store, record)
    streams: tuple[Stream, ...] = STREAMS if query.stream == "both" else (query.stream,)
    paths = [log_path(cache_dir, run_id, stream) for stream in streams]
    if not query.follow:
        parts = [await anyio.to_thread.run_sync(_read_log, path, query.tail) for path in paths]
        text = b"".join(parts)
        return web.Response(body=text, content_type="text/plain", charset="utf-8")

    response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    await response.prepare(request)
    offsets = {}
    for path in paths:
        start = await anyio.to_thread.run_sync(_read_log, path, query.tail)
        await response.write(start)
        offsets[path] = _size(path) if query.tail is not None else len(start)
    final = record.state.final
    while True:
        wrote = False
        for path in paths:
            chunk = _read_from(path, offsets[path])
            if chunk:
                offsets[path] += len(chunk)
                await response.write(chunk)
                wrote = True
        if final and not wrote:
            break  # one last read after the run ended: nothing more will come
        if not wrote:
            record = await runs.wait_final(run_id, FOLLOW_POLL_SECONDS)
            final = record.state.final
    await response.write_eof()
    return response


def _read_log(path: Path, tail: int | None) -> bytes:
    if tail is not None:
        return read_tail_lines(path, tail)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as file:
            file.seek(offset)
            return file.read(FOLLOW_CHUNK_BYTES)
    except FileNotFoundError:
        return b""


async def cancel_run(request: web.Request) -> web.Response:
    """``POST /runs/{run_id}/cancel``: end the run (202 with the run); 409 once it has ended."""
    run_id, runs = _run_id(request), request.app[RUNS]
    await _visible_run(runs, run_id)
    return _record(await runs.cancel(run_id), 202)


async def delete_run(request: web.Request) -> web.Response:
    """``DELETE /runs/{run_id}``: forget a finished run, its record and logs (204); 409 while it
    has not ended."""
    run_id = _run_id(request)
    runs = request.app[RUNS]
    record = await _visible_run(runs, run_id)
    if not record.state.final:
        raise InvalidTransition(f"run {run_id} is {record.state.value}: cancel it first")
    await runs.forget(run_id)
    return web.Response(status=204)
