"""The workflow's form and parameter metadata, and form data <-> params conversion."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, RootModel

from ..contract import FormKind
from ..contract import MetadataDocument as Document
from ..environments import Environment, parse_matchspec
from ..errors import RequestValidationError
from ..invoker_names import DEFAULT_INVOKER, unknown_invoker_message
from ..keys import ENVIRONMENTS, METADATA, SETTINGS
from .parsing import parse_json_body, parse_mapping


class MetadataQuery(BaseModel):
    """Query parameters of the metadata and conversion endpoints."""

    model_config = ConfigDict(extra="ignore")

    matchspec: str | None = Field(
        None, description="conda MatchSpec of the workflow package (required unless overridden)"
    )
    invoker_type: str = Field(
        DEFAULT_INVOKER,
        description="accepted for compatibility; metadata always comes from the local package",
    )


class JsonObject(RootModel[dict[str, Any]]):
    """A JSON object."""


async def _environment(request: web.Request) -> Environment:
    query = parse_mapping(request.query, MetadataQuery, "query")
    unknown = unknown_invoker_message(query.invoker_type)
    if unknown:
        raise RequestValidationError.single(["query", "invoker_type"], unknown, query.invoker_type)
    try:
        spec = parse_matchspec(query.matchspec, request.app[SETTINGS].matchspec_override)
    except RequestValidationError as exc:
        raise exc.placed(lambda loc: ["query", *loc]) from None
    return await request.app[ENVIRONMENTS].resolve(spec)


async def _document(request: web.Request, what: Document) -> web.Response:
    environment = await _environment(request)
    return web.json_response(await request.app[METADATA].document(environment, what))


async def get_rjsf(request: web.Request) -> web.Response:
    """``GET /rjsf``: the React JSON Schema Form document of the workflow."""
    return await _document(request, "rjsf")


async def get_params_schema(request: web.Request) -> web.Response:
    """``GET /params``: the JSON Schema of the workflow's flat params."""
    return await _document(request, "params")


async def get_data_connection_property_names(request: web.Request) -> web.Response:
    """``GET /data-connection-property-names``: ``{"<ConnectionName>": ["<task id>", ...]}``."""
    return await _document(request, "data-connection-property-names")


async def _convert(request: web.Request, source: FormKind) -> web.Response:
    environment = await _environment(request)
    data = await parse_json_body(request, JsonObject)
    converted = await request.app[METADATA].convert(environment, source, data.root)
    return web.json_response(converted)


async def formdata_to_params(request: web.Request) -> web.Response:
    """``POST /formdata-to-params``: hierarchical form data -> flat params (422 when invalid)."""
    return await _convert(request, "formdata")


async def params_to_formdata(request: web.Request) -> web.Response:
    """``POST /params-to-formdata``: flat params -> hierarchical form data (422 when invalid)."""
    return await _convert(request, "params")
