"""columns for import, export and migration jobs

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("created_items", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("updated_items", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("details", sa.JSON(), nullable=True))
    with op.batch_alter_table("job_chunks") as batch:
        batch.add_column(sa.Column("lines", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("job_errors") as batch:
        batch.add_column(sa.Column("line", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("column", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_errors") as batch:
        batch.drop_column("column")
        batch.drop_column("line")
    with op.batch_alter_table("job_chunks") as batch:
        batch.drop_column("lines")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("details")
        batch.drop_column("updated_items")
        batch.drop_column("created_items")
