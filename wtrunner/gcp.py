"""Google Cloud libraries are an extra (``wtrunner[gcp]``): import them only through here.

Importing them lazily keeps the HTTP-only server small, and a missing extra becomes a sentence
naming it rather than an ImportError from deep inside a request.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import WtrunnerError


class MissingExtraError(WtrunnerError):
    """A Google Cloud feature was used without the ``gcp`` extra installed."""

    status = 500


def import_gcp(module: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``, or raise MissingExtraError naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{feature} needs the Google Cloud libraries: install wtrunner[gcp] "
            f"(pip install 'wtrunner[gcp]'); the Python module {exc.name or module} "
            "cannot be imported"
        ) from None
