"""The Xero clearing account a settlement's items went through (clearing_account_id)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("settlements") as batch_op:
        # Unknown for settlements posted before: they take the account the settings name.
        batch_op.add_column(sa.Column("clearing_account_id", sa.String(36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("settlements") as batch_op:
        batch_op.drop_column("clearing_account_id")
