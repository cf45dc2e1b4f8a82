"""wtrunner: an asyncio service that runs compiled workflow packages named by a conda MatchSpec."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .version import __version__

__all__ = ["ResponseModel", "ValidationErrorItem", "ValidationErrorResponse", "__version__"]

if TYPE_CHECKING:
    from .api.models import ResponseModel, ValidationErrorItem, ValidationErrorResponse


def __getattr__(name: str) -> Any:
    # Keep `import wtrunner` cheap: workflow launchers and the CLI import it on every start.
    if name in {"ResponseModel", "ValidationErrorItem", "ValidationErrorResponse"}:
        from .api import models

        return getattr(models, name)
    raise AttributeError(f"module 'wtrunner' has no attribute {name!r}")
