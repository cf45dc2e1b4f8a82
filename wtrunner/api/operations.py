"""What an HTTP operation declares about itself: the inputs and responses the OpenAPI shows."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel

from .models import ErrorResponse, RequestErrorResponse

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ResponseModels = tuple[type[BaseModel], ...]


class Access(str, enum.Enum):
    """Who may call an operation once authentication is on (README "Security")."""

    OPEN = "open"  # anyone: health probes, the OpenAPI document
    READ = "read"  # the read scope (runs, logs, metadata, catalogue)
    RUN = "run"  # the run scope (start, cancel, delete)
    METRICS = "metrics"  # open, or the read scope with WTRUNNER_METRICS_AUTH
    PUSH = "push"  # a verified Pub/Sub push token when configured, else the run scope


@dataclass(frozen=True)
class Operation:
    """One method on one path, its handler, and the models that document it.

    ``responses`` maps each status the operation can answer to the models of its body
    (several models mean "any of these"); the OpenAPI document and the schema tests hold the
    handler to exactly these.
    """

    method: str
    path: str
    handler: Handler
    summary: str
    responses: Mapping[int, ResponseModels]
    query: type[BaseModel] | None = None
    path_params: type[BaseModel] | None = None
    headers: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    tags: tuple[str, ...] = field(default=())
    # media type of the 200 response (everything else is JSON)
    success_content_type: str = "application/json"
    # who may call it once authentication is on (a new operation needs the read scope)
    access: Access = Access.READ


def error_responses(*statuses: int) -> dict[int, ResponseModels]:
    """The usual body model for each error status: 422 is field-shaped, the rest a sentence."""
    return {
        status: (RequestErrorResponse,) if status == 422 else (ErrorResponse,)
        for status in statuses
    }
