"""Turn query strings, headers and JSON bodies into pydantic models, or a 422 naming the field.

Errors carry the offending input back to the client (as FastAPI does), except where it may
hold a secret: anything under ``data_connections_env_vars`` is masked, and a body that is not
JSON is never echoed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from ..errors import RequestValidationError

M = TypeVar("M", bound=BaseModel)

SECRET_KEYS = frozenset({"data_connections_env_vars"})
MASK = "**********"


def mask_secrets(value: Any) -> Any:
    """A copy of ``value`` with the values under secret keys replaced by a mask."""
    if isinstance(value, Mapping):
        return {
            key: (_mask_all(item) if key in SECRET_KEYS else mask_secrets(item))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask_secrets(item) for item in value]
    return value


def _mask_all(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict.fromkeys(value, MASK)
    return MASK if value is not None else None


def validation_items(exc: ValidationError, location: str) -> list[dict[str, Any]]:
    """pydantic's errors as ``{type, loc, msg, input}`` items under ``location``."""
    items = []
    for error in exc.errors(include_url=False, include_context=False):
        loc = [location, *error["loc"]]
        secret = any(part in SECRET_KEYS for part in loc)
        if error["type"] == "json_invalid":
            value: Any = None
        elif secret and error["loc"] and error["loc"][-1] not in SECRET_KEYS:
            value = MASK
        else:
            value = mask_secrets(error.get("input"))
        items.append({"type": error["type"], "loc": loc, "msg": error["msg"], "input": value})
    return items


async def parse_json_body(request: web.Request, model: type[M]) -> M:
    """Validate the request's JSON body as ``model`` (413 above the size limit, 422 otherwise)."""
    raw = await request.read()
    if not raw.strip():
        raise RequestValidationError.single(["body"], "A JSON object is required", type="missing")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(validation_items(exc, "body")) from None


def parse_mapping(values: Mapping[str, Any], model: type[M], location: str) -> M:
    """Validate query parameters or headers (already a mapping) as ``model``."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        raise RequestValidationError(validation_items(exc, location)) from None
