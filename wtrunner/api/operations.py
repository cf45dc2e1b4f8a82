"""What an HTTP operation declares about itself: the inputs and responses the OpenAPI shows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import BaseModel

from .models import ErrorResponse, RequestErrorResponse

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ResponseModels = tuple[type[BaseModel], ...]


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


def error_responses(*statuses: int) -> dict[int, ResponseModels]:
    """The usual body model for each error status: 422 is field-shaped, the rest a sentence."""
    return {
        status: (RequestErrorResponse,) if status == 422 else (ErrorResponse,)
        for status in statuses
    }
