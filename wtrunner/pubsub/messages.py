"""The ``RunWorkflow`` command and the push envelope it arrives in (our own models).

Missing envelope fields take the earlier implementation's defaults; unknown fields are ignored;
``invoker_kwargs`` keys this module does not know are passed through to the invoker (e.g. the
Cloud Batch resources).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from ..contract import ExecutionMode
from ..invoker_names import DEFAULT_INVOKER
from ..run_request import LithopsConfig


class CommandError(Exception):
    """A message that can never become a run (retrying it cannot help).

    ``results_url`` is where its results were to go, when the message says so.
    """

    def __init__(self, message: str, results_url: str | None = None) -> None:
        super().__init__(message)
        self.results_url = results_url


class TraceContext(BaseModel):
    """W3C trace context carried by the command."""

    model_config = ConfigDict(extra="ignore")

    traceparent: str | None = None
    tracestate: str | None = None


class InvokerKwargs(BaseModel):
    """How to run: where results go, the params, and back-end options (extra keys)."""

    model_config = ConfigDict(extra="allow")

    workflow_run_id: str = ""
    results_url: str
    params: dict[str, Any] = Field(default_factory=dict)
    execution_mode: ExecutionMode = "sequential"
    mock_io: bool = False
    data_connections_env_vars: dict[str, SecretStr] | None = None
    lithops_config: LithopsConfig | None = None
    trace_context: TraceContext | None = None
    timeout: float | None = Field(None, gt=0)

    def invoker_options(self) -> dict[str, Any]:
        """The keys this model does not know, for the invoker (e.g. ``docker_image_uri``)."""
        return dict(self.model_extra or {})


class RunWorkflowPayload(BaseModel):
    """What to run and how."""

    model_config = ConfigDict(extra="ignore")

    match_spec: str | None = None
    command: str
    invoker_type: str = DEFAULT_INVOKER
    invoker_kwargs: InvokerKwargs


class RunWorkflow(BaseModel):
    """A ``RunWorkflow`` command."""

    model_config = ConfigDict(extra="ignore")

    message_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    timestamp: dt.datetime = Field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    schema_version: Literal["v1"] = "v1"
    payload: RunWorkflowPayload
    attributes: dict[str, str] = Field(default_factory=dict)


class PushMessage(BaseModel):
    """The Pub/Sub message inside a push request."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    data: str = ""
    message_id: str = Field("", alias="messageId")
    attributes: dict[str, str] = Field(default_factory=dict)
    publish_time: str | None = Field(None, alias="publishTime")


class PushEnvelope(BaseModel):
    """The body Pub/Sub POSTs to a push endpoint."""

    model_config = ConfigDict(extra="ignore")

    message: PushMessage
    subscription: str = ""


class PushResponse(BaseModel):
    """What ``POST /run-from-pubsub`` answers when retrying cannot change the outcome
    (``error`` and ``trace`` only with ``status: "error"``)."""

    status: Literal["processed", "error", "duplicate"]
    error: str | None = None
    trace: str | None = None


def decode_base64(data: str) -> bytes:
    """The bytes of a push message's base64 ``data`` (CommandError when it is not base64)."""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise CommandError("message.data is not base64") from None


def parse_command(data: bytes) -> RunWorkflow:
    """A validated RunWorkflow command from a message's data, or CommandError saying why not."""
    try:
        document = json.loads(data)
    except ValueError:
        raise CommandError("the message is not JSON") from None
    results_url = _results_url_in(document)
    try:
        command = RunWorkflow.model_validate(document)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or 'message'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise CommandError(
            "invalid RunWorkflow command: " + "; ".join(problems), results_url
        ) from None
    if command.payload.command != "run":
        raise CommandError(
            f"unsupported command {command.payload.command!r}; only 'run' is", results_url
        )
    return command


def _results_url_in(document: Any) -> str | None:
    try:
        url = document["payload"]["invoker_kwargs"]["results_url"]
    except (KeyError, TypeError):
        return None
    return url if isinstance(url, str) else None
