"""Leaves its run the way a daemon does: a double fork with ``setsid`` in between, so the
escaped process is in a session and process group of its own, and its parent has exited.

params: {"escape": {"pid_file": PATH, "then": "exit" | "sleep", "seconds": N,
                    "clear_env": bool, "report_limits": bool, "report_cgroup": bool,
                    "allocate_mb": N}}

The escaped process ignores SIGTERM, writes its pid to ``pid_file`` (atomically) and sleeps;
with ``clear_env`` it first replaces itself with a process whose environment is empty (no
marker of the run). ``report_limits`` puts the workflow's rlimits, niceness and cgroup in the
result, once a memory limit is in place (the server sets it right after the start);
``report_cgroup`` its cgroup v2 path once it is in its run's leaf (the server moves it there
right after the start); ``allocate_mb`` says whether that many megabytes could be allocated.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

from wtrunner.workflow_kit import RunContext, Workflow
from wtrunner.workflow_kit import main as kit_main

SLEEPER = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
LIMITS_WAIT_SECONDS = 10.0

SCHEMA = {
    "type": "object",
    "properties": {
        "escape": {
            "type": "object",
            "properties": {
                "pid_file": {"type": "string"},
                "then": {"enum": ["exit", "sleep"]},
                "seconds": {"type": "number"},
                "clear_env": {"type": "boolean"},
                "report_limits": {"type": "boolean"},
                "report_cgroup": {"type": "boolean"},
                "allocate_mb": {"type": "integer", "minimum": 1},
            },
            "additionalProperties": False,
        }
    },
    "required": ["escape"],
    "additionalProperties": False,
}


def _escape(pid_file: Path, clear_env: bool) -> None:
    """Double fork: the grandchild runs in a new session, its parent exits at once."""
    child = os.fork()
    if child:
        os.waitpid(child, 0)
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        partial = pid_file.with_name(pid_file.name + ".partial")
        partial.write_text(str(os.getpid()))
        partial.replace(pid_file)
        if clear_env:
            os.execve(sys.executable, [sys.executable, "-c", SLEEPER], {})
        time.sleep(600)
    finally:
        os._exit(0)


def _limits() -> dict[str, Any]:
    deadline = time.monotonic() + LIMITS_WAIT_SECONDS
    while resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY:
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return {
        "as": list(resource.getrlimit(resource.RLIMIT_AS)),
        "nproc": list(resource.getrlimit(resource.RLIMIT_NPROC)),
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "autogroup_nice": _autogroup_nice(),
    }


def _autogroup_nice() -> int | None:
    """The niceness of this session's scheduler autogroup (None: the kernel has none)."""
    try:
        return int(Path("/proc/self/autogroup").read_text().split()[-1])  # "/autogroup-7 nice 0"
    except (OSError, ValueError, IndexError):
        return None


def _cgroup() -> str:
    leaf = f"/run-{os.environ['WTRUNNER_RUN_ID']}"
    deadline = time.monotonic() + LIMITS_WAIT_SECONDS
    while True:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        path = next((line[3:] for line in lines if line.startswith("0::")), "")
        if path.endswith(leaf) or time.monotonic() > deadline:
            return path
        time.sleep(0.01)


def run(context: RunContext) -> dict[str, Any]:
    options = context.task_params("escape")
    result: dict[str, Any] = {"pid": os.getpid()}
    if options.get("report_limits"):
        result["limits"] = _limits()
    if options.get("report_cgroup"):
        result["cgroup"] = _cgroup()
    if "allocate_mb" in options:
        try:
            block = bytearray(options["allocate_mb"] * 1024 * 1024)
            result["allocated"] = len(block) > 0
        except MemoryError:
            result["allocated"] = False
    if "pid_file" in options:
        _escape(Path(options["pid_file"]), bool(options.get("clear_env")))
    if options.get("then", "exit") == "sleep":
        time.sleep(float(options.get("seconds", 600)))
    return result


WORKFLOW = Workflow(name="wt-test-escape-workflow", params_schema=SCHEMA, run=run)


def main() -> int:
    return kit_main(WORKFLOW)
