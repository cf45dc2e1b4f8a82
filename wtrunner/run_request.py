"""What every front door turns its input into (a RunRequest) and what a run ends as (RunOutcome).

The run core speaks no HTTP: a front door fills a :class:`RunInput` from whatever its client
sent, :func:`build_run_request` checks it (validation errors name plain fields such as
``results_url``; the front door places them), and the run ends as a :class:`RunOutcome` whose
``kind`` each front door maps to its own answer.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from .contract import ExecutionMode
from .environments import parse_matchspec
from .errors import RequestValidationError
from .invoker_names import DEFAULT_INVOKER, unknown_invoker_message
from .reserved_env import reserved_because
from .results import normalize_results_url
from .settings import Settings
from .workflow_commands import passthrough_env

TIMEOUT_MESSAGE = "The workflow timed out. Consider reducing the amount of data being processed."
CANCELLED_MESSAGE = "The run was cancelled."
LOST_MESSAGE = "The server stopped while the run was in progress."

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class LithopsSettings(BaseModel):
    """``lithops`` section of the Lithops configuration."""

    backend: Literal["localhost", "gcp_cloudrun"] = "localhost"
    storage: Literal["localhost", "gcp_storage"] = "localhost"
    log_level: str = "DEBUG"
    data_limit: int = 256


class LithopsGcpSettings(BaseModel):
    """``gcp`` section of the Lithops configuration."""

    region: str = "us-central1"
    credentials_path: str | None = None


class LithopsCloudRunSettings(BaseModel):
    """``gcp_cloudrun`` section of the Lithops configuration."""

    runtime: str | None = None
    runtime_cpu: int = 2
    runtime_memory: int = 1000


class LithopsConfig(BaseModel):
    """Configuration for ``execution_mode=async``; written as YAML to ``LITHOPS_CONFIG_FILE``."""

    model_config = ConfigDict(extra="forbid")

    lithops: LithopsSettings = Field(default_factory=LithopsSettings)
    gcp: LithopsGcpSettings | None = None
    gcp_cloudrun: LithopsCloudRunSettings | None = None


class RunInput(BaseModel):
    """What a client asked for, before it is checked: filled by each front door."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    matchspec: str | None = None
    invoker_type: str = DEFAULT_INVOKER
    workflow_run_id: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    execution_mode: ExecutionMode = "sequential"
    mock_io: bool = False
    results_url: str
    data_connections_env_vars: dict[str, SecretStr] = Field(default_factory=dict)
    lithops_config: LithopsConfig | None = None
    timeout: float | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    invoker_options: dict[str, Any] = Field(default_factory=dict)
    # names the run when workflow_run_id is empty (HTTP: the Idempotency-Key header)
    idempotency_key: str | None = None


def new_run_id() -> str:
    """A fresh server-made run id: 16 characters of lowercase base32 (80 random bits).

    URL-, file- and label-safe, and never starts with ``-`` (which a command line would
    take for an option, as ``wtrunner runs show -x...`` did with URL-safe base64).
    """
    return base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()


