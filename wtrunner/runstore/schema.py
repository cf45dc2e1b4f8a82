"""The ``runs`` and ``replicas`` tables (SQLAlchemy Core), portable between SQLite and
PostgreSQL.

The migrations in ``migrations/versions`` create it in a database of an older version; an empty
database gets it from this description at once. Both must make the same schema (a test compares
them).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every database.

    PostgreSQL keeps it as ``timestamptz``; SQLite has no time zones, so it is stored as naive
    UTC (the fixed-width text SQLAlchemy writes sorts in time order) and UTC is attached when
    read. A naive datetime is refused: it could mean any zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        """Convert to UTC (naive UTC for SQLite)."""
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"a datetime is needed, not {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"a timezone-aware datetime is needed, not {value!r}")
        utc = value.astimezone(dt.timezone.utc)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        """Attach UTC to what SQLite returns; convert any other zone to UTC."""
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"the database returned {value!r} for a datetime")
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


metadata = MetaData()
_IDEMPOTENCY_KEY_GIVEN = text("idempotency_key IS NOT NULL")

# Every list is newest first by (created_at, id): each filter's index ends with those two
# columns, so a filtered page is read in index order without sorting the matching rows.
runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("attempt", Integer, nullable=False, server_default=text("1")),
    Column("workflow_run_id", String(255), nullable=False, server_default=""),
    Column("idempotency_key", String(255), nullable=True),
    Column("package", String(255), nullable=False),
    Column("matchspec", Text, nullable=False),
    Column("resolved", JSON(none_as_null=True), nullable=True),
    Column("invoker_type", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("front_door", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("outcome", JSON(none_as_null=True), nullable=True),
    Column("results_url", Text, nullable=False),
    Column("replica", String(255), nullable=False),
    Column("job_name", Text, nullable=True),
    Column("data_connection_names", JSON, nullable=False),
    Column("request_hash", String(128), nullable=False, server_default=""),
    Column("cancel_requested", Boolean, nullable=False, server_default=text("false")),
    Column("client", String(255), nullable=True),
    # the Batch reconciler's lease: the replica that follows this Cloud Batch run, and until when
    Column("lease_owner", String(255), nullable=True),
    Column("lease_expires_at", UTCDateTime(), nullable=True),
    Index("ix_runs_created_at_id", "created_at", "id"),
    Index("ix_runs_state_created_at_id", "state", "created_at", "id"),
    Index("ix_runs_package_created_at_id", "package", "created_at", "id"),
    Index("ix_runs_workflow_run_id_created_at_id", "workflow_run_id", "created_at", "id"),
    Index("ix_runs_replica_state", "replica", "state"),
    Index("ix_runs_finished_at", "finished_at"),
    Index(
        "ux_runs_idempotency_key_attempt",
        "idempotency_key",
        "attempt",
        unique=True,
        sqlite_where=_IDEMPOTENCY_KEY_GIVEN,
        # postgresql_where: add_postgresql_options()
    ),
)


def add_postgresql_options() -> None:
    """Give the tables their PostgreSQL options (the partial index's condition), for a store
    on PostgreSQL: naming them in the tables themselves would load SQLAlchemy's PostgreSQL
    dialect (2 MB) into every server, on SQLite too."""
    for index in runs.indexes:
        if "sqlite_where" in index.dialect_kwargs:
            index.dialect_kwargs["postgresql_where"] = index.dialect_kwargs["sqlite_where"]


# Every replica of the server, as it last reported itself: a replica whose heartbeat stops is
# dead, and another one ends its runs as ``lost``.
replicas = Table(
    "replicas",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("advertise_url", Text, nullable=True),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("heartbeat_at", UTCDateTime(), nullable=False),
    Index("ix_replicas_heartbeat_at", "heartbeat_at"),
)

# Alembic's own table, as Alembic makes it: the revision the schema is at. An empty database
# is stamped with the newest revision without loading Alembic.
version_table = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)
