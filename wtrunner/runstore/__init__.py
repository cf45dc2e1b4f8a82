"""The durable run store: every run's record, in SQLite (embedded default) or another SQL
database, with its schema migrated by Alembic at open."""

from __future__ import annotations

from .records import (
    FrontDoor,
    NewRun,
    ReplicaRecord,
    ResolvedPackage,
    RunChanges,
    RunOutcomeRecord,
    RunPage,
    RunRecord,
)
from .store import DuplicateRun, RunNotFound, RunStore, database_url

__all__ = [
    "RunStore",
    "RunNotFound",
    "DuplicateRun",
    "database_url",
    "FrontDoor",
    "NewRun",
    "ReplicaRecord",
    "ResolvedPackage",
    "RunChanges",
    "RunOutcomeRecord",
    "RunPage",
    "RunRecord",
]
