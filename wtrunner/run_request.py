"""What every front door turns its input into (a RunRequest) and what a run ends as (RunOutcome)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from .environments import parse_matchspec
from .errors import RequestValidationError
from .results import normalize_results_url
from .settings import Settings

ExecutionMode = Literal["sequential", "async"]

TIMEOUT_MESSAGE = "The workflow timed out. Consider reducing the amount of data being processed."

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_ENV_NAMES = frozenset(
    {"PATH", "HOME", "TMPDIR", "TRACEPARENT", "TRACESTATE", "LITHOPS_CONFIG_FILE"}
)
RESERVED_ENV_PREFIXES = ("LD_", "PYTHON")


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

    @property
    def package_name(self) -> str:
        """The workflow package (and executable) name."""
        return str(self.spec.name.as_package_name().normalized)


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended, as a front door reports it.

    ``kind``: ``ok``, ``workflow_error`` (result.json carries an error), ``crash`` (non-zero
    exit, or no usable result.json), ``timeout``, or ``accepted`` (a non-waitable back end took it).
    """

    status: int
    kind: str
    result: Any = None
    error: str | None = None
    trace: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The spec's response body ``{"result", "error", "trace"}``."""
        return {"result": self.result, "error": self.error, "trace": self.trace}


def check_env_names(
    variables: Mapping[str, SecretStr], results_env_var: str, loc: list[str | int]
) -> list[dict[str, Any]]:
    """Problems with data-connection variable names: invalid, or reserved for wtrunner."""
    problems: list[dict[str, Any]] = []
    for name, value in variables.items():
        message = None
        if not _ENV_NAME.match(name):
            message = "not a valid environment variable name"
        elif (
            name in RESERVED_ENV_NAMES
            or name == results_env_var
            or name.startswith(RESERVED_ENV_PREFIXES)
        ):
            message = f"{name} is reserved and cannot be set by a request"
        elif "\0" in value.get_secret_value():
            message = "the value contains a NUL character"
        elif not _encodable(value.get_secret_value()):
            message = "the value is not valid Unicode (a lone surrogate)"
        if message:
            problems.append(
                {"type": "env_name", "loc": [*loc, name], "msg": message, "input": name}
            )
    return problems


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def build_run_request(
    settings: Settings,
    *,
    matchspec: str | None,
    invoker_type: str,
    known_invokers: frozenset[str],
    workflow_run_id: str,
    params: dict[str, Any],
    execution_mode: ExecutionMode,
    mock_io: bool,
    results_url: str,
    data_connections_env_vars: Mapping[str, SecretStr] | None = None,
    lithops_config: LithopsConfig | None = None,
    timeout: float | None = None,
    traceparent: str | None = None,
    tracestate: str | None = None,
    invoker_options: Mapping[str, Any] | None = None,
    locs: Mapping[str, list[str | int]],
) -> RunRequest:
    """Check what pydantic cannot (MatchSpec, invoker, results URL, variable names) and build
    the RunRequest; every problem found is reported at once in one 422, located by ``locs``."""
    problems: list[dict[str, Any]] = []
    spec = None
    try:
        spec = parse_matchspec(matchspec, settings.matchspec_override, locs["matchspec"])
    except RequestValidationError as exc:
        problems += exc.detail
    if invoker_type not in known_invokers:
        problems.append(
            {
                "type": "invoker_type",
                "loc": locs["invoker_type"],
                "msg": f"unknown invoker; known: {', '.join(sorted(known_invokers))}",
                "input": invoker_type,
            }
        )
    try:
        results_url = normalize_results_url(
            results_url, settings.results_roots, locs["results_url"]
        )
    except RequestValidationError as exc:
        problems += exc.detail
    variables = dict(data_connections_env_vars or {})
    problems += check_env_names(
        variables, settings.results_env_var, locs["data_connections_env_vars"]
    )
    if problems:
        raise RequestValidationError(problems)
    return RunRequest(
        spec=spec,
        invoker_type=invoker_type,
        workflow_run_id=workflow_run_id,
        params=params,
        execution_mode=execution_mode,
        mock_io=mock_io,
        results_url=results_url,
        data_connections_env_vars=variables,
        lithops_config=lithops_config,
        timeout=timeout,
        traceparent=traceparent,
        tracestate=tracestate,
        invoker_options=dict(invoker_options or {}),
    )
