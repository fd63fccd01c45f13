"""What a settlement item moved in Xero when not its whole amount (moved_cents)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("settlement_items") as batch_op:
        batch_op.add_column(sa.Column("moved_cents", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("settlement_items") as batch_op:
        batch_op.drop_column("moved_cents")
