"""The run store's records: what is kept of a run, as the store returns it and the HTTP API
shows it.

Never secrets: a run keeps the names of its data connections, never their values, and its
results URL in public form (no credentials).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ..run_states import RunState

FrontDoor = Literal["http", "pubsub-push", "pubsub-pull", "cli"]
"""How a run came in: the HTTP API, a Pub/Sub push or pull subscription, or the command line."""


class ResolvedPackage(BaseModel):
    """The conda package a run's MatchSpec resolved to."""

    name: str
    version: str
    build: str
    channel: str | None = None


class RunOutcomeRecord(BaseModel):
    """How a run ended: its kind (``ok``, ``crash``, ``timeout``, ``lost``, ...) and what the
    workflow or the server said."""

    kind: str
    result: Any = None
    error: str | None = None
    trace: str | None = None
    exit_code: int | None = None


class RunRecord(BaseModel):
    """One attempt of a run, as recorded."""

    id: str
    attempt: int = 1
    workflow_run_id: str = ""
    idempotency_key: str | None = None
    package: str
    matchspec: str
    resolved: ResolvedPackage | None = None
    invoker_type: str
    state: RunState
    front_door: FrontDoor
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: RunOutcomeRecord | None = None
    results_url: str = Field(description="public form, without credentials")
    replica: str
    job_name: str | None = None
    data_connection_names: list[str] = Field(
        default_factory=list, description="the names of the data connections, never values"
    )
    request_hash: str = Field(
        "", description="identifies the request: the same key with another hash is a conflict"
    )
    cancel_requested: bool = False
    client: str | None = None
    lease_owner: str | None = Field(
        None, description="the replica that follows this Cloud Batch run until lease_expires_at"
    )
    lease_expires_at: datetime | None = None


class NewRun(BaseModel):
    """What a creator gives to record a run (the store adds ``created_at``)."""

    id: str = Field(min_length=1)
    workflow_run_id: str = ""
    idempotency_key: str | None = None
    package: str
    matchspec: str
    invoker_type: str
    front_door: FrontDoor
    results_url: str
    replica: str
    data_connection_names: list[str] = Field(default_factory=list)
    request_hash: str = ""
    client: str | None = None
    attempt: int = Field(1, ge=1)
    state: RunState = RunState.QUEUED
    resolved: ResolvedPackage | None = None


class RunPage(BaseModel):
    """One page of a run list, newest first; ``next_cursor`` fetches the next (None: last)."""

    runs: list[RunRecord]
    next_cursor: str | None


class RunChanges(BaseModel):
    """The fields :meth:`RunStore.transition` and :meth:`RunStore.update` may set (checked)."""

    model_config = ConfigDict(extra="forbid")

    resolved: ResolvedPackage | None = None
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    outcome: RunOutcomeRecord | None = None
    job_name: str | None = None
    cancel_requested: bool = False
    attempt: int = Field(1, ge=1)


class ReplicaRecord(BaseModel):
    """A replica of the server as it last reported itself (see :meth:`RunStore.heartbeat`)."""

    id: str
    advertise_url: str | None = None
    started_at: datetime
    heartbeat_at: datetime
