"""job priority and the time of each job's last claim, for fair claiming

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("priority", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("last_claimed_at", sa.BigInteger()))
        batch.create_index("ix_jobs_status_token", ["status", "token_id"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_status_token")
        batch.drop_column("last_claimed_at")
        batch.drop_column("priority")
