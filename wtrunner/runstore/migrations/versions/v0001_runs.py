"""The runs table.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``runs`` and its indexes."""
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("attempt", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("workflow_run_id", sa.String(255), nullable=False, server_default=""),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("package", sa.String(255), nullable=False),
        sa.Column("matchspec", sa.Text, nullable=False),
        sa.Column("resolved", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("invoker_type", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("front_door", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("results_url", sa.Text, nullable=False),
        sa.Column("replica", sa.String(255), nullable=False),
        sa.Column("job_name", sa.Text, nullable=True),
        sa.Column("pgid", sa.Integer, nullable=True),
        sa.Column("data_connection_names", sa.JSON, nullable=False),
        sa.Column("request_hash", sa.String(128), nullable=False, server_default=""),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("client", sa.String(255), nullable=True),
    )
    op.create_index("ix_runs_created_at_id", "runs", ["created_at", "id"])
    op.create_index("ix_runs_state_created_at_id", "runs", ["state", "created_at", "id"])
    op.create_index("ix_runs_package_created_at_id", "runs", ["package", "created_at", "id"])
    op.create_index(
        "ix_runs_workflow_run_id_created_at_id", "runs", ["workflow_run_id", "created_at", "id"]
    )
    op.create_index("ix_runs_replica_state", "runs", ["replica", "state"])
    op.create_index("ix_runs_finished_at", "runs", ["finished_at"])
    op.create_index(
        "ux_runs_idempotency_key_attempt",
        "runs",
        ["idempotency_key", "attempt"],
        unique=True,
        sqlite_where=sa.text("idempotency_key IS NOT NULL"),
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )


def downgrade() -> None:
    """Drop ``runs`` (and every record in it)."""
    op.drop_table("runs")
