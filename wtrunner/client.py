"""An async Python client of wtrunner's HTTP API, typed with the API's own pydantic models.

::

    async with WtrunnerClient("http://127.0.0.1:8080") as client:
        run = await client.submit(
            "wt-example-tracks-workflow>=1",
            {"workflow_details": {"name": "Elephants"}, "get_fixes": {}},
            results_url="/tmp/wtrunner-demo",
            mock_io=True,
        )
        run = await client.wait(run.id, timeout=600)
        print(run.state, run.outcome)

Every answer that is not 2xx raises :class:`WtrunnerClientError` with the status and the
answer's JSON ``detail``; a server that cannot be reached raises :class:`aiohttp.ClientError`.
A bearer token, when given, goes in the ``Authorization`` header only: it never appears in an
exception's message nor in a repr.
"""

from __future__ import annotations

import codecs
import contextlib
import datetime as dt
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, Literal

import aiohttp
from pydantic import ValidationError
from yarl import URL

from .api.models import RequestErrorItem, ResponseModel, ValidationErrorItem
from .api.run_resources import MAX_WAIT_SECONDS, RunList
from .contract import ExecutionMode
from .run_states import RunState
from .runstore import RunRecord

__all__ = ["ErrorItem", "LogStream", "WtrunnerClient", "WtrunnerClientError"]

LogStream = Literal["stdout", "stderr", "both"]
"""Which output of a run :meth:`WtrunnerClient.logs` returns."""

ErrorItem = RequestErrorItem | ValidationErrorItem
"""One problem of a 422: a malformed request (``loc``, ``msg``) or a schema failure
(``path``, ``validator``)."""

_DETAIL_CHARS = 500


class WtrunnerClientError(Exception):
    """The API answered with a status that is not 2xx.

    ``detail`` is the answer's JSON ``detail`` as sent (a sentence, or a list of items for a
    422), or the answer's text when it was not JSON; ``items`` are the 422 items as models.
    """

    def __init__(
        self, status: int, detail: Any, *, request_id: str | None = None, what: str = ""
    ) -> None:
        self.status = status
        self.detail = detail
        self.request_id = request_id
        self.what = what
        self.items: list[ErrorItem] = _error_items(detail)
        super().__init__(status, detail)

    def __str__(self) -> str:
        where = f" ({self.what})" if self.what else ""
        summary = _summary(self.detail)
        request = f" [request {self.request_id}]" if self.request_id else ""
        return f"HTTP {self.status}{where}: {summary}{request}"

    def __repr__(self) -> str:
        return f"WtrunnerClientError({self.status!r}, {self.detail!r})"


def _error_items(detail: Any) -> list[ErrorItem]:
    if not isinstance(detail, list):
        return []
    items: list[ErrorItem] = []
    for raw in detail:
        if not isinstance(raw, dict):
            continue
        model: type[ErrorItem] = RequestErrorItem if "loc" in raw else ValidationErrorItem
        try:
            items.append(model.model_validate(raw))
        except ValidationError:
            continue
    return items


def _summary(detail: Any) -> str:
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict) and "msg" in item:
                loc = ".".join(str(part) for part in item.get("loc") or [])
                parts.append(f"{loc}: {item['msg']}" if loc else str(item["msg"]))
            elif isinstance(item, dict) and "message" in item:
                path = "/".join(str(part) for part in item.get("path") or [])
                parts.append(f"{path}: {item['message']}" if path else str(item["message"]))
            else:
                parts.append(json.dumps(item, default=str))
        text = "; ".join(parts)
    elif isinstance(detail, str):
        text = detail
    else:
        text = json.dumps(detail, default=str)
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"


