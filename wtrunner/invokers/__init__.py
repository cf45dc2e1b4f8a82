"""Invoker back ends, found by the names the spec's clients send (``invoker_type``).

Back ends are imported only when used, so one that needs an extra (Cloud Batch and Cloud Run
Jobs need ``wtrunner[gcp]``) costs nothing until a request asks for it.
"""

from __future__ import annotations

import importlib

from ..invoker_names import CLOUD_BATCH_INVOKER, CLOUD_RUN_JOBS_INVOKER, LOCAL_INVOKERS
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
    "invoker_class",
]

# invoker_type -> "module:Class" (relative to this package)
_CLASSES: dict[str, str] = {
    **dict.fromkeys(LOCAL_INVOKERS, ".local:LocalSubprocessInvoker"),
    CLOUD_BATCH_INVOKER: ".batch:CloudBatchInvoker",
    CLOUD_RUN_JOBS_INVOKER: ".cloudrun:CloudRunJobsSandboxInvoker",
}


def invoker_class(name: str) -> type[Invoker]:
    """The back end registered as ``name`` (names are checked when a request is built)."""
    module_name, class_name = _CLASSES[name].split(":")
    cls: type[Invoker] = getattr(importlib.import_module(module_name, __name__), class_name)
    return cls
