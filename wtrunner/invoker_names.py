"""The names clients send as ``invoker_type``, and the default (a leaf: no imports).

The spec's clients name back ends by these strings; ``invokers`` maps each to its class.
"""

from __future__ import annotations

DEFAULT_INVOKER = "BlockingLocalSubprocessInvoker"
LOCAL_INVOKERS = ("BlockingLocalSubprocessInvoker", "AsyncLocalSubprocessInvoker")
CLOUD_BATCH_INVOKER = "CloudBatchInvoker"
CLOUD_RUN_JOBS_INVOKER = "CloudRunJobsSandboxInvoker"
INVOKER_NAMES: tuple[str, ...] = (*LOCAL_INVOKERS, CLOUD_BATCH_INVOKER, CLOUD_RUN_JOBS_INVOKER)


def unknown_invoker_message(name: str) -> str | None:
    """Why ``name`` cannot be used, or None when it is a known invoker."""
    if name in INVOKER_NAMES:
        return None
    return f"unknown invoker; known: {', '.join(sorted(INVOKER_NAMES))}"