@dataclass(frozen=True)
class RunRequest:
    """One validated request to run a workflow, whichever front door it came through."""

    spec: Any  # rattler.MatchSpec, already overridden by ECOSCOPE_WORKFLOWS_MATCHSPEC_OVERRIDE
    invoker_type: str
    workflow_run_id: str
    params: dict[str, Any]
    execution_mode: ExecutionMode
    mock_io: bool
    results_url: str
    data_connections_env_vars: Mapping[str, SecretStr] = field(default_factory=dict)
    lithops_config: LithopsConfig | None = None
    timeout: float | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    invoker_options: Mapping[str, Any] = field(default_factory=dict)
    run_id: str = field(default_factory=new_run_id)
    # what names this run across requests: ``run:<workflow_run_id>``, else ``key:<key>``
    idempotency_key: str | None = None

    @property
    def package_name(self) -> str:
        """The workflow package (and executable) name."""
        return str(self.spec.name.as_package_name().normalized)

    @property
    def request_hash(self) -> str:
        """What the request asks for (package, params, results, how), as a digest: the same
        run id with another digest is another request."""
        asked = {
            "matchspec": str(self.spec),
            "params": self.params,
            "results_url": self.results_url,
            "invoker_type": self.invoker_type,
            "execution_mode": self.execution_mode,
            "mock_io": self.mock_io,
            "invoker_options": dict(self.invoker_options),
        }
        canonical = json.dumps(asked, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


class OutcomeKind(str, enum.Enum):
    """How a run ended; each front door maps it to its own answer."""

    OK = "ok"  # result.json has a result
    WORKFLOW_ERROR = "workflow_error"  # result.json carries the workflow's error
    CRASH = "crash"  # non-zero exit, or no usable result.json
    TIMEOUT = "timeout"  # ended at its time limit
    CANCELLED = "cancelled"  # ended on request
    ACCEPTED = "accepted"  # a back end that is not waited for took it
    LOST = "lost"  # the server running it stopped


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: its kind, the spec's ``result``/``error``/``trace``, and what the back end
    said (``exit_code`` of a local process, ``job_name`` of a Cloud Batch job)."""

    kind: OutcomeKind
    result: Any = None
    error: str | None = None
    trace: str | None = None
    exit_code: int | None = None
    job_name: str | None = None
    # the recorded run this outcome is of, and whether the request repeated an existing run
    # ("in-flight": it waited for it; "finished": it had succeeded before)
    run_id: str | None = None
    duplicate: Literal["in-flight", "finished"] | None = None

    @property
    def succeeded(self) -> bool:
        """Whether the run did what was asked (finished with a result, or was accepted)."""
        return self.kind in (OutcomeKind.OK, OutcomeKind.ACCEPTED)

    def body(self) -> dict[str, Any]:
        """The spec's response body ``{"result", "error", "trace"}``."""
        return {"result": self.result, "error": self.error, "trace": self.trace}


def check_env_names(variables: Mapping[str, SecretStr], settings: Settings) -> list[dict[str, Any]]:
    """Problems with data-connection variable names: invalid, or reserved (the table of
    :mod:`wtrunner.reserved_env`, the results variable, a variable the server passes on), all
    compared case-insensitively. Whether a name is one the workflow may take (the pattern, or
    declared by the package) is checked once the package is known (``Metadata``)."""
    problems: list[dict[str, Any]] = []
    passed_on = (
        {name.upper() for name in passthrough_env(os.environ, settings.child_env_passthrough)}
        if variables
        else set()
    )
    for name, value in variables.items():
        message = None
        if not _ENV_NAME.fullmatch(name):
            message = "not a valid environment variable name"
        elif (why := reserved_env_reason(name, settings, passed_on)) is not None:
            message = f"{name} is reserved and cannot be set by a request: {why}"
        elif "\0" in value.get_secret_value():
            message = "the value contains a NUL character"
        elif not _encodable(value.get_secret_value()):
            message = "the value is not valid Unicode (a lone surrogate)"
        if message:
            problems.append(
                {
                    "type": "env_name",
                    "loc": ["data_connections_env_vars", name],
                    "msg": message,
                    "input": name,
                }
            )
    return problems


def reserved_env_reason(name: str, settings: Settings, passed_on: set[str]) -> str | None:
    """Why a request may not set variable ``name``, or None (case-insensitive). ``passed_on``:
    the (upper-case) names of the variables the server passes on to workflows."""
    upper = name.upper()
    if upper == settings.results_env_var.upper():
        return "the results URL"
    if upper in passed_on:
        return "the server passes on its own value (WTRUNNER_CHILD_ENV_PASSTHROUGH)"
    return reserved_because(name)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def build_run_request(settings: Settings, given: RunInput) -> RunRequest:
    """Check what pydantic cannot (MatchSpec, invoker, results URL, variable names) and build
    the RunRequest; every problem is reported at once in one RequestValidationError whose items
    name plain fields (``matchspec``, ``invoker_type``, ``results_url``, ...)."""
    problems: list[dict[str, Any]] = []
    spec = None
    try:
        spec = parse_matchspec(given.matchspec, settings.matchspec_override)
    except RequestValidationError as exc:
        problems += exc.detail
    unknown = unknown_invoker_message(given.invoker_type)
    if unknown:
        problems.append(
            {"type": "invoker_type", "loc": ["invoker_type"], "msg": unknown,
             "input": given.invoker_type}
        )  # fmt: skip
    results_url = given.results_url
    try:
        results_url = normalize_results_url(results_url, settings.effective_results_roots)
    except RequestValidationError as exc:
        problems += exc.detail
    problems += check_env_names(given.data_connections_env_vars, settings)
    if problems:
        raise RequestValidationError(problems)
    return RunRequest(
        spec=spec,
        invoker_type=given.invoker_type,
        workflow_run_id=given.workflow_run_id,
        params=given.params,
        execution_mode=given.execution_mode,
        mock_io=given.mock_io,
        results_url=results_url,
        data_connections_env_vars=dict(given.data_connections_env_vars),
        lithops_config=given.lithops_config,
        timeout=given.timeout,
        traceparent=given.traceparent,
        tracestate=given.tracestate,
        invoker_options=dict(given.invoker_options),
        idempotency_key=(
            f"run:{given.workflow_run_id}"
            if given.workflow_run_id
            else (f"key:{given.idempotency_key}" if given.idempotency_key else None)
        ),
    )
