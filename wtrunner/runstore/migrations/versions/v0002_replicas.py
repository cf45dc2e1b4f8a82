"""Replicas and their heartbeats; the Batch reconciler's lease on runs.

Revision ID: 0002
Revises: 0001
Create Date: 2025-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Create ``replicas``; add ``lease_owner`` and ``lease_expires_at`` to ``runs``."""
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("advertise_url", sa.Text, nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_replicas_heartbeat_at", "replicas", ["heartbeat_at"])
    op.add_column("runs", sa.Column("lease_owner", sa.String(255), nullable=True))
    op.add_column("runs", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop the lease columns and ``replicas``."""
    op.drop_column("runs", "lease_expires_at")
    op.drop_column("runs", "lease_owner")
    op.drop_table("replicas")
