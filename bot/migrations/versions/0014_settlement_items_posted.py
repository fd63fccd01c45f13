"""When Amazon posted the order a settlement payment is for (posted_at): an order sold before
the integration's start date has no invoice of the bot's to pay

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("settlement_items") as batch_op:
        batch_op.add_column(sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("settlement_items") as batch_op:
        batch_op.drop_column("posted_at")
