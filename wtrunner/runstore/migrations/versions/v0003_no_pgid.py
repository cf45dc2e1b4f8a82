"""Runs no longer record their process group: a restart finds a lost run's processes by the
``WTRUNNER_RUN_ID`` they carry.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Drop ``runs.pgid``."""
    op.drop_column("runs", "pgid")


def downgrade() -> None:
    """Add ``runs.pgid`` back (empty)."""
    op.add_column("runs", sa.Column("pgid", sa.Integer, nullable=True))
