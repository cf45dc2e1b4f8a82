"""``GET /workflows`` and ``GET /workflows/{name}``: the workflow packages this server can run."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from ..catalogue import WorkflowDetail, WorkflowList
from ..keys import CATALOGUE
from .parsing import parse_mapping

__all__ = ["WorkflowDetail", "WorkflowList", "WorkflowPath", "get_workflow", "list_workflows"]


class WorkflowPath(BaseModel):
    """Path parameters of ``/workflows/{name}``."""

    name: str = Field(description="the workflow's package name")


async def list_workflows(request: web.Request) -> web.Response:
    """``GET /workflows``: the workflow packages of the channels and installed prefixes, by name,
    with their versions (newest first); a source that cannot be read is named with its error."""
    listing = await request.app[CATALOGUE].list_workflows()
    return web.json_response(listing.model_dump(mode="json"))


async def get_workflow(request: web.Request) -> web.Response:
    """``GET /workflows/{name}``: every version and build of one workflow package."""
    name = parse_mapping(request.match_info, WorkflowPath, "path").name
    detail = await request.app[CATALOGUE].get_workflow(name)
    return web.json_response(detail.model_dump(mode="json"))
