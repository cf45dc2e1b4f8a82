"""Invoker back ends, found by the names the spec's clients send (``invoker_type``).

Back ends are imported only when used, so one that needs an extra (Cloud Batch needs
``wtrunner[gcp]``) costs nothing until a request asks for it.
"""

from __future__ import annotations

import importlib

from .base import (
    Completion,
    Invoker,
    InvokerContext,
    InvokerState,
    InvokerStateError,
    WorkflowStartError,
)

__all__ = [
    "Completion",
    "Invoker",
    "InvokerContext",
    "InvokerState",
    "InvokerStateError",
    "WorkflowStartError",
    "INVOKERS",
    "invoker_class",
]

# invoker_type -> "module:Class" (relative to this package)
INVOKERS: dict[str, str] = {
    "BlockingLocalSubprocessInvoker": ".local:LocalSubprocessInvoker",
    "AsyncLocalSubprocessInvoker": ".local:LocalSubprocessInvoker",
    "CloudBatchInvoker": ".batch:CloudBatchInvoker",
}


def invoker_class(name: str) -> type[Invoker]:
    """The back end registered as ``name`` (names are checked when a request is parsed)."""
    module_name, class_name = INVOKERS[name].split(":")
    cls: type[Invoker] = getattr(importlib.import_module(module_name, __name__), class_name)
    return cls
