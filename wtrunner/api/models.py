"""Pydantic models of what crosses the HTTP boundary; the OpenAPI document is built from them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel

from ..schemas import ValidationErrorItem

__all__ = ["ValidationErrorItem"]  # (defined with the validator; part of the HTTP models)


class ResponseModel(BaseModel):
    """The outcome of a run: ``result`` is whatever the workflow returned (any JSON value)."""

    result: Any = None
    error: str | None = None
    trace: str | None = None


class ValidationErrorResponse(BaseModel):
    """Input that failed the workflow's JSON Schema (422)."""

    detail: list[ValidationErrorItem]


class RequestErrorItem(BaseModel):
    """One problem with a malformed request, in the shape FastAPI clients know."""

    type: str
    loc: list[str | int]
    msg: str
    input: Any = None


class RequestErrorResponse(BaseModel):
    """The request is malformed (422): missing or invalid fields, body not JSON, ..."""

    detail: list[RequestErrorItem]


class ErrorResponse(BaseModel):
    """Any other error: a sentence for a person, and the request id when there is one."""

    model_config = ConfigDict(extra="allow")

    detail: str
    request_id: str | None = None


class StatusResponse(BaseModel):
    """Health check answer."""

    status: str


class ReadinessResponse(BaseModel):
    """Readiness: ``ok`` or ``shutting down``, with the state of background components."""

    status: str
    components: dict[str, dict[str, Any]] = Field(default_factory=dict)


class OpenAPIDocument(BaseModel):
    """The OpenAPI 3.1 document of this service."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


class MetricsText(RootModel[str]):
    """Prometheus metrics in the text exposition format."""


class NoContent(BaseModel):
    """No content (204)."""