class WtrunnerClient:
    """A client of one wtrunner service; use it as an async context manager.

    ``base_url`` is the service's root (``http://127.0.0.1:8080``; a path prefix is kept).
    ``token``, when given, is sent as ``Authorization: Bearer <token>``. ``request_timeout``
    bounds each request in seconds (beyond the time a long poll asks the server to wait); the
    synchronous :meth:`run` and :meth:`follow_logs` are not bounded, as they last as long as
    the run does.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        request_timeout: float = 60.0,
        connect_timeout: float = 30.0,
    ) -> None:
        base = URL(base_url)
        if not base.is_absolute() or base.scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._base = base.with_query(None).with_fragment(None)
        if not self._base.path.endswith("/"):
            self._base = self._base.with_path(self._base.path + "/")
        self._headers = {"Accept": "application/json"}
        if token:
            if any(character in token for character in "\r\n"):
                raise ValueError("the token must be one line")  # (never echoed)
            self._headers["Authorization"] = f"Bearer {token}"
        self._request_timeout = request_timeout
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        token = ", token=<hidden>" if "Authorization" in self._headers else ""
        return f"WtrunnerClient({str(self._base.with_user(None))!r}{token})"

    @property
    def base_url(self) -> str:
        """The service's root URL, ending with ``/``."""
        return str(self._base)

    async def __aenter__(self) -> WtrunnerClient:
        """Open the HTTP session."""
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the HTTP session."""
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session (idempotent)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- runs ---------------------------------------------------------------------------------

    async def submit(
        self,
        matchspec: str,
        params: Mapping[str, Any],
        *,
        results_url: str,
        execution_mode: ExecutionMode = "sequential",
        mock_io: bool = False,
        workflow_run_id: str | None = None,
        timeout: float | None = None,
        invoker_type: str | None = None,
        data_connections_env_vars: Mapping[str, str] | None = None,
    ) -> RunRecord:
        """``POST /runs``: start a run in the background and return its record at once."""
        body = _run_body(
            params, results_url, execution_mode, mock_io, workflow_run_id, timeout,
            invoker_type, data_connections_env_vars,
        )  # fmt: skip
        data = await self._json("POST", "runs", query={"matchspec": matchspec}, json_body=body)
        return RunRecord.model_validate(data)

    async def run(
        self,
        matchspec: str,
        params: Mapping[str, Any],
        *,
        results_url: str,
        execution_mode: ExecutionMode = "sequential",
        mock_io: bool = False,
        workflow_run_id: str | None = None,
        timeout: float | None = None,
        invoker_type: str | None = None,
        data_connections_env_vars: Mapping[str, str] | None = None,
    ) -> ResponseModel:
        """``POST /``: run a workflow and return its outcome once it has ended.

        A workflow that failed, crashed or timed out is an outcome, not an API error: its
        ``{"result", "error", "trace"}`` (a 500 of that shape) is returned with ``error`` set.
        A run accepted by a back end that is not waited for (Cloud Batch, 202) returns an empty
        outcome. Malformed requests, unknown packages and other errors raise.
        """
        body = _run_body(
            params, results_url, execution_mode, mock_io, workflow_run_id, timeout,
            invoker_type, data_connections_env_vars,
        )  # fmt: skip
        async with self._request(
            "POST", "", query={"matchspec": matchspec}, json_body=body, timeout=None
        ) as response:
            data = await _read_json(response)
            if response.status == 500 and isinstance(data, dict) and "detail" not in data:
                return ResponseModel.model_validate(data)
            await _check(response, data, f"POST {response.url.path}")
            return ResponseModel.model_validate(data)

    async def get(self, run_id: str) -> RunRecord:
        """``GET /runs/{id}``: the run's record as it is now."""
        return RunRecord.model_validate(await self._json("GET", _run_path(run_id)))

    async def wait(self, run_id: str, timeout: float) -> RunRecord:
        """The run's record once it has ended, or as it is when ``timeout`` seconds passed.

        Long-polls ``GET /runs/{id}?wait=S`` in steps of at most 60 s (the server's bound).
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return await self.get(run_id)
            step = min(remaining, MAX_WAIT_SECONDS)
            data = await self._json(
                "GET", _run_path(run_id), query={"wait": f"{step:.3f}"}, extra_seconds=step
            )
            record = RunRecord.model_validate(data)
            if record.state.final:
                return record

    async def list(
        self,
        state: RunState | str | None = None,
        package: str | None = None,
        workflow_run_id: str | None = None,
        since: dt.datetime | None = None,
        limit: int = 100,
    ) -> RunList:
        """``GET /runs``: one page of recorded runs, newest first, filtered.

        ``next`` in the answer names the following page (see :meth:`iter_runs`). A naive
        ``since`` is taken as local time.
        """
        query = _list_query(state, package, workflow_run_id, since, limit)
        return RunList.model_validate(await self._json("GET", "runs", query=query))

    async def iter_runs(
        self,
        state: RunState | str | None = None,
        package: str | None = None,
        workflow_run_id: str | None = None,
        since: dt.datetime | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[RunRecord]:
        """Every recorded run matching the filters, newest first, fetching page after page
        (``page_size`` runs per request) by following each page's ``next``."""
        query: dict[str, str] | None = _list_query(
            state, package, workflow_run_id, since, page_size
        )
        while query is not None:
            page = RunList.model_validate(await self._json("GET", "runs", query=query))
            for record in page.runs:
                yield record
            # ``next`` is the server's URL of the next page; only its query is used, so a base
            # URL behind a path prefix keeps working.
            query = dict(URL(page.next).query) if page.next else None

    async def cancel(self, run_id: str) -> RunRecord:
        """``POST /runs/{id}/cancel``: end the run; returns its record (cancellation may still
        be under way: :meth:`wait` for the end). A run that has already ended: 409."""
        data = await self._json("POST", f"{_run_path(run_id)}/cancel")
        return RunRecord.model_validate(data)

    async def delete(self, run_id: str) -> None:
        """``DELETE /runs/{id}``: forget a finished run, its record and logs (409 before it
        has ended)."""
        async with self._request("DELETE", _run_path(run_id)) as response:
            if response.status >= 300:
                await _check(response, await _read_json(response), f"DELETE {response.url.path}")

    async def logs(self, run_id: str, stream: LogStream = "both", tail: int | None = None) -> str:
        """``GET /runs/{id}/logs``: the run's output so far: ``stdout``, ``stderr`` or ``both``
        (stdout, then stderr); with ``tail``, only the last ``tail`` lines of each stream."""
        async with self._request(
            "GET", f"{_run_path(run_id)}/logs", query=_logs_query(stream, tail), accept="text/plain"
        ) as response:
            if response.status >= 300:
                await _check(response, await _read_json(response), f"GET {response.url.path}")
            return await response.text(errors="replace")

    async def follow_logs(
        self, run_id: str, stream: LogStream = "both", *, tail: int | None = None
    ) -> AsyncIterator[str]:
        """``GET /runs/{id}/logs?follow=1``: the run's output (from the last ``tail`` lines of
        each stream when given), then new output as it is written, chunk by chunk; the iteration
        ends when the run has ended and everything it wrote was yielded."""
        query = {**_logs_query(stream, tail), "follow": "1"}
        async with self._request(
            "GET", f"{_run_path(run_id)}/logs", query=query, accept="text/plain", timeout=None
        ) as response:
            if response.status >= 300:
                await _check(response, await _read_json(response), f"GET {response.url.path}")
            decoder = codecs.getincrementaldecoder(_codec(response.charset))(errors="replace")
            async for chunk in response.content.iter_any():
                text = decoder.decode(chunk)
                if text:
                    yield text
            rest = decoder.decode(b"", final=True)
            if rest:
                yield rest

    # -- workflow metadata -------------------------------------------------------------------

    async def rjsf(self, matchspec: str) -> dict[str, Any]:
        """``GET /rjsf``: the workflow's React JSON Schema Form."""
        return _object(await self._json("GET", "rjsf", query={"matchspec": matchspec}))

    async def params_schema(self, matchspec: str) -> dict[str, Any]:
        """``GET /params``: the JSON Schema of the workflow's params."""
        return _object(await self._json("GET", "params", query={"matchspec": matchspec}))

    async def data_connection_property_names(self, matchspec: str) -> dict[str, Any]:
        """``GET /data-connection-property-names``: ``{"<ConnectionName>": ["<task id>"]}``."""
        data = await self._json(
            "GET", "data-connection-property-names", query={"matchspec": matchspec}
        )
        return _object(data)

    async def formdata_to_params(self, matchspec: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /formdata-to-params``: hierarchical form data -> flat params (a 422 raises
        with the schema's items)."""
        answer = await self._json(
            "POST", "formdata-to-params", query={"matchspec": matchspec}, json_body=dict(data)
        )
        return _object(answer)

    async def params_to_formdata(self, matchspec: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /params-to-formdata``: flat params -> hierarchical form data (a 422 raises
        with the schema's items)."""
        answer = await self._json(
            "POST", "params-to-formdata", query={"matchspec": matchspec}, json_body=dict(data)
        )
        return _object(answer)

    # -- plumbing ----------------------------------------------------------------------------

    def _url(self, path: str) -> URL:
        # ``path`` is relative: joined below the base URL's path (a prefix is kept)
        return self._base.join(URL(path, encoded=True)) if path else self._base

    @contextlib.asynccontextmanager
    async def _request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        json_body: Any = None,
        accept: str = "application/json",
        timeout: float | Literal["default"] | None = "default",
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One request; ``timeout`` bounds it in seconds (None: unbounded)."""
        if self._session is None:
            raise RuntimeError("use WtrunnerClient as `async with WtrunnerClient(...) as c:`")
        seconds = self._request_timeout if timeout == "default" else timeout
        async with self._session.request(
            method,
            self._url(path),
            params=dict(query or {}),
            json=json_body,
            headers={"Accept": accept},
            timeout=aiohttp.ClientTimeout(total=seconds, sock_connect=self._connect_timeout),
        ) as response:
            yield response

    async def _json(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        json_body: Any = None,
        extra_seconds: float = 0.0,
    ) -> Any:
        """One request whose 2xx answer is JSON; raise WtrunnerClientError otherwise."""
        timeout = self._request_timeout + extra_seconds
        async with self._request(
            method, path, query=query, json_body=json_body, timeout=timeout
        ) as response:
            data = await _read_json(response)
            await _check(response, data, f"{method} {response.url.path}")
            return data


async def _read_json(response: aiohttp.ClientResponse) -> Any:
    """The answer's JSON, or its text when it is not JSON."""
    text = await response.text(errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


async def _check(response: aiohttp.ClientResponse, data: Any, what: str) -> None:
    if 200 <= response.status < 300:
        return
    detail = data.get("detail", data) if isinstance(data, dict) else data
    request_id = response.headers.get("X-Request-ID")
    raise WtrunnerClientError(response.status, detail, request_id=request_id, what=what)


def _run_path(run_id: str) -> str:
    if not run_id:
        raise ValueError("a run id is required")
    return "runs/" + urllib.parse.quote(run_id, safe="")


def _logs_query(stream: LogStream, tail: int | None) -> dict[str, str]:
    query: dict[str, str] = {"stream": stream}
    if tail is not None:
        query["tail"] = str(tail)
    return query


def _codec(charset: str | None) -> str:
    try:
        return codecs.lookup(charset or "utf-8").name
    except LookupError:
        return "utf-8"


def _run_body(
    params: Mapping[str, Any],
    results_url: str,
    execution_mode: ExecutionMode,
    mock_io: bool,
    workflow_run_id: str | None,
    timeout: float | None,
    invoker_type: str | None,
    data_connections_env_vars: Mapping[str, str] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "params": dict(params),
        "execution_mode": execution_mode,
        "mock_io": mock_io,
        "results_url": results_url,
    }
    optional = {
        "workflow_run_id": workflow_run_id,
        "timeout": timeout,
        "invoker_type": invoker_type,
        "data_connections_env_vars": (
            dict(data_connections_env_vars) if data_connections_env_vars is not None else None
        ),
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    return body


def _list_query(
    state: RunState | str | None,
    package: str | None,
    workflow_run_id: str | None,
    since: dt.datetime | None,
    limit: int,
) -> dict[str, str]:
    query = {"limit": str(limit)}
    if state is not None:
        query["state"] = state.value if isinstance(state, RunState) else str(state)
    if package is not None:
        query["package"] = package
    if workflow_run_id is not None:
        query["workflow_run_id"] = workflow_run_id
    if since is not None:
        aware = since if since.utcoffset() is not None else since.astimezone()
        query["since"] = aware.isoformat()
    return query


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise TypeError(f"the service answered a JSON {type(data).__name__}, not an object")
    return data
